//! Following a namespace's log in the JetStream store (what the bus and
//! catch-up subscriptions read there): every event any store sharing the
//! servers stores, in position order, history then live, and nothing of
//! another namespace.

use std::time::Duration;

use aether_host::namespace::Namespace;
use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, JetStreamConfig, JetStreamStore,
    LogFollower, NewEvent, RecordedEvent, StreamId,
};
use aether_nats_harness::NatsServer;

fn stream(namespace: &str, id: &str) -> StreamId {
    StreamId::new(
        namespace.parse().unwrap(),
        "account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

async fn append(store: &JetStreamStore, stream: &StreamId, events: usize) {
    store
        .append(AppendRequest {
            stream: stream.clone(),
            expected: ExpectedVersion::Any,
            events: (0..events)
                .map(|i| NewEvent::json("noted", format!("{{\"i\":{i}}}").into_bytes()))
                .collect(),
            metadata: EventMetadata::default(),
            timestamp_ms: 1,
        })
        .await
        .unwrap();
}

async fn next(follower: &mut Box<dyn LogFollower>) -> RecordedEvent {
    tokio::time::timeout(Duration::from_secs(20), follower.next())
        .await
        .expect("the next event within 20 s")
        .unwrap()
}

#[test]
fn a_follower_sees_every_event_of_its_namespace_from_any_store_in_order() {
    aether_host::store::contract::block_on(async {
        let server = NatsServer::start();
        let connect = || JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1));
        let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
        let bank: Namespace = "bank".parse().unwrap();
        // Started before the namespace has a stream at all.
        let mut from_start = b.follow_log(&bank, 0).await.unwrap().expect("a feed");
        let mut shop = b
            .follow_log(&"shop".parse().unwrap(), 0)
            .await
            .unwrap()
            .expect("a feed");

        append(&a, &stream("bank", "x"), 3).await;
        append(&b, &stream("bank", "y"), 2).await;
        append(&a, &stream("shop", "z"), 1).await;
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(next(&mut from_start).await);
        }
        assert_eq!(
            seen,
            b.read_log(&bank, 1, 100).await.unwrap(),
            "exactly the log, as read_log reads it"
        );
        assert_eq!(
            seen.iter().map(|e| e.position).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let other = next(&mut shop).await;
        assert_eq!((other.stream, other.position), (stream("shop", "z"), 1));

        // Live: stored after the follower caught up.
        append(&b, &stream("bank", "x"), 1).await;
        let live = next(&mut from_start).await;
        assert_eq!(
            (live.stream.clone(), live.position, live.version),
            (stream("bank", "x"), 6, 4)
        );

        // From the middle of the log.
        let mut from_three = a.follow_log(&bank, 3).await.unwrap().expect("a feed");
        let rest: Vec<u64> = [
            next(&mut from_three).await,
            next(&mut from_three).await,
            next(&mut from_three).await,
        ]
        .iter()
        .map(|e| e.position)
        .collect();
        assert_eq!(rest, [4, 5, 6]);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), shop.next())
                .await
                .is_err(),
            "nothing of bank reaches shop's follower"
        );
    });
}
