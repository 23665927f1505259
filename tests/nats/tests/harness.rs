//! The harness against real servers: a single node and a 3-node JetStream
//! cluster, with JetStream streams written and read through `async-nats`
//! across stops, kills and restarts.

use std::time::{Duration, Instant};

use aether_nats_harness::{CLUSTER_NAME, NatsCluster, NatsServer};
use async_nats::jetstream::{self, Context, stream};

/// How long a client may take to get a publish acknowledged while the
/// servers fail over (elect new leaders, reconnect).
const FAILOVER: Duration = Duration::from_secs(30);

/// A JetStream context on a client of whichever of `urls` is up.
async fn jetstream(urls: &[String]) -> Context {
    let client = async_nats::connect(urls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {urls:?}: {e}"));
    jetstream::new(client)
}

fn file_stream(name: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Publishes and waits for the stream's acknowledgement, retrying while
/// the servers fail over; returns the message's stream sequence.
async fn publish(js: &Context, subject: &str, payload: &str) -> u64 {
    let deadline = Instant::now() + FAILOVER;
    loop {
        let attempt = async {
            js.publish(subject.to_owned(), payload.to_owned().into())
                .await?
                .await
                .map_err(async_nats::Error::from)
        };
        match attempt.await {
            Ok(ack) => return ack.sequence,
            Err(e) if Instant::now() < deadline => {
                eprintln!("publish to {subject} failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("publishing to {subject} failed for {FAILOVER:?}: {e}"),
        }
    }
}

/// The payloads of messages 1..=count of `stream`, retrying while the
/// servers fail over.
async fn read_all(js: &Context, stream: &str, count: u64) -> Vec<String> {
    let deadline = Instant::now() + FAILOVER;
    loop {
        let attempt = async {
            let stream = js.get_stream(stream).await?;
            let mut payloads = Vec::new();
            for sequence in 1..=count {
                let message = stream.get_raw_message(sequence).await?;
                payloads.push(String::from_utf8(message.payload.to_vec())?);
            }
            Ok::<_, async_nats::Error>(payloads)
        };
        match attempt.await {
            Ok(payloads) => return payloads,
            Err(e) if Instant::now() < deadline => {
                eprintln!("reading {stream} failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("reading {stream} failed for {FAILOVER:?}: {e}"),
        }
    }
}

async fn stored_messages(js: &Context, stream: &str) -> u64 {
    let mut stream = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("getting stream {stream}: {e}"));
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test]
async fn a_single_node_stores_and_serves_a_jetstream_stream() {
    let server = NatsServer::start();
    assert!(
        server.url().starts_with("nats://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert_ne!(server.port(), 0);

    let js = jetstream(&[server.url()]).await;
    js.create_stream(file_stream("ORDERS", 1))
        .await
        .expect("creating a stream");
    assert_eq!(publish(&js, "orders.1", "first").await, 1);
    assert_eq!(publish(&js, "orders.2", "second").await, 2);

    assert_eq!(read_all(&js, "ORDERS", 2).await, ["first", "second"]);
    assert_eq!(stored_messages(&js, "ORDERS").await, 2);
    assert!(
        server.store_dir().join("jetstream").is_dir(),
        "the store lives in the server's own directory: {}",
        server.store_dir().display()
    );
}

#[tokio::test]
async fn a_file_stream_survives_a_kill_and_a_restart_on_the_same_port() {
    let mut server = NatsServer::start();
    let url = server.url();
    {
        let js = jetstream(std::slice::from_ref(&url)).await;
        js.create_stream(file_stream("LEDGER", 1))
            .await
            .expect("creating a stream");
        for i in 1..=5 {
            assert_eq!(publish(&js, "ledger.a", &format!("entry {i}")).await, i);
        }
    }

    let pid = server.pid().expect("running");
    server.kill();
    assert!(!server.is_running(), "SIGKILL ends the process");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err(),
        "nothing listens on the port of a killed server"
    );

    server.restart();
    assert!(server.is_running());
    assert_ne!(server.pid(), Some(pid), "a new process");
    assert_eq!(server.url(), url, "the same port");
    let js = jetstream(std::slice::from_ref(&url)).await;
    assert_eq!(stored_messages(&js, "LEDGER").await, 5);
    let expected: Vec<String> = (1..=5).map(|i| format!("entry {i}")).collect();
    assert_eq!(read_all(&js, "LEDGER", 5).await, expected);

    // A graceful stop keeps the data too, and the stream takes new writes.
    server.stop();
    assert!(!server.is_running(), "SIGTERM ends the process");
    server.restart();
    let js = jetstream(std::slice::from_ref(&url)).await;
    assert_eq!(publish(&js, "ledger.a", "entry 6").await, 6);
    assert_eq!(stored_messages(&js, "LEDGER").await, 6);
    assert_eq!(
        server
            .log()
            .matches("--- aether-nats-harness: starting")
            .count(),
        3,
        "the log keeps every start:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn a_dropped_server_is_killed() {
    let server = NatsServer::start();
    let port = server.port();
    let store = server.store_dir();
    drop(server);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} once the server is dropped"
    );
    assert!(!store.exists(), "its directory is removed");
}

#[test]
fn a_server_dies_with_a_panicking_test() {
    let panicked = std::thread::spawn(|| {
        let server = NatsServer::start();
        std::panic::panic_any(server.port());
    })
    .join()
    .expect_err("the thread panics");
    let port = *panicked.downcast::<u16>().expect("the port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} once the panic has unwound"
    );
}

#[tokio::test]
async fn an_r3_stream_keeps_working_with_one_of_three_servers_down() {
    let started = Instant::now();
    let mut cluster = NatsCluster::start(3);
    eprintln!("the cluster formed in {:?}", started.elapsed());
    assert_eq!(cluster.size(), 3);
    assert_eq!(cluster.name(), CLUSTER_NAME);
    assert_eq!(cluster.urls().len(), 3);
    assert_eq!(cluster.url(), cluster.urls().join(","));
    assert!(
        cluster.meta_leader().is_some(),
        "the servers agree on a meta leader"
    );

    let js = jetstream(&cluster.urls()).await;
    let stream = js
        .create_stream(file_stream("ACCOUNTS", 3))
        .await
        .expect("creating an R3 stream");
    let cluster_info = stream
        .cached_info()
        .cluster
        .clone()
        .expect("a clustered stream");
    assert_eq!(
        cluster_info.replicas.len(),
        2,
        "a leader and two replicas: {cluster_info:?}"
    );
    assert_eq!(publish(&js, "accounts.1", "opened").await, 1);

    // Kill the stream's leader: the worst of the three to lose.
    let leader_name = cluster_info.leader.expect("the stream has a leader");
    let leader = (0..cluster.size())
        .find(|&i| cluster.servers()[i].name() == leader_name)
        .unwrap_or_else(|| panic!("the stream's leader {leader_name} is one of ours"));
    cluster.server(leader).kill();
    assert!(!cluster.server(leader).is_running());

    // Two of three are a quorum: writes and reads go on.
    assert_eq!(publish(&js, "accounts.1", "deposited").await, 2);
    assert_eq!(read_all(&js, "ACCOUNTS", 2).await, ["opened", "deposited"]);

    // Back, on the same ports, caught up with what it missed.
    let url = cluster.server(leader).url();
    cluster.server(leader).restart();
    assert_eq!(cluster.server(leader).url(), url);
    assert!(cluster.meta_leader().is_some());
    assert_eq!(publish(&js, "accounts.1", "withdrawn").await, 3);
    let only_restarted = jetstream(std::slice::from_ref(&url)).await;
    assert_eq!(
        read_all(&only_restarted, "ACCOUNTS", 3).await,
        ["opened", "deposited", "withdrawn"]
    );
}

#[tokio::test]
async fn a_whole_cluster_restarts_with_its_data() {
    let mut cluster = NatsCluster::start(3);
    let js = jetstream(&cluster.urls()).await;
    js.create_stream(file_stream("EVENTS", 3))
        .await
        .expect("creating an R3 stream");
    assert_eq!(publish(&js, "events.x", "one").await, 1);
    drop(js);

    cluster.restart_all();
    assert!(cluster.meta_leader().is_some());
    let js = jetstream(&cluster.urls()).await;
    assert_eq!(read_all(&js, "EVENTS", 1).await, ["one"]);
    assert_eq!(publish(&js, "events.x", "two").await, 2);
}
