//! The commit journal seen from outside the writer: a store that crashed
//! (its files copied while it was open) opens with every acknowledged
//! append, because `open` replays the journal; without the journal the
//! data file alone is refused, not served short; and a batch too big for
//! the journal is committed to the data file durably, as every batch was
//! before the journal.

use super::*;

/// The store's files as a crash would leave them (copied while it is open,
/// after its last append was acknowledged), in a new directory.
fn crashed_copy(dir: &Path, with_journal: bool) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let mut files = vec!["events.redb", "events.head"];
    if with_journal {
        files.push("events.journal");
    }
    for file in files {
        std::fs::copy(dir.join(file), copy.path().join(file)).unwrap();
    }
    copy
}

#[tokio::test]
async fn a_crashed_store_opens_with_every_acknowledged_append_replayed_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    for i in 0..30u64 {
        let acc = stream(&format!("acc-{}", i % 4));
        let mut req = request(&acc, ExpectedVersion::Any, &[format!(r#"{{"n":{i}}}"#)]);
        req.metadata.command_id = Some(format!("cmd-{i}"));
        store.append(req).await.unwrap();
    }
    let acc = stream("acc-1");
    let snap = snapshot(&acc, store.stream_version(&acc).await.unwrap(), "state");
    store.save_snapshot(snap.clone()).await.unwrap();
    let before = everything(&store).await;
    let crashed = crashed_copy(dir.path(), true);
    let data_alone = crashed_copy(dir.path(), false);
    drop(store);

    let reopened = EmbeddedStore::open(crashed.path()).unwrap();
    assert_eq!(everything(&reopened).await, before);
    let digest = snap.snapshot_key.as_str();
    let loaded = reopened.load_snapshot(&acc, digest).await.unwrap();
    assert_eq!(loaded.map(|s| s.state), Some(snap.state));
    let original = reopened
        .command_events(&stream("acc-3"), "cmd-7")
        .await
        .unwrap();
    assert_eq!(
        original.map(|events| events[0].data.clone()),
        Some(br#"{"n":7}"#.to_vec())
    );
    // It continues after what it replayed, and a second open replays
    // nothing twice.
    reopened
        .append(request(&acc, ExpectedVersion::Any, &["{}".into()]))
        .await
        .unwrap();
    drop(reopened);
    let again = EmbeddedStore::open(crashed.path()).unwrap();
    assert_eq!(everything(&again).await.len(), before.len() + 1);

    // The journal held acknowledged appends that the data file did not:
    // without it the store refuses to open (the watermark is ahead).
    let error = EmbeddedStore::open(data_alone.path()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
}

#[tokio::test]
async fn a_batch_too_big_for_the_journal_is_committed_to_the_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let acc = stream("acc-1");
    store
        .append(request(&acc, ExpectedVersion::Exact(0), &["{}".into()]))
        .await
        .unwrap();
    let big = format!(
        r#"{{"blob":"{}"}}"#,
        "b".repeat(crate::embedded::journal::CAPACITY as usize)
    );
    store
        .append(request(
            &acc,
            ExpectedVersion::Exact(1),
            std::slice::from_ref(&big),
        ))
        .await
        .unwrap();
    let before = everything(&store).await;
    // The data file alone holds both appends (the small one was journaled,
    // the big one's durable commit took it along).
    let data_alone = crashed_copy(dir.path(), false);
    drop(store);
    let reopened = EmbeddedStore::open(data_alone.path()).unwrap();
    assert_eq!(everything(&reopened).await, before);
    assert_eq!(before[1].data, big.into_bytes());
}

/// Replaying needs no room on the disk: a crashed store opens on a full
/// disk and serves what it acknowledged; writes resume, and the replayed
/// batches reach the data file, once there is room.
#[tokio::test]
async fn a_crashed_store_replays_on_a_full_disk_and_serves_reads() {
    use crate::embedded::faults::WriteFaults;

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let acc = stream("acc-1");
    for version in 0..5 {
        store
            .append(request(
                &acc,
                ExpectedVersion::Exact(version),
                &["{}".into()],
            ))
            .await
            .unwrap();
    }
    let before = everything(&store).await;
    let crashed = crashed_copy(dir.path(), true);
    drop(store);

    let faults = WriteFaults::new();
    faults.full(true);
    let store = EmbeddedStore::open_with(crashed.path(), Some(Arc::clone(&faults)))
        .expect("a crashed store opens on a full disk");
    assert_eq!(everything(&store).await, before);
    faults.full(false);
    store
        .append(request(&acc, ExpectedVersion::Exact(5), &["{}".into()]))
        .await
        .unwrap();
    drop(store);
    // Closed cleanly: the data file alone now holds every append.
    let data_alone = crashed_copy(crashed.path(), false);
    let reopened = EmbeddedStore::open(data_alone.path()).unwrap();
    assert_eq!(everything(&reopened).await.len(), before.len() + 1);
}

/// A store whose writes fail on demand, with one event in `acc-1`.
async fn faulty_store_with_one_event() -> (
    tempfile::TempDir,
    Arc<crate::embedded::faults::WriteFaults>,
    EmbeddedStore,
    StreamId,
) {
    let dir = tempfile::tempdir().unwrap();
    let faults = crate::embedded::faults::WriteFaults::new();
    let store = EmbeddedStore::open_with(dir.path(), Some(Arc::clone(&faults))).unwrap();
    let acc = stream("acc-1");
    store
        .append(request(&acc, ExpectedVersion::Exact(0), &["{}".into()]))
        .await
        .unwrap();
    (dir, faults, store, acc)
}

/// A batch is answered once its journal entry is durable, before the redb
/// commit that makes it visible. If that commit fails, the answer stands:
/// the writer reopens the file at once, which replays the batch from the
/// journal, and no read in between misses it.
#[tokio::test]
async fn a_batch_whose_commit_fails_after_its_answer_is_replayed_and_read() {
    let (dir, faults, store, acc) = faulty_store_with_one_event().await;
    faults.fail_next_visible_commit();
    let mut req = request(&acc, ExpectedVersion::Exact(1), &[r#"{"n":2}"#.into()]);
    req.metadata.command_id = Some("cmd-2".into());
    let outcome = store.append(req).await.expect("answered once durable");
    assert_eq!(outcome.last_version(), 2);

    let events = store.read_stream(&acc, 1, usize::MAX).await.unwrap();
    assert_eq!(events.len(), 2, "a read after the answer sees the batch");
    assert_eq!(
        faults.visible_commits_failed(),
        1,
        "that batch's commit failed (before the read could see it)"
    );
    assert_eq!(events[1].data, br#"{"n":2}"#.to_vec());
    assert_eq!(store.stream_version(&acc).await.unwrap(), 2);
    let found = store.command_events(&acc, "cmd-2").await.unwrap();
    assert_eq!(found.map(|events| events.len()), Some(1));
    // The writer continues after the replayed batch: the next append is
    // checked against version 2, not 1.
    let stale = store
        .append(request(&acc, ExpectedVersion::Exact(1), &["{}".into()]))
        .await;
    assert!(stale.is_err(), "version 1 is no longer the head: {stale:?}");
    store
        .append(request(&acc, ExpectedVersion::Exact(2), &["{}".into()]))
        .await
        .unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    let events = reopened.read_stream(&acc, 1, usize::MAX).await.unwrap();
    assert_eq!(events.len(), 3);
}

/// Journaled batches share one redb transaction while more jobs are queued
/// (the writer commits it when idle, when a read waits, or after
/// `OPEN_AT_MOST`): every append is readable as soon as it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_answered_while_the_transaction_stays_open_are_read_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..16 {
        let store = Arc::clone(&store);
        callers.spawn(async move {
            let acc = stream(&format!("acc-{caller}"));
            for version in 0..40u64 {
                let data = format!(r#"{{"n":{version}}}"#);
                let req = request(
                    &acc,
                    ExpectedVersion::Exact(version),
                    std::slice::from_ref(&data),
                );
                store.append(req).await.unwrap();
                let events = store.read_stream(&acc, 1, usize::MAX).await.unwrap();
                assert_eq!(
                    events.len() as u64,
                    version + 1,
                    "{acc}: the answered append is read"
                );
                assert_eq!(events.last().unwrap().data, data.into_bytes());
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let store = Arc::into_inner(store).unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    for caller in 0..16 {
        let acc = stream(&format!("acc-{caller}"));
        assert_eq!(reopened.stream_version(&acc).await.unwrap(), 40);
    }
}

/// A batch that fails while the writer's open transaction holds answered
/// batches aborts that transaction: the answered batches are replayed from
/// the journal by a reopen, never lost, and the failed one is not answered.
#[tokio::test]
async fn a_failed_batch_in_a_transaction_holding_answered_batches_loses_none_of_them() {
    let (dir, faults, store, acc) = faulty_store_with_one_event().await;
    // Answered (durable in the journal) and left in the open transaction.
    faults.hold_open(true);
    let mut req = request(&acc, ExpectedVersion::Exact(1), &[r#"{"n":2}"#.into()]);
    req.metadata.command_id = Some("cmd-2".into());
    store.append(req).await.expect("answered once durable");
    faults.fail(true);
    let failed = store
        .append(request(
            &acc,
            ExpectedVersion::Exact(2),
            &[r#"{"n":3}"#.into()],
        ))
        .await;
    assert!(
        matches!(
            failed,
            Err(crate::AppendError::Store(StoreError::Unavailable { .. }))
        ),
        "{failed:?}"
    );
    let answered = [&b"{}"[..], br#"{"n":2}"#];
    // While writes fail, a read waits for the reopen that replays batch 2
    // and then answers it, or answers unavailable: never without it.
    match store.read_stream(&acc, 1, usize::MAX).await {
        Ok(events) => {
            let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_slice()).collect();
            assert_eq!(data, answered);
        }
        Err(error) => assert!(matches!(error, StoreError::Unavailable { .. }), "{error}"),
    }
    faults.fail(false);
    faults.hold_open(false);
    // Once writes go through, reads recover without a write (a failed read
    // asks the writer to reopen).
    let mut events = store.read_stream(&acc, 1, usize::MAX).await;
    for _ in 0..3 {
        if events.is_ok() {
            break;
        }
        events = store.read_stream(&acc, 1, usize::MAX).await;
    }
    let events = events.expect("readable again once writes go through");
    let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, answered, "the answered batch, not the failed one");
    let found = store.command_events(&acc, "cmd-2").await.unwrap();
    assert_eq!(found.map(|events| events.len()), Some(1));
    store
        .append(request(&acc, ExpectedVersion::Exact(2), &["{}".into()]))
        .await
        .expect("the next append continues after the answered batch");
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(reopened.stream_version(&acc).await.unwrap(), 3);
}
