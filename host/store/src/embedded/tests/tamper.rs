//! Data that redb holds intact but that breaks the store's own invariants
//! (written here through redb directly, as a bug or a foreign tool would):
//! `open` must refuse each case with a message that says what is wrong, and
//! the read path must refuse the damaged records too.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::super::read;
use super::super::tables::{
    COMMANDS, EVENTS, NAMESPACE_BYTES, NAMESPACE_LOG, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX,
};
use super::{request, snapshot, stream};
use crate::{
    EmbeddedStore, EventStore, ExpectedVersion, RecordedEvent, ReplayBatch, StoreError, StreamId,
};

/// Namespace `bank`: acc-1 versions 1, 2 at positions (and log sequences)
/// 1, 2 and version 3 at 4 (command "cmd-1"), acc-2 version 1 at 3;
/// namespace `other`: acc-1 version 1 at position 1, log sequence 5; a
/// snapshot of bank's acc-1 at version 2.
async fn sample(dir: &Path) {
    let store = EmbeddedStore::open(dir).unwrap();
    let (one, two) = (stream("acc-1"), stream("acc-2"));
    let payloads = ["\"a\"".to_owned(), "\"b\"".to_owned()];
    store
        .append(request(&one, ExpectedVersion::Exact(0), &payloads))
        .await
        .unwrap();
    store
        .append(request(&two, ExpectedVersion::Exact(0), &["\"c\"".into()]))
        .await
        .unwrap();
    let mut third = request(&one, ExpectedVersion::Exact(2), &["\"d\"".into()]);
    third.metadata.command_id = Some("cmd-1".into());
    store.append(third).await.unwrap();
    store
        .append(request(
            &elsewhere(),
            ExpectedVersion::Exact(0),
            &["\"e\"".into()],
        ))
        .await
        .unwrap();
    store.save_snapshot(snapshot(&one, 2, "two")).await.unwrap();
}

/// The sample's stream in the namespace `other`.
fn elsewhere() -> StreamId {
    StreamId::new(
        "other".parse().unwrap(),
        "bank-account".parse().unwrap(),
        "acc-1".parse().unwrap(),
    )
}

