//! The event bus across nodes, over a real `nats-server`: two local buses
//! (two "nodes") joined by the NATS bus; scopes, filters, the
//! cross-namespace opt-in and a slow subscriber; and, with the JetStream
//! store, the store's streams as the bus.

use std::time::Duration;

use aether_host::bus::nats::NatsBus;
use aether_host::bus::{BusError, Filter, IdPattern, LocalBus, Scope};
use aether_host::namespace::Namespace;
use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, MemoryStore, NewEvent,
    RecordedEvent, StreamId,
};
use aether_nats_harness::NatsServer;

/// Stores one event of `event_type` on `namespace/account/id` and returns it.
async fn stored(
    store: &MemoryStore,
    namespace: &str,
    id: &str,
    event_type: &str,
) -> Vec<RecordedEvent> {
    let stream = StreamId::new(
        namespace.parse().unwrap(),
        "account".parse().unwrap(),
        id.parse().unwrap(),
    );
    let version = store.stream_version(&stream).await.unwrap();
    store
        .append(AppendRequest {
            stream,
            expected: ExpectedVersion::Exact(version),
            events: vec![NewEvent::json(event_type, b"{}".to_vec())],
            metadata: EventMetadata::default(),
            timestamp_ms: 0,
        })
        .await
        .unwrap()
        .events
}

fn bank() -> Scope {
    Scope::Namespace(Namespace::new("bank").unwrap())
}

/// Node A forwards its local bus to NATS; node B subscribes there.
struct TwoNodes {
    local_a: LocalBus,
    node_b: NatsBus,
    _node_a: NatsBus,
    _forwarder: tokio::task::JoinHandle<()>,
}

impl TwoNodes {
    async fn on(server: &NatsServer) -> TwoNodes {
        let urls = vec![server.url()];
        let node_a = NatsBus::connect(&urls).await.unwrap();
        let local_a = LocalBus::default();
        let forwarder = node_a.forward(&local_a);
        TwoNodes {
            local_a,
            node_b: NatsBus::connect(&urls).await.unwrap(),
            _node_a: node_a,
            _forwarder: forwarder,
        }
    }
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_on_one_node_reach_filtered_subscribers_on_another() {
    let server = NatsServer::start();
    // Named bindings: node A and its forwarder live until the test ends.
    let TwoNodes {
        local_a,
        node_b,
        _node_a,
        _forwarder,
    } = TwoNodes::on(&server).await;

    let filter = Filter {
        event_types: Some(["Deposited".to_owned()].into()),
        aggregate_type: None,
        aggregate_id: Some(IdPattern::new("vip-*").unwrap()),
    };
    let mut filtered = node_b.subscribe(bank(), filter, 100).await.unwrap();
    let mut whole_namespace = node_b
        .subscribe(bank(), Filter::default(), 100)
        .await
        .unwrap();
    let mut everything = node_b
        .subscribe(
            Scope::AllNamespaces {
                reason: "the audit service".into(),
            },
            Filter::default(),
            100,
        )
        .await
        .unwrap();

    let store = MemoryStore::new();
    for (namespace, id, event_type) in [
        ("shop", "vip-1", "Deposited"),
        ("bank", "vip-1", "Opened"),
        ("bank", "acc-1", "Deposited"),
        ("bank", "vip-1", "Deposited"),
    ] {
        local_a.publish(&stored(&store, namespace, id, event_type).await);
    }

    let got = within(filtered.recv()).await.unwrap();
    assert_eq!(
        (got.stream.to_string().as_str(), got.event_type.as_str()),
        ("bank/account/vip-1", "Deposited")
    );
    assert_eq!(
        got.version, 2,
        "the event as stored, decoded on the other side"
    );
    let mut in_bank = Vec::new();
    for _ in 0..3 {
        in_bank.push(within(whole_namespace.recv()).await.unwrap().position);
    }
    assert_eq!(
        in_bank,
        [1, 2, 3],
        "only its namespace, in order (positions of bank's own log)"
    );
    let mut all = Vec::new();
    for _ in 0..4 {
        let event = within(everything.recv()).await.unwrap();
        all.push((event.stream.namespace.to_string(), event.position));
    }
    let expected = [("shop", 1), ("bank", 1), ("bank", 2), ("bank", 3)];
    assert_eq!(
        all,
        expected.map(|(ns, position)| (ns.to_owned(), position)),
        "the opt-in sees every namespace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_nats_subscriber_is_cut_off_with_an_error_and_counted() {
    let server = NatsServer::start();
    // Named bindings: node A and its forwarder live until the test ends.
    let TwoNodes {
        local_a,
        node_b,
        _node_a,
        _forwarder,
    } = TwoNodes::on(&server).await;
    let mut slow = node_b
        .subscribe(bank(), Filter::default(), 4)
        .await
        .unwrap();
    let mut keeping_up = node_b
        .subscribe(bank(), Filter::default(), 1000)
        .await
        .unwrap();

    let store = MemoryStore::new();
    for i in 0..50 {
        local_a.publish(&stored(&store, "bank", &format!("acc-{i}"), "Opened").await);
    }
    for expected in 1..=50 {
        assert_eq!(within(keeping_up.recv()).await.unwrap().position, expected);
    }
    // The slow one gets what fitted in its buffer, then the error: never a
    // silent gap.
    let mut received = Vec::new();
    let error = loop {
        match within(slow.recv()).await {
            Ok(event) => received.push(event.position),
            Err(error) => break error,
        }
    };
    assert!(matches!(error, BusError::Lagged(_)), "{error:?}");
    assert_eq!(
        received,
        (1..=received.len() as u64).collect::<Vec<_>>(),
        "no gap before the error"
    );
    assert!(received.len() < 50);
    assert_eq!(within(slow.recv()).await, Err(BusError::Closed));
    assert_eq!(node_b.cut_off_subscribers(), 1);
}

/// The in-process bus and the NATS bus behave the same behind `Bus`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_buses_keep_the_same_contract_behind_one_interface() {
    use aether_host::bus::Bus;

    let server = NatsServer::start();
    let buses: Vec<(&str, Box<dyn Bus>)> = vec![
        ("local", Box::new(LocalBus::default())),
        (
            "nats",
            Box::new(NatsBus::connect(&[server.url()]).await.unwrap()),
        ),
    ];
    for (name, bus) in buses {
        let filter = Filter {
            event_types: Some(["Deposited".to_owned()].into()),
            aggregate_type: None,
            aggregate_id: None,
        };
        let mut subscription = bus.subscribe_to(bank(), filter).await.unwrap();
        let store = MemoryStore::new();
        for (namespace, event_type) in [
            ("bank", "Opened"),
            ("shop", "Deposited"),
            ("bank", "Deposited"),
            ("bank", "Deposited"),
        ] {
            bus.publish_events(&stored(&store, namespace, "acc-1", event_type).await)
                .await;
        }
        for version in [2, 3] {
            let event = within(subscription.next_event()).await.unwrap();
            assert_eq!(
                (event.stream.namespace.as_str(), event.version),
                ("bank", version),
                "{name}"
            );
            assert_eq!(event.event_type, "Deposited", "{name}");
        }
    }
}

/// With the JetStream store, the namespace's stream is the bus: a feed
/// subscriber and a catch-up subscription on "node B" see what "node A"
/// stores, with nothing published on any bus (B's in-process bus stays
/// silent), in position order; a feed follows one namespace only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_jetstream_the_stores_streams_are_the_bus() {
    use std::sync::Arc;

