//! Unit tests of the embedded store beyond the shared contract: durability
//! across reopen, group commit, refusal of foreign and damaged files.

use std::path::Path;
use std::sync::Arc;

use super::EmbeddedStore;
use crate::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    ReplayBatch, Snapshot, StoreError, StreamId,
};
use aether_core::namespace::Namespace;

mod corruption;
mod io_errors;
mod journal;
mod power_loss;
mod start_append;
mod tamper;

fn stream(id: &str) -> StreamId {
    StreamId::new(
        "bank".parse().unwrap(),
        "bank-account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

fn request(stream: &StreamId, expected: ExpectedVersion, payloads: &[String]) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events: payloads
            .iter()
            .map(|p| NewEvent::json("happened", p.as_bytes().to_vec()))
            .collect(),
        metadata: EventMetadata::default(),
        timestamp_ms: 1_700_000_000_000,
    }
}

fn snapshot(stream: &StreamId, version: u64, state: &str) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version,
        snapshot_key: "blake3:test".into(),
        state: state.as_bytes().to_vec(),
        timestamp_ms: 5,
    }
}

fn bank() -> Namespace {
    "bank".parse().unwrap()
}

/// The log of the `bank` namespace, which every stream of [`stream`] is in.
async fn everything(store: &EmbeddedStore) -> Vec<RecordedEvent> {
    store.read_log(&bank(), 0, usize::MAX).await.unwrap()
}

fn assert_names_file(error: &StoreError, path: &Path) {
    let text = error.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "the error must name {}: {text}",
        path.display()
    );
}

#[tokio::test]
async fn reopen_keeps_events_snapshots_and_command_ids() {
    let dir = tempfile::tempdir().unwrap();
    let acc = stream("acc-1");
    let mut with_command = request(&acc, ExpectedVersion::Exact(0), &["1".into(), "2".into()]);
    with_command.metadata.command_id = Some("cmd-1".into());
    let (first, before) = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let first = store.append(with_command.clone()).await.unwrap();
        store
            .append(request(
                &stream("acc-2"),
                ExpectedVersion::Any,
                &["3".into()],
            ))
            .await
            .unwrap();
        store.save_snapshot(snapshot(&acc, 2, "two")).await.unwrap();
        (first, everything(&store).await)
    };
    assert_eq!(before.len(), 3);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        everything(&store).await,
        before,
        "the log survives a reopen"
    );
    assert_eq!(store.stream_version(&acc).await.unwrap(), 2);
    assert_eq!(
        store.load_snapshot(&acc, "blake3:test").await.unwrap(),
        Some(snapshot(&acc, 2, "two"))
    );
    let retry = store.append(with_command).await.unwrap();
    assert!(retry.duplicate, "command ids survive a reopen");
    assert_eq!(retry.events, first.events);
    let next = store
        .append(request(&acc, ExpectedVersion::Exact(2), &["4".into()]))
        .await
        .unwrap();
    assert_eq!(
        (next.events[0].version, next.events[0].position),
        (3, 4),
        "versions and positions continue from the stored heads"
    );
    assert!(
        format!("{store:?}").contains("events_at_open: 3"),
        "{store:?}"
    );
}

