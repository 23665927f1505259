//! Long reads of an aggregate on the JetStream store go through a consumer
//! kept between activation's batches (`jetstream/reads/cursor.rs`): they
//! return exactly the events appended, from anywhere in the stream, with
//! other aggregates' events in between, after appends made while a
//! consumer was kept, and fail as retryable when the server is gone; replay
//! batches (`read_replay_batch`) hold exactly what `read_stream` reads. Each
//! test runs its own `nats-server` (the harness's, on a random port).

use std::time::Duration;

use aether_nats_harness::NatsServer;
use aether_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, JetStreamConfig, JetStreamStore,
    NewEvent, RecordedEvent, ReplayBatch, StoreError, StreamId,
};

/// More than two batches of 1 024, and not a multiple of it.
const LONG: u64 = 3_000;
/// Events per append (under JetStream's 1 000-message atomic batch).
const CHUNK: u64 = 300;
/// Activation's batch.
const BATCH: usize = 1_024;
/// The namespace's JetStream stream.
const STREAM: &str = "AETHER_EVENTS_bank";

fn stream(id: &str) -> StreamId {
    StreamId::new(
        "bank".parse().unwrap(),
        "bank-account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

async fn connect(server: &NatsServer) -> JetStreamStore {
    JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
        .await
        .unwrap()
}

/// Appends `count` events to `stream` (after its current version), each
/// with data and a type naming its stream and version; the events as
/// recorded.
async fn append(store: &JetStreamStore, stream: &StreamId, count: u64) -> Vec<RecordedEvent> {
    let version = store.stream_version(stream).await.unwrap();
    let request = AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Exact(version),
        events: (version + 1..=version + count)
            .map(|v| {
                let data = format!("{{\"stream\":\"{stream}\",\"version\":{v}}}");
                NewEvent::json(format!("deposited-{}", v % 7), data.into_bytes())
            })
            .collect(),
        metadata: EventMetadata {
            correlation_id: Some(format!("c-{stream}-{version}")),
            ..EventMetadata::default()
        },
        timestamp_ms: 1_000 + version,
    };
    let outcome = store.append(request).await.unwrap();
    assert!(!outcome.duplicate);
    outcome.events
}

/// Appends to `a` and `b` in turns, `CHUNK` at a time, until each has
/// `last` events: their messages interleave in the namespace's stream.
async fn append_interleaved(
    store: &JetStreamStore,
    a: &StreamId,
    b: &StreamId,
    last: u64,
) -> (Vec<RecordedEvent>, Vec<RecordedEvent>) {
    let (mut of_a, mut of_b) = (Vec::new(), Vec::new());
    while (of_a.len() as u64) < last {
        let count = CHUNK.min(last - of_a.len() as u64);
        of_a.extend(append(store, a, count).await);
        of_b.extend(append(store, b, count).await);
    }
    (of_a, of_b)
}

/// Reads `stream` from version `from` in batches of `BATCH` until a short
/// one, as activation does.
async fn read_as_activation(
    store: &JetStreamStore,
    stream: &StreamId,
    from: u64,
) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let next = from + all.len() as u64;
        let batch = store.read_stream(stream, next, BATCH).await.unwrap();
        assert!(batch.len() <= BATCH);
        let short = batch.len() < BATCH;
        all.extend(batch);
        if short {
            return all;
        }
    }
}

/// How many consumers the namespace's stream has.
async fn consumers(server: &NatsServer) -> usize {
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut events = js.get_stream(STREAM).await.unwrap();
    events.info().await.unwrap().state.consumer_count
}

