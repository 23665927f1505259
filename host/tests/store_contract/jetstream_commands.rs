//! Command ids on the JetStream store across two stores (two nodes): each
//! store remembers the ids of the events it has read and reads only what
//! was stored since, so an id the other store recorded after that is
//! still found, an id recorded before it too, and a new one is not.

use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, JetStreamConfig, JetStreamStore,
    NewEvent, StreamId,
};
use aether_nats_harness::NatsServer;

fn append(stream: &StreamId, events: usize, command_id: Option<&str>) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: (0..events)
            .map(|i| NewEvent::json("noted", format!("{{\"i\":{i}}}").into_bytes()))
            .collect(),
        metadata: EventMetadata {
            command_id: command_id.map(str::to_owned),
            ..EventMetadata::default()
        },
        timestamp_ms: 1,
    }
}

/// A store on `server` (one "node"; each call is another).
async fn connect(server: &NatsServer) -> JetStreamStore {
    JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
        .await
        .unwrap()
}

fn account(id: &str) -> StreamId {
    StreamId::new(
        "bank".parse().unwrap(),
        "account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

#[test]
fn a_command_id_recorded_by_another_store_is_found_before_and_after_it_was_read() {
    aether_host::store::contract::block_on(async {
        let server = NatsServer::start();
        let (a, b) = (connect(&server).await, connect(&server).await);
        let s = account("acc-1");
        a.append(append(&s, 2, Some("c-1"))).await.unwrap();
        let versions = |found: Option<Vec<aether_host::store::RecordedEvent>>| {
            found.map(|events| events.iter().map(|e| e.version).collect::<Vec<_>>())
        };
        // B reads the stream once (versions 1 and 2).
        assert_eq!(
            versions(b.command_events(&s, "c-1").await.unwrap()),
            Some(vec![1, 2])
        );

        // A records more; B finds it in what was stored since.
        a.append(append(&s, 1, Some("c-2"))).await.unwrap();
        a.append(append(&s, 1, None)).await.unwrap();
        assert_eq!(
            versions(b.command_events(&s, "c-2").await.unwrap()),
            Some(vec![3])
        );
        assert_eq!(versions(b.command_events(&s, "c-9").await.unwrap()), None);
        assert_eq!(
            versions(b.command_events(&s, "c-1").await.unwrap()),
            Some(vec![1, 2]),
            "an id from before, found again"
        );

        // An append through B of a command A recorded is its first
        // outcome, whether B had read it yet or not.
        let again = b.append(append(&s, 1, Some("c-2"))).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.events[0].version, 3);
        a.append(append(&s, 2, Some("c-3"))).await.unwrap();
        let again = b.append(append(&s, 2, Some("c-3"))).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(
            again.events.iter().map(|e| e.version).collect::<Vec<_>>(),
            [5, 6]
        );
        assert_eq!(
            a.stream_version(&s).await.unwrap(),
            6,
            "nothing stored twice"
        );
        let fresh = b.append(append(&s, 1, Some("c-4"))).await.unwrap();
        assert!(!fresh.duplicate);
        assert_eq!(fresh.events[0].version, 7);
    });
}

/// A store that appends at the version it last saw publishes without
/// asking the leader first; when another store moved the stream on
/// meanwhile, JetStream refuses that publish and the append is a
/// conflict naming the real version, with nothing stored.
#[test]
fn an_append_at_a_version_another_store_moved_past_is_a_conflict() {
    aether_host::store::contract::block_on(async {
        let server = NatsServer::start();
        let (a, b) = (connect(&server).await, connect(&server).await);
        let s = account("acc-2");
        let exact = |version: u64, command_id: Option<&str>| AppendRequest {
            expected: ExpectedVersion::Exact(version),
            ..append(&s, 1, command_id)
        };
        a.append(exact(0, None)).await.unwrap();
        a.append(exact(1, None)).await.unwrap(); // A last saw version 2
        b.append(exact(2, Some("b-1"))).await.unwrap(); // B moves it to 3
        let error = a.append(exact(2, None)).await.unwrap_err();
        match error {
            aether_host::store::AppendError::Conflict(conflict) => {
                assert_eq!((conflict.expected, conflict.actual), (2, 3));
            }
            other => panic!("a conflict, not {other:?}"),
        }
        // The command B stored is its outcome through A too, at any
        // expected version.
        let again = a.append(exact(2, Some("b-1"))).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.events[0].version, 3);
        let next = a.append(exact(3, None)).await.unwrap();
        assert_eq!(next.events[0].version, 4);
        assert_eq!(
            b.stream_version(&s).await.unwrap(),
            4,
            "nothing else stored"
        );
        let read = b.read_stream(&s, 1, 10).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
    });
}