/// A file written before event records went to version 3 (format version
/// 2, its records of record version 2, sealed with blake3) opens, verifies
/// and reads as before, and is stamped format version 3 on open; events
/// appended to it are written as version 3, next to the old ones.
#[tokio::test]
async fn a_store_of_version_2_records_still_reads_and_appends_version_3() {
    use super::codec::{self, Seal};
    use super::tables::{EVENTS, FORMAT_VERSION_KEY, META};
    use redb::{Database, ReadableTable};

    let dir = tempfile::tempdir().unwrap();
    let acc = stream("acc-1");
    let payloads = ["1".to_owned(), "2".to_owned(), "3".to_owned()];
    let before = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .append(request(&acc, ExpectedVersion::Exact(0), &payloads[..2]))
            .await
            .unwrap();
        store
            .append(request(
                &stream("acc-2"),
                ExpectedVersion::Any,
                &payloads[2..],
            ))
            .await
            .unwrap();
        everything(&store).await
    };
    // (format version, record versions)
    let versions = |dir: &Path| -> (u64, Vec<u8>) {
        let db = Database::open(dir.join("events.redb")).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let meta = txn.open_table(META).unwrap();
        let format = meta.get(FORMAT_VERSION_KEY).unwrap().unwrap().value();
        let events = txn.open_table(EVENTS).unwrap();
        let records = events.iter().unwrap().map(|e| e.unwrap().1.value()[0]);
        (format, records.collect())
    };
    assert_eq!(versions(dir.path()), (4, vec![3, 3, 3]));
    {
        let db = Database::open(dir.path().join("events.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut events = txn.open_table(EVENTS).unwrap();
            for (event, sequence) in before.iter().zip(1..) {
                let record = codec::encode_event_as(sequence, event, 2, Seal::Blake3).unwrap();
                events.insert(sequence, record.as_slice()).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(FORMAT_VERSION_KEY, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(versions(dir.path()), (2, vec![2, 2, 2]));

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(everything(&store).await, before);
    assert_eq!(
        store.read_stream(&acc, 1, 10).await.unwrap(),
        before[..2].to_vec()
    );
    store
        .append(request(&acc, ExpectedVersion::Exact(2), &["4".into()]))
        .await
        .unwrap();
    let read = store.read_stream(&acc, 1, 10).await.unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[..2], before[..2]);
    drop(store);
    assert_eq!(versions(dir.path()), (4, vec![2, 2, 2, 3]));
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.read_stream(&acc, 1, 10).await.unwrap(), read);
}

/// A stream whose events lie 1 to 6 records apart in the log (so some are
/// read by one range scan stepping over the others, some looked up alone)
/// reads the same from every version and in every batch size, and a record
/// missing from such a run is reported, not skipped.
#[tokio::test]
async fn a_stream_interleaved_with_others_reads_whole_and_in_order() {
    use super::tables::EVENTS;
    use redb::Database;

    let dir = tempfile::tempdir().unwrap();
    let (mine, other) = (stream("mine"), stream("other"));
    let store = EmbeddedStore::open(dir.path()).unwrap();
    for gap in [0, 1, 2, 3, 4, 5, 0, 0, 3, 2, 6, 1] {
        let one = request(&mine, ExpectedVersion::Any, &[format!("{gap}")]);
        store.append(one).await.unwrap();
        let others: Vec<String> = (0..gap).map(|i| format!("{i}")).collect();
        if !others.is_empty() {
            let others = request(&other, ExpectedVersion::Any, &others);
            store.append(others).await.unwrap();
        }
    }
    let expected: Vec<RecordedEvent> = everything(&store)
        .await
        .into_iter()
        .filter(|e| e.stream == mine)
        .collect();
    assert_eq!(expected.len(), 12);
    for from in 1..=13 {
        for limit in [1, 2, 3, 5, 100] {
            let read = store.read_stream(&mine, from, limit).await.unwrap();
            let want: Vec<RecordedEvent> = expected
                .iter()
                .skip(from as usize - 1)
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(read, want, "from {from}, limit {limit}");
            let batch = store.read_replay_batch(&mine, from, limit).await.unwrap();
            assert_eq!(
                batch,
                ReplayBatch::from_events(&want),
                "from {from}, limit {limit}"
            );
        }
    }
    // The 4th event goes missing (log sequence 7, 3 after the 3rd and 4
    // before the 5th: one run). Its log sequence is its position: every
    // event here is in one namespace.
    let missing = expected[3].position;
    assert_eq!(missing, 7);
    drop(store);
    {
        let db = Database::open(dir.path().join("events.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(EVENTS).unwrap().remove(missing).unwrap();
        txn.commit().unwrap();
    }
    let db = Database::open(dir.path().join("events.redb")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let index = txn.open_table(super::tables::STREAM_INDEX).unwrap();
    let events = txn.open_table(EVENTS).unwrap();
    let key = super::tables::stream_key(&mine);
    let path = dir.path().join("events.redb");
    let errors = [
        super::read::stream_events::<Vec<RecordedEvent>>(
            &path, &index, &events, &mine, &key, 1, 100,
        )
        .unwrap_err(),
        super::read::stream_events::<ReplayBatch>(&path, &index, &events, &mine, &key, 1, 100)
            .unwrap_err(),
    ];
    for error in errors {
        let text = error.to_string();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{text}");
        assert!(
            text.contains(&format!(
                "version 4): the stream index points at log sequence {missing}, which holds no event"
            )),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let appends = 400;
    let tasks: Vec<_> = (0..appends)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let acc = stream(&format!("acc-{}", i % 50));
                store
                    .append(request(&acc, ExpectedVersion::Any, &[format!("{i}")]))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let commits = store.writer.commits();
    assert!(
        commits < appends / 2,
        "{appends} concurrent appends took {commits} commits: group commit is not batching"
    );
    let positions: Vec<u64> = everything(&store)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(positions, (1..=appends).collect::<Vec<_>>());
}

/// Appends to several namespaces in shared commits, some of them
/// conflicts, leave every namespace's positions gapless and its byte count
/// equal to the payloads it stored, before and after a reopen (which
/// verifies both). Each append of a batch must see the namespace as the
/// earlier ones of the batch left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_across_namespaces_keep_positions_and_byte_counts() {
    let dir = tempfile::tempdir().unwrap();
    let namespaces: Vec<Namespace> = ["ns-a", "ns-b", "ns-c"]
        .iter()
        .map(|name| name.parse().unwrap())
        .collect();
    let appends = 300;
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..appends)
        .map(|i| {
            let store = Arc::clone(&store);
            let namespace = namespaces[i % namespaces.len()].clone();
            tokio::spawn(async move {
                let id = format!("acc-{}", i % 7).parse().unwrap();
                let acc = StreamId::new(namespace.clone(), "bank-account".parse().unwrap(), id);
                // Every fifth append expects a fresh stream: once its
                // stream has events it conflicts and must store nothing.
                let expected = if i % 5 == 0 {
                    ExpectedVersion::Exact(0)
                } else {
                    ExpectedVersion::Any
                };
                let payload = "x".repeat(1 + i % 11);
                let stored = store.append(request(&acc, expected, &[payload])).await;
                (
                    namespace,
                    stored
                        .ok()
                        .map(|outcome| outcome.events[0].data.len() as u64),
                )
            })
        })
        .collect();
    let mut expected_bytes = std::collections::HashMap::new();
    let mut conflicts = 0;
    for task in tasks {
        let (namespace, stored) = task.await.unwrap();
        match stored {
            Some(bytes) => *expected_bytes.entry(namespace).or_insert(0) += bytes,
            None => conflicts += 1,
        }
    }
    assert!(
        conflicts > 0,
        "no append conflicted: the test checks nothing of conflicts"
    );
    assert!(
        store.writer.commits() < appends as u64 / 2,
        "the appends were not batched: the test checks nothing of batches"
    );
    let check = |store: Arc<EmbeddedStore>| {
        let (namespaces, expected_bytes) = (namespaces.clone(), expected_bytes.clone());
        async move {
            for namespace in &namespaces {
                let stored = store.stored_bytes(namespace).await.unwrap();
                assert_eq!(stored, expected_bytes[namespace], "{namespace}");
                let positions: Vec<u64> = store
                    .read_log(namespace, 0, usize::MAX)
                    .await
                    .unwrap()
                    .iter()
                    .map(|event| event.position)
                    .collect();
                let count = positions.len() as u64;
                assert_eq!(positions, (1..=count).collect::<Vec<_>>(), "{namespace}");
                assert_eq!(store.head_position(namespace).await.unwrap(), count);
            }
        }
    };
    check(Arc::clone(&store)).await;
    drop(store);
    check(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn conflicts_in_one_batch_are_answered_separately() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let acc = stream("acc-1");
    // Queued together, so the writer is likely to take them in one batch;
    // the outcome must be the same as if they ran one after the other.
    let (a, b, c) = tokio::join!(
        store.append(request(&acc, ExpectedVersion::Exact(0), &["a".into()])),
        store.append(request(&acc, ExpectedVersion::Exact(0), &["b".into()])),
        store.append(request(&acc, ExpectedVersion::Exact(1), &["c".into()])),
    );
    assert_eq!(a.unwrap().last_version(), 1);
    let conflict = b.unwrap_err();
    let conflict = conflict.as_conflict().unwrap();
    assert_eq!((conflict.expected, conflict.actual), (0, 1));
    assert_eq!(c.unwrap().last_version(), 2);
    assert_eq!(store.head_position(&bank()).await.unwrap(), 2);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = EmbeddedStore::open(dir.path()).unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
    assert_names_file(&error, &dir.path().join("events.redb"));
}

/// A process killed while it created a store leaves only the half-made
/// temporary file: the next open replaces it and opens an empty store,
/// instead of refusing a half-written `events.redb` as corrupt.
#[tokio::test]
async fn a_store_killed_while_it_was_created_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let half_made = dir.path().join("events.redb.new");
    std::fs::write(&half_made, b"redb\x1a\x0a\xa9\x0d").unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(
        !half_made.exists(),
        "the leftover is replaced and renamed away"
    );
    assert!(dir.path().join("events.redb").exists());
    assert!(everything(&store).await.is_empty());
    store
        .append(request(
            &stream("acc-1"),
            ExpectedVersion::Exact(0),
            &["{}".into()],
        ))
        .await
        .unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(everything(&reopened).await.len(), 1);
    assert!(!half_made.exists());
}

#[test]
fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    let path = dir.path().join("events.redb");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(super::tables::META)
            .unwrap()
            .insert(super::tables::FORMAT_VERSION_KEY, 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert_names_file(&error, &path);
    assert!(error.to_string().contains("format version 99"), "{error}");
}

/// A file of format version 1 (one global log, before the logs per
/// namespace) is refused with the versions named, not misread.
#[test]
fn a_format_version_1_file_is_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    {
        // What version 1 wrote: its tables (no namespace_log), one event
        // under its global position, and the version stamp.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(super::tables::META)
            .unwrap()
            .insert(super::tables::FORMAT_VERSION_KEY, 1)
            .unwrap();
        txn.open_table(super::tables::EVENTS)
            .unwrap()
            .insert(1, [1u8; 64].as_slice())
            .unwrap();
        txn.open_table(super::tables::STREAM_INDEX)
            .unwrap()
            .insert(("bank/bank-account/acc-1", 1), 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert_names_file(&error, &path);
    let text = error.to_string();
    assert!(
        text.contains("on-disk format version 1 (one log for all namespaces)")
            && text.contains(&format!(
                "reads only versions 2, 3 and {}",
                super::tables::FORMAT_VERSION
            )),
        "{text}"
    );
    let again = EmbeddedStore::open(dir.path()).unwrap_err();
    assert_eq!(again.to_string(), text, "nothing was converted");
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn.open_table(super::tables::META).unwrap();
    let stamped = meta.get(super::tables::FORMAT_VERSION_KEY).unwrap();
    assert_eq!(stamped.map(|v| v.value()), Some(1), "still version 1");
}

/// Each namespace numbers its events from 1, and both logs continue from
/// their own heads after a reopen.
#[tokio::test]
async fn namespace_positions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let other: Namespace = "other".parse().unwrap();
    let elsewhere = StreamId::new(
        other.clone(),
        "bank-account".parse().unwrap(),
        "acc-1".parse().unwrap(),
    );
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let payloads = ["1".to_owned(), "2".to_owned()];
        let acc = stream("acc-1");
        store
            .append(request(&acc, ExpectedVersion::Any, &payloads))
            .await
            .unwrap();
        store
            .append(request(&elsewhere, ExpectedVersion::Any, &payloads[..1]))
            .await
            .unwrap();
        store
            .append(request(&acc, ExpectedVersion::Any, &payloads[..1]))
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position(&bank()).await.unwrap(), 3);
    assert_eq!(store.head_position(&other).await.unwrap(), 1);
    let next = store
        .append(request(
            &elsewhere,
            ExpectedVersion::Exact(1),
            &["3".into()],
        ))
        .await
        .unwrap();
    assert_eq!((next.events[0].version, next.events[0].position), (2, 2));
    let log = store.read_log(&other, 1, usize::MAX).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (e.position, e.version))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 2)]
    );
    assert!(log.iter().all(|e| e.stream == elsewhere));
    assert!(
        format!("{store:?}").contains("events_at_open: 4"),
        "{store:?}"
    );
}