/// Applies `tamper` to the sample's file inside one redb transaction.
fn tampered(dir: &Path, tamper: fn(&WriteTransaction)) {
    let db = Database::open(dir.join("events.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    tamper(&txn);
    txn.commit().unwrap();
}

fn record(txn: &WriteTransaction, sequence: u64) -> Vec<u8> {
    let events = txn.open_table(EVENTS).unwrap();
    let record = events.get(sequence).unwrap().unwrap().value().to_vec();
    drop(events);
    record
}

/// (what is broken, how to break it, what the error must say).
type Case = (&'static str, fn(&WriteTransaction), &'static str);

const CASES: &[Case] = &[
    (
        "a record's byte changed",
        |txn| {
            let mut damaged = record(txn, 2);
            damaged[60] ^= 0x20;
            txn.open_table(EVENTS)
                .unwrap()
                .insert(2, damaged.as_slice())
                .unwrap();
        },
        "event at log sequence 2): the record's checksum does not match",
    ),
    (
        "two records swapped",
        |txn| {
            let (first, second) = (record(txn, 1), record(txn, 2));
            let mut events = txn.open_table(EVENTS).unwrap();
            events.insert(1, second.as_slice()).unwrap();
            events.insert(2, first.as_slice()).unwrap();
        },
        "event at log sequence 1): the record's checksum does not match",
    ),
    (
        "a log sequence removed",
        |txn| {
            txn.open_table(EVENTS).unwrap().remove(2).unwrap();
        },
        "the log skips from sequence 1 to 3",
    ),
    (
        "a namespace log entry pointing elsewhere",
        |txn| {
            txn.open_table(NAMESPACE_LOG)
                .unwrap()
                .insert(("bank", 2), 3)
                .unwrap();
        },
        "namespace log bank position 2): the namespace log points at log sequence 3, the log \
         has this position at Some(2)",
    ),
    (
        "a namespace log entry in the wrong namespace",
        |txn| {
            let mut log = txn.open_table(NAMESPACE_LOG).unwrap();
            log.remove(("other", 1)).unwrap();
            log.insert(("bank", 5), 5).unwrap();
        },
        "namespace log bank position 5): the namespace log points at log sequence 5, the log \
         has this position at None",
    ),
    (
        "a namespace log entry missing",
        |txn| {
            txn.open_table(NAMESPACE_LOG)
                .unwrap()
                .remove(("other", 1))
                .unwrap();
        },
        "the namespace logs have 4 entries for 5 events",
    ),
    (
        "an index entry pointing elsewhere",
        |txn| {
            txn.open_table(STREAM_INDEX)
                .unwrap()
                .insert(("bank/bank-account/acc-1", 2), 3)
                .unwrap();
        },
        "stream index bank/bank-account/acc-1 version 2): the index points at log sequence 3",
    ),
    (
        "an extra index entry",
        |txn| {
            txn.open_table(STREAM_INDEX)
                .unwrap()
                .insert(("bank/bank-account/acc-1", 4), 4)
                .unwrap();
        },
        "version 4): the index points at log sequence 4, the log has this version at None",
    ),
    (
        "a stream head behind",
        |txn| {
            txn.open_table(STREAM_HEADS)
                .unwrap()
                .insert("bank/bank-account/acc-1", 2)
                .unwrap();
        },
        "the head says version 2, the log has 3 events",
    ),
    (
        "a stream head missing",
        |txn| {
            txn.open_table(STREAM_HEADS)
                .unwrap()
                .remove("bank/bank-account/acc-2")
                .unwrap();
        },
        "2 stream heads for 3 streams",
    ),
    (
        "a command beyond its stream",
        |txn| {
            let key = ("bank/bank-account/acc-1", "cmd-1");
            txn.open_table(COMMANDS)
                .unwrap()
                .insert(key, (3, 9))
                .unwrap();
        },
        "recorded as versions 3..=9, the stream has 3",
    ),
    (
        "a namespace's byte count that its events do not add up to",
        |txn| {
            txn.open_table(NAMESPACE_BYTES)
                .unwrap()
                .insert("bank", 1)
                .unwrap();
        },
        "stored bytes of namespace bank): counted as 1 bytes, its events hold 12",
    ),
    (
        "a snapshot under another digest",
        |txn| {
            let mut snapshots = txn.open_table(SNAPSHOTS).unwrap();
            let key = ("bank/bank-account/acc-1", "blake3:test");
            let moved = snapshots.remove(key).unwrap().unwrap().value().to_vec();
            snapshots
                .insert(
                    ("bank/bank-account/acc-1", "blake3:other"),
                    moved.as_slice(),
                )
                .unwrap();
        },
        "snapshot of bank/bank-account/acc-1 by blake3:other): the record's checksum",
    ),
];

#[tokio::test]
async fn broken_invariants_are_refused_at_open_with_what_is_wrong() {
    for &(case, tamper, expected) in CASES {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path()).await;
        tampered(dir.path(), tamper);
        let error = EmbeddedStore::open(dir.path()).err();
        let Some(error @ StoreError::Corrupt { .. }) = error else {
            panic!("{case}: open must fail as corrupt, got {error:?}");
        };
        let text = error.to_string();
        assert!(
            text.contains(&dir.path().join("events.redb").display().to_string()),
            "{case}: {text}"
        );
        assert!(
            text.contains(expected),
            "{case}: expected {expected:?} in {text}"
        );
    }
}

/// A store written before the per-namespace byte counts existed gets them,
/// counted from its events, when it is first opened.
#[tokio::test]
async fn a_store_without_byte_counts_gets_them_at_open() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path()).await;
    tampered(dir.path(), |txn| {
        assert!(txn.delete_table(NAMESPACE_BYTES).unwrap());
    });
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // bank: "a", "b", "c", "d" (3 bytes each); other: "e".
    assert_eq!(
        store.stored_bytes(&"bank".parse().unwrap()).await.unwrap(),
        12
    );
    assert_eq!(
        store.stored_bytes(&"other".parse().unwrap()).await.unwrap(),
        3
    );
    assert_eq!(
        store.stored_bytes(&"none".parse().unwrap()).await.unwrap(),
        0
    );
}

/// Reads check records again, for damage that appears after `open`.
#[tokio::test]
async fn reads_refuse_damaged_records() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path()).await;
    tampered(dir.path(), CASES[0].1);
    let path = dir.path().join("events.redb");
    let db = Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let (events, index, log) = (
        txn.open_table(EVENTS).unwrap(),
        txn.open_table(STREAM_INDEX).unwrap(),
        txn.open_table(NAMESPACE_LOG).unwrap(),
    );

    let error = read::log_events(&path, &log, &events, "bank", 1, usize::MAX).unwrap_err();
    assert!(
        error.to_string().contains("event at log sequence 2"),
        "{error}"
    );
    let intact = read::log_events(&path, &log, &events, "bank", 3, usize::MAX).unwrap();
    assert_eq!(intact.len(), 2, "undamaged records are still served");
    let other = read::log_events(&path, &log, &events, "other", 1, usize::MAX).unwrap();
    assert_eq!(other.len(), 1, "another namespace's log is intact");

    let acc = stream("acc-1");
    let key = "bank/bank-account/acc-1";
    let error = read::stream_events::<Vec<RecordedEvent>>(&path, &index, &events, &acc, key, 1, 10)
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    // An activation's read refuses it the same way.
    let replay =
        read::stream_events::<ReplayBatch>(&path, &index, &events, &acc, key, 1, 10).unwrap_err();
    assert!(matches!(replay, StoreError::Corrupt { .. }), "{replay}");
    assert_eq!(replay.to_string(), error.to_string());
    let intact =
        read::stream_events::<ReplayBatch>(&path, &index, &events, &acc, key, 3, 10).unwrap();
    assert_eq!(intact.len(), 1, "undamaged records are still served");
    let other = stream("acc-2");
    for error in [
        read::stream_events::<Vec<RecordedEvent>>(&path, &index, &events, &other, key, 1, 10)
            .unwrap_err(),
        read::stream_events::<ReplayBatch>(&path, &index, &events, &other, key, 1, 10).unwrap_err(),
    ] {
        assert!(
            error
                .to_string()
                .contains("which holds bank/bank-account/acc-1"),
            "{error}"
        );
    }
}

