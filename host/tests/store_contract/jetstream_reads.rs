//! How the JetStream store reads an aggregate's events: in batches of
//! direct gets, each stream longer than one batch, with other aggregates'
//! messages in between; damaged messages are still refused.

use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, JetStreamConfig, JetStreamStore,
    NewEvent, RecordedEvent, StoreError, StreamId,
};
use aether_nats_harness::{NatsCluster, NatsServer};

/// Longer than the store's direct get batch (1 024), and not a
/// multiple of it.
const LONG: u64 = 2_600;
/// Appends of this many events (JetStream's atomic batches hold at most
/// 1 000 messages).
const CHUNK: u64 = 400;

fn block_on<F: Future>(test: F) -> F::Output {
    aether_host::store::contract::block_on(test)
}

fn stream(id: &str) -> StreamId {
    StreamId::new(
        "bank".parse().unwrap(),
        "bank-account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

fn data(stream: &StreamId, version: u64) -> Vec<u8> {
    format!("{{\"stream\":\"{stream}\",\"version\":{version}}}").into_bytes()
}

/// Appends versions `first..=last` of `stream`, `CHUNK` at a time, each
/// chunk followed by one event of `other` (so the aggregate's messages
/// are not contiguous in the namespace's stream).
async fn append(store: &JetStreamStore, stream: &StreamId, other: &StreamId, last: u64) {
    let mut version = store.stream_version(stream).await.unwrap();
    while version < last {
        let end = (version + CHUNK).min(last);
        let request = AppendRequest {
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: (version + 1..=end)
                .map(|v| NewEvent::json("deposited", data(stream, v)))
                .collect(),
            metadata: EventMetadata::default(),
            timestamp_ms: 1,
        };
        version = store.append(request).await.unwrap().last_version();
        let noise = AppendRequest {
            stream: other.clone(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::json("noise", b"{}".to_vec())],
            metadata: EventMetadata::default(),
            timestamp_ms: 1,
        };
        store.append(noise).await.unwrap();
    }
}

/// `events` are exactly versions `from..from + len` of `stream`, with
/// their data, in order, at growing positions.
fn check(events: &[RecordedEvent], stream: &StreamId, from: u64, len: u64) {
    assert_eq!(events.len() as u64, len, "from {from}");
    for (event, version) in events.iter().zip(from..) {
        assert_eq!(event.stream, *stream);
        assert_eq!(event.version, version);
        assert_eq!(event.data, data(stream, version), "version {version}");
    }
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
}

/// Reads `stream` as activation does, in batches of `batch`, each
/// right after the one before, checking each; how many it read.
async fn read_as_activation(store: &JetStreamStore, stream: &StreamId, batch: usize) -> u64 {
    let mut version = 0;
    loop {
        let events = store.read_stream(stream, version + 1, batch).await.unwrap();
        check(&events, stream, version + 1, events.len() as u64);
        version += events.len() as u64;
        if events.len() < batch {
            return version;
        }
    }
}

async fn connect(server: &NatsServer) -> JetStreamStore {
    JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
        .await
        .unwrap()
}

/// Reads from every kind of starting point: version 1, right after a
/// read (where it ended), far into the stream (found by a search), and
/// a little into it (read past), each bounded by `limit`.
#[test]
fn a_stream_longer_than_a_batch_reads_every_event_in_order() {
    block_on(async {
        let server = NatsServer::start();
        let store = connect(&server).await;
        let (long, other) = (stream("long"), stream("other"));
        append(&store, &long, &other, LONG).await;

        let all = store.read_stream(&long, 1, usize::MAX).await.unwrap();
        check(&all, &long, 1, LONG);
        check(
            &store.read_stream(&long, 0, 10).await.unwrap(),
            &long,
            1,
            10,
        );

        // As activation reads it: batches of 1 024, each after the last.
        assert_eq!(read_as_activation(&store, &long, 1_024).await, LONG);

        // A store that has read nothing yet: no hint of where versions
        // are, from far in (a search) and from near the start.
        for (from, limit, len) in [
            (2_000, 100, 100),
            (2_001, usize::MAX, LONG - 2_000),
            (LONG, 5, 1),
            (1_500, 1, 1),
            (600, 1_200, 1_200),
            (2, 3, 3),
            (LONG + 1, 10, 0),
            (LONG + 500, 10, 0),
        ] {
            let fresh = connect(&server).await;
            let events = fresh.read_stream(&long, from, limit).await.unwrap();
            check(&events, &long, from, len);
            let again = store.read_stream(&long, from, limit).await.unwrap();
            check(&again, &long, from, len);
        }
        assert!(store.read_stream(&long, 1, 0).await.unwrap().is_empty());
        assert!(
            store
                .read_stream(&stream("never-written"), 1, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // The other aggregate's events are its own.
        let noise = store.read_stream(&other, 1, usize::MAX).await.unwrap();
        assert_eq!(noise.len() as u64, LONG.div_ceil(CHUNK));
        assert!(noise.iter().all(|e| e.event_type == "noise"));

        // What is appended after a read is read too.
        append(&store, &long, &other, LONG + 30).await;
        let tail = store.read_stream(&long, LONG + 1, 1_024).await.unwrap();
        check(&tail, &long, LONG + 1, 30);
    });
}

/// Activation's reads ask for the next batch as a full one ends, and
/// skip the leader when an earlier read showed the batch is full: the
/// reads that follow, with the batch asked for or another, after more
/// appends or not, from the same sequence or elsewhere, read what the
/// stream has.
#[test]
fn reads_after_a_batch_asked_for_early_have_what_the_stream_has() {
    block_on(async {
        let server = NatsServer::start();
        let store = connect(&server).await;
        let (long, other) = (stream("long"), stream("other"));
        append(&store, &long, &other, LONG).await;
        // Learn where the stream ends.
        check(
            &store.read_stream(&long, 1, usize::MAX).await.unwrap(),
            &long,
            1,
            LONG,
        );

        // The next batch asked for early, then more appended: the read
        // that takes it and the ones after have every event.
        check(
            &store.read_stream(&long, 1, 1_024).await.unwrap(),
            &long,
            1,
            1_024,
        );
        append(&store, &long, &other, LONG + 700).await;
        let mut version = 1_024;
        loop {
            let batch = store.read_stream(&long, version + 1, 1_024).await.unwrap();
            check(&batch, &long, version + 1, batch.len() as u64);
            version += batch.len() as u64;
            if batch.len() < 1_024 {
                break;
            }
        }
        assert_eq!(version, LONG + 700);

        // Asked for early, but the next read wants another batch, or
        // starts elsewhere.
        for (first, then_from, then_limit, len) in [
            (1, 1_025, 500, 500),
            (1, 1_025, 2_000, 2_000),
            (1, 30, 1_024, 1_024),
            (1_025, 3_000, 1_024, LONG + 700 - 2_999),
            (2_049, 3_073, 1_024, LONG + 700 - 3_072),
            (1_025, 2_049, 1_024, 1_024),
        ] {
            check(
                &store.read_stream(&long, first, 1_024).await.unwrap(),
                &long,
                first,
                1_024,
            );
            let events = store
                .read_stream(&long, then_from, then_limit)
                .await
                .unwrap();
            check(&events, &long, then_from, len);
        }
    });
}

/// A message published around the store on the aggregate's subject,
/// after more than one batch of good events: reading over it is
/// `Corrupt`, naming its sequence; reading before it is fine.
#[test]
fn a_damaged_message_past_the_first_batch_is_corrupt() {
    block_on(async {
        let server = NatsServer::start();
        let store = connect(&server).await;
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let (jumps, bare, other) = (stream("jumps"), stream("bare"), stream("other"));
        let good = 1_100;
        append(&store, &jumps, &other, good).await;
        append(&store, &bare, &other, good).await;

        // A well-formed event whose version skips one.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Aether-Version", (good + 2).to_string().as_str());
        headers.insert("Aether-Event-Id", uuid::Uuid::now_v7().to_string().as_str());
        headers.insert("Aether-Event-Type", "deposited");
        let ack = js
            .publish_with_headers(
                "aether.events.bank.bank-account.jumps",
                headers,
                data(&jumps, good + 2).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        // A message with none of the event's headers.
        let bare_ack = js
            .publish("aether.events.bank.bank-account.bare", "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();

        for from in [1, good - 5, good + 1] {
            let error = store
                .read_stream(&jumps, from, usize::MAX)
                .await
                .expect_err("a gap in the versions must not be read over");
            match error {
                StoreError::Corrupt { location, message } => {
                    assert!(
                        location.ends_with(&format!("sequence {}", ack.sequence)),
                        "{location}"
                    );
                    assert!(
                        message.contains(&format!(
                            "jumps to version {} where {} was expected",
                            good + 2,
                            good + 1
                        )),
                        "{message}"
                    );
                }
                other => panic!("expected Corrupt, got {other}"),
            }
            let error = store
                .read_stream(&bare, from, usize::MAX)
                .await
                .expect_err("a message without an event must not be read");
            match error {
                StoreError::Corrupt { location, .. } => assert!(
                    location.contains(&format!("sequence {}", bare_ack.sequence)),
                    "{location}"
                ),
                other => panic!("expected Corrupt, got {other}"),
            }
        }
        let before = store.read_stream(&jumps, 1, good as usize).await.unwrap();
        check(&before, &jumps, 1, good);
        let before = store.read_stream(&bare, 1, good as usize).await.unwrap();
        check(&before, &bare, 1, good);
    });
}

/// On a 3-node cluster (R3), where any of the three servers may answer
/// a direct get from its own copy: every read right after an append
/// has the events that append stored, from a store that has read
/// before and from one that has not.
#[test]
fn on_three_servers_a_read_right_after_an_append_has_it() {
    block_on(async {
        let cluster = NatsCluster::start(3);
        let config = || JetStreamConfig::new(cluster.urls(), 3);
        let store = JetStreamStore::connect(config()).await.unwrap();
        let (long, other) = (stream("long"), stream("other"));
        let mut last = 0;
        while last < 1_500 {
            last += 250;
            append(&store, &long, &other, last).await;
            let all = store.read_stream(&long, 1, usize::MAX).await.unwrap();
            check(&all, &long, 1, last);
            let fresh = JetStreamStore::connect(config()).await.unwrap();
            let tail = fresh.read_stream(&long, last - 99, 1_024).await.unwrap();
            check(&tail, &long, last - 99, 100);
            // As activation reads (each batch asked for as the one
            // before ends, from any server), by both stores.
            for reader in [&store, &fresh] {
                assert_eq!(read_as_activation(reader, &long, 256).await, last);
            }
        }
    });
}

/// `log` is exactly positions `from..from + len` of the `bank`
/// namespace, each the event `all` (the whole log) has there.
fn check_log(log: &[RecordedEvent], all: &[RecordedEvent], from: u64, len: u64) {
    assert_eq!(log.len() as u64, len, "from {from}");
    for (event, position) in log.iter().zip(from..) {
        assert_eq!(event.position, position);
        assert_eq!(event.stream.namespace.as_str(), "bank");
        let stored = &all[position as usize - 1];
        assert_eq!(event.id, stored.id, "position {position}");
        assert_eq!(event.data, stored.data, "position {position}");
    }
}

/// Reads the log of a store with more events than one direct get
/// batch: from the start, from mid-log, near and past the head, with
/// limits below and above a batch, from a store that has read before
/// and from a fresh one; the events are those the aggregates' reads
/// give, and another namespace's never show.
async fn read_the_log_in_batches(urls: Vec<String>, replicas: usize) {
    let config = || JetStreamConfig::new(urls.clone(), replicas);
    let store = JetStreamStore::connect(config()).await.unwrap();
    let (long, other) = (stream("long"), stream("other"));
    let elsewhere = StreamId::new(
        "elsewhere".parse().unwrap(),
        "bank-account".parse().unwrap(),
        "long".parse().unwrap(),
    );
    append(&store, &long, &other, 1_300).await;
    append(&store, &elsewhere, &elsewhere, 40).await;
    append(&store, &long, &other, LONG).await;

    let head = store.head_position(&"bank".parse().unwrap()).await.unwrap();
    assert!(head > LONG + 2, "head {head}");
    let noise = head - LONG;
    let bank = "bank".parse().unwrap();
    let all = store.read_log(&bank, 1, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, head);
    for (event, position) in all.iter().zip(1..) {
        assert_eq!(event.position, position);
    }
    let of_long: Vec<_> = all.iter().filter(|e| e.stream == long).cloned().collect();
    check(&of_long, &long, 1, LONG);
    let of_other = all.iter().filter(|e| e.stream == other).count() as u64;
    assert_eq!(of_other, noise);

    for (from, limit, len) in [
        (0, 10, 10),
        (1, 1_024, 1_024),
        (1, 1_025, 1_025),
        (1_300, 1_200, 1_200),
        (1_023, usize::MAX, head - 1_022),
        (head - 5, 100, 6),
        (head, 1, 1),
        (head + 1, 10, 0),
        (head + 500, usize::MAX, 0),
        (7, 0, 0),
    ] {
        let events = store.read_log(&bank, from, limit).await.unwrap();
        check_log(&events, &all, from.max(1), len);
        let fresh = JetStreamStore::connect(config()).await.unwrap();
        let events = fresh.read_log(&bank, from, limit).await.unwrap();
        check_log(&events, &all, from.max(1), len);
    }
    let theirs = store
        .read_log(&"elsewhere".parse().unwrap(), 1, usize::MAX)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 41);
    assert!(theirs.iter().all(|e| e.stream == elsewhere));
    assert!(
        store
            .read_log(&"nowhere".parse().unwrap(), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Right after an append, a read from a store that has not read
    // before (any server may answer its direct gets) has it.
    for round in 1..=3_u64 {
        append(&store, &long, &other, LONG + round * 300).await;
        let head = store.head_position(&bank).await.unwrap();
        let fresh = JetStreamStore::connect(config()).await.unwrap();
        let tail = fresh
            .read_log(&bank, head - 1_099, usize::MAX)
            .await
            .unwrap();
        assert_eq!(tail.len(), 1_100, "round {round}");
        assert_eq!(tail.last().map(|e| e.position), Some(head));
        assert!(tail.windows(2).all(|w| w[1].position == w[0].position + 1));
    }
}

#[test]
fn a_log_longer_than_a_batch_is_read_in_batches() {
    block_on(async {
        let server = NatsServer::start();
        read_the_log_in_batches(vec![server.url()], 1).await;
    });
}

#[test]
fn on_three_servers_a_log_longer_than_a_batch_is_read_in_batches() {
    block_on(async {
        let cluster = NatsCluster::start(3);
        read_the_log_in_batches(cluster.urls(), 3).await;
    });
}

/// A message without an event, published around the store after more
/// than a batch of events: reading the log over it is `Corrupt`,
/// naming its sequence; reading before it is fine.
#[test]
fn a_damaged_message_in_the_log_is_corrupt() {
    block_on(async {
        let server = NatsServer::start();
        let store = connect(&server).await;
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let (long, other) = (stream("long"), stream("other"));
        append(&store, &long, &other, 1_100).await;
        let bare = js
            .publish("aether.events.bank.bank-account.bare", "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        append(&store, &long, &other, 1_200).await;
        let bank = "bank".parse().unwrap();
        for from in [1, bare.sequence - 3, bare.sequence] {
            match store.read_log(&bank, from, usize::MAX).await {
                Err(StoreError::Corrupt { location, .. }) => assert!(
                    location.contains(&format!("sequence {}", bare.sequence)),
                    "{location}"
                ),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
        let before = store
            .read_log(&bank, 1, bare.sequence as usize - 1)
            .await
            .unwrap();
        assert_eq!(before.len() as u64, bare.sequence - 1);
        let after = store
            .read_log(&bank, bare.sequence + 1, usize::MAX)
            .await
            .unwrap();
        assert_eq!(after.first().map(|e| e.position), Some(bare.sequence + 1));
    });
}

/// A namespace stream made without direct gets (`allow_direct` off):
/// no server answers them, and the store reads from the leader.
#[test]
fn a_stream_without_direct_gets_is_read_from_the_leader() {
    block_on(async {
        let server = NatsServer::start();
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "AETHER_EVENTS_bank".into(),
            subjects: vec!["aether.events.bank.>".into()],
            allow_atomic_publish: true,
            allow_direct: false,
            deny_delete: true,
            deny_purge: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let store = connect(&server).await;
        let (long, other) = (stream("long"), stream("other"));
        append(&store, &long, &other, 1_500).await;
        let all = store.read_stream(&long, 1, usize::MAX).await.unwrap();
        check(&all, &long, 1, 1_500);
        let tail = store.read_stream(&long, 1_200, 50).await.unwrap();
        check(&tail, &long, 1_200, 50);
        let bank = "bank".parse().unwrap();
        let log = store.read_log(&bank, 1, usize::MAX).await.unwrap();
        assert_eq!(log.len() as u64, 1_500 + 1_500_u64.div_ceil(CHUNK));
        let mid = store.read_log(&bank, 1_100, 300).await.unwrap();
        check_log(&mid, &log, 1_100, 300);
    });
}

/// One of three servers killed (neither the metadata leader nor the
/// stream's): its peers count it as a replica for minutes, and a read's
/// one-replica consumer placed on it is never created. Long reads from
/// fresh stores (each makes a consumer) still answer promptly and whole:
/// the store gives up on such a consumer within a second and reads on
/// with direct gets (before the bound, about one read in three waited the
/// client's 10 s timeout first).
#[test]
fn on_three_servers_with_one_killed_long_reads_answer_promptly() {
    block_on(async {
        let mut cluster = NatsCluster::start(3);
        let config = || JetStreamConfig::new(cluster.urls(), 3);
        let store = JetStreamStore::connect(config()).await.unwrap();
        let (long, other) = (stream("long"), stream("other"));
        append(&store, &long, &other, 600).await;
        let js = async_nats::jetstream::new(async_nats::connect(cluster.urls()).await.unwrap());
        let info = js
            .get_stream("AETHER_EVENTS_bank")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        let stream_leader = info.cluster.and_then(|c| c.leader).unwrap();
        let meta_leader = cluster.meta_leader().unwrap();
        let victim = (0..3)
            .find(|&i| i != meta_leader && cluster.servers()[i].name() != stream_leader)
            .unwrap();
        let urls = cluster.urls();
        cluster.server(victim).kill();
        let alive: Vec<String> = (0..3)
            .filter(|&i| i != victim)
            .map(|i| urls[i].clone())
            .collect();
        let mut slowest = std::time::Duration::ZERO;
        for _ in 0..12 {
            let fresh = JetStreamStore::connect(JetStreamConfig::new(alive.clone(), 3))
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let all = fresh.read_stream(&long, 1, usize::MAX).await.unwrap();
            slowest = slowest.max(started.elapsed());
            check(&all, &long, 1, 600);
        }
        eprintln!("the slowest of 12 long reads with one server killed: {slowest:?}");
        assert!(
            slowest < std::time::Duration::from_secs(4),
            "a long read took {slowest:?} with one of three servers killed"
        );
    });
}