#[test]
fn another_applications_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let table: redb::TableDefinition<'_, &str, &str> = redb::TableDefinition::new("users");
        txn.open_table(table)
            .unwrap()
            .insert("ada", "admin")
            .unwrap();
        txn.commit().unwrap();
    }
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert_names_file(&error, &path);
    assert!(
        error.to_string().contains("not an Aether event store"),
        "{error}"
    );
}

/// What a measuring test is asked for: `AETHER_MEASURE_APPENDS` appends
/// (else `default`) in a new directory under `AETHER_MEASURE_DIR` (else
/// the system's temporary directory).
fn measurement(default: u64) -> (u64, tempfile::TempDir) {
    let appends = std::env::var("AETHER_MEASURE_APPENDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    let dir = match std::env::var_os("AETHER_MEASURE_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    (appends, dir)
}

/// Appends one at a time are one commit each (nothing to group), and each
/// is read back as stored. Also where a single writer's time goes: with
/// `AETHER_MEASURE_APPENDS=2000` (and `AETHER_MEASURE_DIR` on the disk to
/// measure, since the temporary directory may be a tmpfs where fsync is
/// free) it prints the time per append; run it under `strace -f -c -e
/// trace=fdatasync,pwrite64` to count syncs and writes per commit:
/// `cargo test --release -p aether-store -- --nocapture sequential_appends`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_appends() {
    let (appends, dir) = measurement(50);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let id = stream("acc-1");
    let commits_before = store.writer.commits();
    let started = std::time::Instant::now();
    for version in 0..appends {
        let payload = format!(r#"{{"deposited":{version}}}"#);
        let req = request(&id, ExpectedVersion::Exact(version), &[payload]);
        store.append(req).await.unwrap();
    }
    let elapsed = started.elapsed();
    let commits = store.writer.commits() - commits_before;
    println!(
        "{appends} sequential appends in {elapsed:?}: {:.1} µs each, {commits} commits",
        elapsed.as_secs_f64() * 1e6 / appends as f64,
    );
    assert_eq!(commits, appends, "one commit per append made alone");
    let stored = store.read_stream(&id, 1, usize::MAX).await.unwrap();
    assert_eq!(stored.len() as u64, appends);
    assert_eq!(
        stored.last().unwrap().data,
        format!(r#"{{"deposited":{}}}"#, appends - 1).into_bytes()
    );
}

/// Concurrent appends to many streams of one namespace are grouped into
/// batches, and every one of them is stored: the versions of each stream and
/// the namespace's stored bytes add up. Also what the writer thread costs per
/// append under group commit (its CPU time, the store's bottleneck under
/// load): with `AETHER_MEASURE_APPENDS=100000` (and `AETHER_MEASURE_DIR`) it
/// prints appends per second and the writer's CPU µs per append:
/// `cargo test --release -p aether-store -- --nocapture concurrent_appends`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends() {
    const CALLERS: u64 = 200;
    const STREAMS: u64 = 1_000;
    let (appends, dir) = measurement(2_000);
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let per_caller = appends.div_ceil(CALLERS);
    let payload = r#"{"amount":1}"#.to_string();
    let writer_cpu = || writer_thread_cpu().unwrap_or_default();
    let (cpu_before, started) = (writer_cpu(), std::time::Instant::now());
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let (store, payload) = (Arc::clone(&store), payload.clone());
        callers.spawn(async move {
            let streams: Vec<StreamId> = (caller..STREAMS)
                .step_by(CALLERS as usize)
                .map(|i| stream(&format!("acc-{i}")))
                .collect();
            let mut versions = vec![0u64; streams.len()];
            for n in 0..per_caller as usize {
                let i = n % streams.len();
                let expected = ExpectedVersion::Exact(versions[i]);
                let req = request(&streams[i], expected, std::slice::from_ref(&payload));
                store.append(req).await.unwrap();
                versions[i] += 1;
            }
            streams.into_iter().zip(versions).collect::<Vec<_>>()
        });
    }
    let mut expected = Vec::new();
    while let Some(done) = callers.join_next().await {
        expected.extend(done.unwrap());
    }
    let (elapsed, cpu) = (started.elapsed(), writer_cpu() - cpu_before);
    let total = per_caller * CALLERS;
    println!(
        "{total} concurrent appends in {elapsed:?}: {:.0}/s, writer CPU {:.1} µs each, {} commits",
        total as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / total as f64,
        store.writer.commits(),
    );
    for (stream, version) in &expected {
        assert_eq!(store.stream_version(stream).await.unwrap(), *version);
    }
    let bytes = store.stored_bytes(&expected[0].0.namespace).await.unwrap();
    assert_eq!(
        bytes,
        total * payload.len() as u64,
        "the namespace's stored bytes"
    );
}

/// The CPU time of the store's writer thread so far (Linux only).
fn writer_thread_cpu() -> Option<std::time::Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // Thread names are cut to 15 bytes.
        if !"aether-redb-writer".starts_with(comm.trim()) || comm.trim().is_empty() {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        // utime and stime, the 14th and 15th fields overall, in clock ticks
        // (USER_HZ, 100 a second for every Linux user-space interface).
        let ticks: u64 = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
        return Some(std::time::Duration::from_millis(ticks * 10));
    }
    None
}