/// A namespace log entry that points at another namespace's event is
/// refused by the read, not served as this namespace's.
#[tokio::test]
async fn reads_refuse_a_namespace_log_pointing_into_another_namespace() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path()).await;
    tampered(dir.path(), |txn| {
        txn.open_table(NAMESPACE_LOG)
            .unwrap()
            .insert(("bank", 5), 5)
            .unwrap();
    });
    let path = dir.path().join("events.redb");
    let db = Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let (events, log) = (
        txn.open_table(EVENTS).unwrap(),
        txn.open_table(NAMESPACE_LOG).unwrap(),
    );
    let error = read::log_events(&path, &log, &events, "bank", 4, usize::MAX).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("which holds other position 1"),
        "{error}"
    );
    assert_eq!(read::namespace_head(&path, &log, "other").unwrap(), 1);
}

/// A stream read scans a run of consecutive log sequences (acc-1's
/// versions 1 and 2 at sequences 1 and 2) in one range: a record missing
/// from the run, or the run's index pointing at another version, is
/// refused as the lookups of single events are.
#[tokio::test]
async fn a_stream_read_of_a_run_refuses_a_missing_or_misplaced_record() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path()).await;
    let intact: Vec<RecordedEvent> = read_acc_1(dir.path(), 1).unwrap();
    assert_eq!(
        intact.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(intact[1].data, b"\"b\"");
    let batch: ReplayBatch = read_acc_1(dir.path(), 1).unwrap();
    assert_eq!(batch, ReplayBatch::from_events(&intact));

    // Versions 2 and 3 point at sequences 1 and 2: a run, whose records
    // are versions 1 and 2.
    tampered(dir.path(), |txn| {
        let mut index = txn.open_table(STREAM_INDEX).unwrap();
        index.insert(("bank/bank-account/acc-1", 2), 1).unwrap();
        index.insert(("bank/bank-account/acc-1", 3), 2).unwrap();
    });
    for error in [
        read_acc_1::<Vec<RecordedEvent>>(dir.path(), 2).unwrap_err(),
        read_acc_1::<ReplayBatch>(dir.path(), 2).unwrap_err(),
    ] {
        assert!(
            error.to_string().contains(
                "points at log sequence 1, which holds bank/bank-account/acc-1 version 1"
            ),
            "{error}"
        );
    }

    // Versions 1, 2, 3 at sequences 1, 2, 3: one run, sequence 2 gone.
    tampered(dir.path(), |txn| {
        let mut index = txn.open_table(STREAM_INDEX).unwrap();
        index.insert(("bank/bank-account/acc-1", 2), 2).unwrap();
        index.insert(("bank/bank-account/acc-1", 3), 3).unwrap();
        txn.open_table(EVENTS).unwrap().remove(2).unwrap();
    });
    for error in [
        read_acc_1::<Vec<RecordedEvent>>(dir.path(), 1).unwrap_err(),
        read_acc_1::<ReplayBatch>(dir.path(), 1).unwrap_err(),
    ] {
        assert!(
            error.to_string().contains(
                "version 2): the stream index points at log sequence 2, which holds no event"
            ),
            "{error}"
        );
    }
}

/// The sample's bank acc-1 from version `from`, read from its tables
/// directly (no open, which would refuse the tampered file).
fn read_acc_1<O: read::ReadInto>(dir: &Path, from: u64) -> Result<O, StoreError> {
    let path = dir.join("events.redb");
    let db = Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let (events, index) = (
        txn.open_table(EVENTS).unwrap(),
        txn.open_table(STREAM_INDEX).unwrap(),
    );
    let key = "bank/bank-account/acc-1";
    read::stream_events(&path, &index, &events, &stream("acc-1"), key, from, 10)
}