    use aether_host::bus::catchup::{CatchUp, StartFrom};
    use aether_host::bus::feed::StoreFeed;
    use aether_host::bus::{Bus, BusError};
    use aether_host::store::{JetStreamConfig, JetStreamStore};

    let server = NatsServer::start();
    let connect = || JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1));
    let node_a = connect().await.unwrap();
    let node_b: Arc<dyn EventStore> = Arc::new(connect().await.unwrap());
    let append = |id: &'static str, event_type: &'static str| {
        let stream = StreamId::new(
            "bank".parse().unwrap(),
            "account".parse().unwrap(),
            id.parse().unwrap(),
        );
        node_a.append(AppendRequest {
            stream,
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::json(event_type, b"{}".to_vec())],
            metadata: EventMetadata::default(),
            timestamp_ms: 0,
        })
    };
    append("vip-1", "Opened").await.unwrap(); // history, position 1

    let silent = LocalBus::default();
    let mut catch_up = CatchUp::start(
        node_b.clone(),
        &silent,
        &Namespace::new("bank").unwrap(),
        Filter::default(),
        None,
        StartFrom::Beginning,
    )
    .await
    .unwrap();
    let feed = StoreFeed::new(node_b.clone());
    let filter = Filter {
        event_types: Some(["Deposited".to_owned()].into()),
        aggregate_type: None,
        aggregate_id: Some(IdPattern::new("vip-*").unwrap()),
    };
    let mut deposits = feed
        .subscribe(&Namespace::new("bank").unwrap(), filter)
        .await
        .unwrap();
    assert!(
        matches!(
            feed.subscribe_to(
                Scope::AllNamespaces {
                    reason: "test".into()
                },
                Filter::default()
            )
            .await
            .err(),
            Some(BusError::Refused(_))
        ),
        "a feed follows one namespace"
    );

    for (id, event_type) in [
        ("acc-1", "Deposited"),
        ("vip-1", "Deposited"),
        ("vip-1", "Withdrawn"),
    ] {
        append(id, event_type).await.unwrap();
    }
    let got = within(deposits.recv()).await.unwrap();
    assert_eq!(
        (
            got.stream.to_string(),
            got.event_type,
            got.position,
            got.version
        ),
        (
            "bank/account/vip-1".to_owned(),
            "Deposited".to_owned(),
            3,
            2
        ),
        "only what the filter matches, stored after the subscription"
    );
    let mut positions = Vec::new();
    for _ in 0..4 {
        positions.push(within(catch_up.next()).await.unwrap().position);
    }
    assert_eq!(
        positions,
        [1, 2, 3, 4],
        "history then live, from the store's stream"
    );
    assert_eq!(silent.cut_off_subscribers(), 0);
}
