//! How the JetStream store lays namespaces out on the server: one stream
//! each, created by the first append, by whichever store gets there first.

use std::sync::Arc;

use aether_host::namespace::Namespace;
use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, JetStreamConfig, JetStreamStore,
    NewEvent, StreamId,
};
use aether_nats_harness::{NatsCluster, NatsServer};

fn block_on<F: Future>(test: F) -> F::Output {
    aether_host::store::contract::block_on(test)
}

fn stream(namespace: &str, id: &str) -> StreamId {
    StreamId::new(
        namespace.parse().unwrap(),
        "bank-account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

fn request(stream: &StreamId) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent::json("opened", b"{}".to_vec())],
        metadata: EventMetadata::default(),
        timestamp_ms: 1,
    }
}

async fn jetstream(url: String) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.unwrap())
}

#[test]
fn each_namespace_gets_its_own_stream_on_its_first_append() {
    block_on(async {
        let server = NatsServer::start();
        let store = JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
            .await
            .unwrap();
        let js = jetstream(server.url()).await;
        let bank: Namespace = "bank".parse().unwrap();
        assert_eq!(store.head_position(&bank).await.unwrap(), 0);
        assert!(store.read_log(&bank, 1, 10).await.unwrap().is_empty());
        assert!(
            js.get_stream("AETHER_EVENTS_bank").await.is_err(),
            "reads create no stream"
        );
        store
            .append(request(&stream("bank", "acc-1")))
            .await
            .unwrap();
        store
            .append(request(&stream("shop-2", "acc-1")))
            .await
            .unwrap();
        for (name, subjects) in [
            ("AETHER_EVENTS_bank", "aether.events.bank.>"),
            ("AETHER_EVENTS_shop-2", "aether.events.shop-2.>"),
        ] {
            let mut events = js.get_stream(name).await.unwrap();
            let info = events.info().await.unwrap();
            assert_eq!(info.config.subjects, [subjects]);
            assert!(info.config.allow_atomic_publish && info.config.deny_delete);
            assert_eq!(info.state.messages, 1, "{name}");
        }
        assert!(js.get_stream("AETHER_EVENTS").await.is_err());
    });
}

/// Two stores (two nodes) append to a namespace that has no stream yet
/// at the same moment: both create it, both succeed, one log.
#[test]
fn two_stores_creating_a_namespace_stream_at_once_share_it() {
    block_on(async {
        let cluster = NatsCluster::start(3);
        let mut stores = Vec::new();
        for _ in 0..2 {
            let config = JetStreamConfig::new(cluster.urls(), 3);
            stores.push(Arc::new(JetStreamStore::connect(config).await.unwrap()));
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&stores[i % 2]);
                tokio::spawn(async move {
                    store
                        .append(request(&stream("fresh", &format!("acc-{i}"))))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let fresh: Namespace = "fresh".parse().unwrap();
        for store in &stores {
            assert_eq!(store.head_position(&fresh).await.unwrap(), 8);
            let log = store.read_log(&fresh, 1, usize::MAX).await.unwrap();
            assert_eq!(
                log.iter().map(|e| e.position).collect::<Vec<_>>(),
                (1..=8).collect::<Vec<_>>()
            );
        }
        let mut events = jetstream(cluster.urls()[0].clone())
            .await
            .get_stream("AETHER_EVENTS_fresh")
            .await
            .unwrap();
        assert_eq!(events.info().await.unwrap().config.num_replicas, 3);
    });
}

/// A server with the single event stream of earlier versions is
/// refused with a message that names it, not written next to.
#[test]
fn the_single_stream_of_earlier_versions_is_refused_by_name() {
    block_on(async {
        let server = NatsServer::start();
        jetstream(server.url())
            .await
            .create_stream(async_nats::jetstream::stream::Config {
                name: "AETHER_EVENTS".into(),
                subjects: vec!["aether.events.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let error = JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
            .await
            .err()
            .expect("the old layout must be refused");
        let text = error.to_string();
        assert!(
            text.contains("AETHER_EVENTS,") && text.contains("AETHER_EVENTS_<namespace>"),
            "{text}"
        );
    });
}