/// Waits until the namespace's stream has no consumer left (the store
/// deletes them in the background); panics after a minute.
async fn no_consumers_left(server: &NatsServer) {
    for _ in 0..600 {
        if consumers(server).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store's read consumers were not deleted");
}

/// The events of `all` from version `from`, at most `limit`.
fn slice(all: &[RecordedEvent], from: u64, limit: usize) -> &[RecordedEvent] {
    let start = usize::try_from(from - 1).unwrap().min(all.len());
    &all[start..(start.saturating_add(limit)).min(all.len())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_read_has_exactly_the_events_appended_from_anywhere() {
    let server = NatsServer::start();
    let store = connect(&server).await;
    let (long, other) = (stream("long"), stream("other"));
    let (appended, others) = append_interleaved(&store, &long, &other, LONG).await;
    assert_eq!(appended.len() as u64, LONG);

    // A short read stays on direct gets.
    let short = store.read_stream(&long, 1, 10).await.unwrap();
    assert_eq!(short, slice(&appended, 1, 10));
    assert_eq!(
        consumers(&server).await,
        0,
        "a short read opens no consumer"
    );

    // As activation reads it; a consumer is kept between its batches.
    let first = store.read_stream(&long, 1, BATCH).await.unwrap();
    assert_eq!(first, slice(&appended, 1, BATCH));
    assert_eq!(consumers(&server).await, 1, "a consumer is kept");
    let mut all = first;
    all.extend(read_as_activation(&store, &long, BATCH as u64 + 1).await);
    assert_eq!(all, appended);
    no_consumers_left(&server).await;

    // In one read, and from the middle: by this store (which knows where
    // its reads ended) and by a fresh one (which searches).
    let fresh = connect(&server).await;
    for reader in [&store, &fresh] {
        assert_eq!(
            reader.read_stream(&long, 1, usize::MAX).await.unwrap(),
            appended
        );
        for (from, limit) in [
            (1_500, BATCH),
            (1_501, usize::MAX),
            (700, 2_000),
            (2_999, BATCH),
            (2, 300),
            (LONG + 1, BATCH),
        ] {
            let events = reader.read_stream(&long, from, limit).await.unwrap();
            assert_eq!(events, slice(&appended, from, limit), "from {from}");
        }
        assert_eq!(
            read_as_activation(reader, &long, 1_000).await,
            slice(&appended, 1_000, usize::MAX)
        );
    }

    // The other aggregate's events are its own, also read long.
    assert_eq!(read_as_activation(&store, &other, 1).await, others);
    no_consumers_left(&server).await;
}

/// Two aggregates of one namespace read in alternating batches: each
/// keeps its own consumer, and each read has its own events only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_aggregates_read_in_turns_keep_to_their_own_events() {
    let server = NatsServer::start();
    let store = connect(&server).await;
    let (a, b) = (stream("a"), stream("b"));
    let (of_a, of_b) = append_interleaved(&store, &a, &b, LONG).await;
    let (mut read_a, mut read_b) = (Vec::new(), Vec::new());
    loop {
        let batch_a = store
            .read_stream(&a, read_a.len() as u64 + 1, BATCH)
            .await
            .unwrap();
        let batch_b = store
            .read_stream(&b, read_b.len() as u64 + 1, BATCH)
            .await
            .unwrap();
        let done = batch_a.len() < BATCH && batch_b.len() < BATCH;
        read_a.extend(batch_a);
        read_b.extend(batch_b);
        if done {
            break;
        }
        assert_eq!(consumers(&server).await, 2, "one consumer each");
    }
    assert_eq!(read_a, of_a);
    assert_eq!(read_b, of_b);
    no_consumers_left(&server).await;
}

/// Events appended while a consumer is kept (its next batch already
/// asked for) are read by the batches after; a read that starts
/// elsewhere meanwhile has its own events; nothing claims the stream
/// ends where it used to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_while_a_consumer_is_kept_are_read() {
    let server = NatsServer::start();
    let store = connect(&server).await;
    let (long, other) = (stream("long"), stream("other"));
    // Exactly two batches: the second read ends where the stream ended.
    let (mut appended, _) = append_interleaved(&store, &long, &other, 2 * BATCH as u64).await;
    let first = store.read_stream(&long, 1, BATCH).await.unwrap();
    assert_eq!(first, slice(&appended, 1, BATCH));
    assert_eq!(consumers(&server).await, 1);

    // Appends to both aggregates while the consumer waits.
    appended.extend(append(&store, &long, 500).await);
    append(&store, &other, 10).await;
    // Elsewhere first: the kept consumer is not where this read starts.
    assert_eq!(
        store.read_stream(&long, 10, 20).await.unwrap(),
        slice(&appended, 10, 20)
    );
    let rest = read_as_activation(&store, &long, BATCH as u64 + 1).await;
    assert_eq!(rest, slice(&appended, BATCH as u64 + 1, usize::MAX));

    // Read to the end, then more appended: read too.
    appended.extend(append(&store, &long, 40).await);
    let all = read_as_activation(&store, &long, 1).await;
    assert_eq!(all, appended);
    // The consumer kept after the second full batch, then more appended
    // before the third read.
    let second = store
        .read_stream(&long, BATCH as u64 + 1, BATCH)
        .await
        .unwrap();
    assert_eq!(second, slice(&appended, BATCH as u64 + 1, BATCH));
    appended.extend(append(&store, &long, 700).await);
    let rest = read_as_activation(&store, &long, 2 * BATCH as u64 + 1).await;
    assert_eq!(rest, slice(&appended, 2 * BATCH as u64 + 1, usize::MAX));
    no_consumers_left(&server).await;
}

/// With the server gone, a long read (fresh, or one that would take the
/// kept consumer) fails as unavailable: no partial batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_the_server_gone_is_unavailable() {
    let mut server = NatsServer::start();
    let store = connect(&server).await;
    let (long, other) = (stream("long"), stream("other"));
    let (appended, _) = append_interleaved(&store, &long, &other, LONG).await;
    let first = store.read_stream(&long, 1, BATCH).await.unwrap();
    assert_eq!(first, slice(&appended, 1, BATCH));

    server.kill();
    // Wants more than the batch the kept consumer was asked for.
    for (from, limit) in [(BATCH as u64 + 1, 1_500), (1, usize::MAX)] {
        match store.read_stream(&long, from, limit).await {
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("from {from} with the server gone: {other:?}"),
        }
    }

    // Back: the reads have every event.
    server.restart();
    let mut all = Vec::new();
    for _ in 0..100 {
        match store.read_stream(&long, 1, usize::MAX).await {
            Ok(events) => {
                all = events;
                break;
            }
            Err(StoreError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(all, appended);
    assert_eq!(read_as_activation(&store, &long, 1).await, appended);
}

/// Reads `stream` from version `from` as activation does, in replay
/// batches of `BATCH` until a short one; each batch as read.
async fn replay_as_activation(
    store: &JetStreamStore,
    stream: &StreamId,
    from: u64,
) -> Vec<ReplayBatch> {
    let mut batches = Vec::new();
    let mut next = from;
    loop {
        let batch = store.read_replay_batch(stream, next, BATCH).await.unwrap();
        assert!(batch.len() <= BATCH);
        let short = batch.len() < BATCH;
        next += batch.len() as u64;
        batches.push(batch);
        if short {
            return batches;
        }
    }
}

/// Replay batches (written straight from the messages, through the kept
/// consumer or direct gets) hold exactly what `read_stream` reads, batch
/// by batch, across batch boundaries, from anywhere, with command ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_batches_hold_exactly_the_events_appended() {
    let server = NatsServer::start();
    let store = connect(&server).await;
    let (long, other) = (stream("long"), stream("other"));
    let (appended, others) = append_interleaved(&store, &long, &other, LONG).await;
    let fresh = connect(&server).await;
    for reader in [&store, &fresh] {
        for from in [1, 2, 1_000, 1_025, 2_999, LONG, LONG + 1] {
            let batches = replay_as_activation(reader, &long, from).await;
            let mut next = from;
            for batch in &batches {
                let expected = slice(&appended, next, BATCH);
                assert_eq!(*batch, ReplayBatch::from_events(expected), "from {next}");
                next += batch.len() as u64;
            }
            assert_eq!(next, LONG + 1, "read from {from} to the end");
        }
        // Short reads (direct gets) and odd limits.
        for (from, limit) in [
            (1, 10),
            (7, 255),
            (300, 256),
            (1_500, 2_000),
            (1, usize::MAX),
        ] {
            let batch = reader.read_replay_batch(&long, from, limit).await.unwrap();
            assert_eq!(
                batch,
                ReplayBatch::from_events(slice(&appended, from, limit)),
                "from {from}, at most {limit}"
            );
        }
    }
    let of_other: Vec<_> = replay_as_activation(&store, &other, 1).await;
    let read: usize = of_other.iter().map(ReplayBatch::len).sum();
    assert_eq!(read, others.len());
    assert!(
        store
            .read_replay_batch(&stream("nobody"), 1, BATCH)
            .await
            .unwrap()
            .is_empty()
    );
    no_consumers_left(&server).await;
}

/// A replay read racing appends to the same aggregate: every batch holds
/// exactly the events at its versions (never a gap, never another's),
/// and a read after the appends has them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_batches_racing_appends_hold_the_events_at_their_versions() {
    let server = NatsServer::start();
    let store = std::sync::Arc::new(connect(&server).await);
    let (long, other) = (stream("long"), stream("other"));
    let (mut appended, _) = append_interleaved(&store, &long, &other, 2 * BATCH as u64).await;
    let writer = {
        let (store, long) = (store.clone(), long.clone());
        tokio::spawn(async move {
            let mut more = Vec::new();
            for _ in 0..10 {
                more.extend(append(&store, &long, 150).await);
            }
            more
        })
    };
    let mut read = Vec::new();
    for _ in 0..5 {
        read.push(replay_as_activation(&store, &long, 1).await);
    }
    appended.extend(writer.await.unwrap());
    for batches in read {
        let mut next = 1;
        for batch in &batches {
            assert_eq!(
                *batch,
                ReplayBatch::from_events(slice(&appended, next, batch.len())),
                "from {next}"
            );
            next += batch.len() as u64;
        }
        assert!(
            next > 2 * BATCH as u64,
            "read at least what was there first"
        );
    }
    let all = replay_as_activation(&store, &long, 1).await;
    let total: usize = all.iter().map(ReplayBatch::len).sum();
    assert_eq!(total, appended.len());
    let mut next = 1;
    for batch in &all {
        assert_eq!(
            *batch,
            ReplayBatch::from_events(slice(&appended, next, batch.len()))
        );
        next += batch.len() as u64;
    }
}
