//! Writes that fail (a full disk, EIO) and the recovery without a restart:
//! the store refuses writes as unavailable while the disk refuses them,
//! keeps every acknowledged event, and writes again once the disk does.

use super::*;
use crate::AppendError;
use crate::embedded::faults::WriteFaults;

fn open_faulty(dir: &Path) -> (EmbeddedStore, Arc<WriteFaults>) {
    let faults = WriteFaults::new();
    let store = EmbeddedStore::open_with(dir, Some(Arc::clone(&faults))).expect("opens");
    (store, faults)
}

fn payloads(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"{tag}":{i}}}"#)).collect()
}

fn assert_unavailable(error: &AppendError) {
    assert!(
        matches!(error, AppendError::Store(StoreError::Unavailable { .. })),
        "a failed write is retryable (unavailable), never corrupt: {error:?}"
    );
}

#[tokio::test]
async fn a_failed_write_is_unavailable_and_the_store_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let acc = stream("acc-1");
    for i in 0..5u64 {
        let append = request(&acc, ExpectedVersion::Exact(i), &payloads(1, "before"));
        store.append(append).await.unwrap();
    }
    store.check_writable().await.expect("writable");

    faults.fail(true);
    for _ in 0..3 {
        let append = request(&acc, ExpectedVersion::Exact(5), &payloads(1, "refused"));
        assert_unavailable(&store.append(append).await.unwrap_err());
    }
    assert!(faults.refused() > 0, "the disk was asked to write");
    assert!(
        store.check_writable().await.is_err(),
        "not writable while the disk refuses"
    );
    // The disk works again: the next readiness probe (or write) recovers.
    faults.fail(false);
    store.check_writable().await.expect("writable again");
    let append = request(&acc, ExpectedVersion::Exact(5), &payloads(2, "after"));
    let outcome = store.append(append).await.unwrap();
    assert_eq!(outcome.last_version(), 7);
    let versions: Vec<u64> = everything(&store).await.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7], "gapless, in order");
    let positions: Vec<u64> = everything(&store)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5, 6, 7]);

    // And the file is whole: it reopens (full verification, watermark).
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).expect("verifies after recovery");
    assert_eq!(reopened.stream_version(&acc).await.unwrap(), 7);
}

#[tokio::test]
async fn a_write_without_a_readiness_probe_recovers_too() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path());
    let acc = stream("acc-2");
    store
        .append(request(&acc, ExpectedVersion::Exact(0), &payloads(1, "a")))
        .await
        .unwrap();
    faults.fail(true);
    let refused = store
        .append(request(&acc, ExpectedVersion::Exact(1), &payloads(1, "b")))
        .await
        .unwrap_err();
    assert_unavailable(&refused);
    faults.fail(false);
    let outcome = store
        .append(request(&acc, ExpectedVersion::Exact(1), &payloads(1, "c")))
        .await
        .expect("the writer reopens the file before the next batch");
    assert_eq!(outcome.last_version(), 2);
    assert_eq!(
        String::from_utf8(store.read_stream(&acc, 2, 1).await.unwrap()[0].data.clone()).unwrap(),
        r#"{"c":0}"#
    );
}

#[tokio::test]
async fn on_a_full_disk_the_store_opens_serves_reads_and_refuses_writes_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let acc = stream("acc-3");
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .append(request(&acc, ExpectedVersion::Exact(0), &payloads(3, "x")))
            .await
            .unwrap();
    }
    let faults = WriteFaults::new();
    faults.full(true);
    let store = EmbeddedStore::open_with(dir.path(), Some(Arc::clone(&faults)))
        .expect("an existing store opens on a full disk");
    assert_eq!(store.read_stream(&acc, 1, 10).await.unwrap().len(), 3);

    // An event bigger than any free space in the file needs it to grow.
    let big = vec![format!(r#"{{"blob":"{}"}}"#, "z".repeat(64 << 20))];
    let refused = store
        .append(request(&acc, ExpectedVersion::Exact(3), &big))
        .await
        .unwrap_err();
    assert_unavailable(&refused);
    assert!(faults.refused() > 0);
    // Reads go on (the file is reopened for them), with every acknowledged
    // event and nothing of the refused one.
    let mut served = None;
    for _ in 0..100 {
        match store.read_stream(&acc, 1, 10).await {
            Ok(events) => {
                served = Some(events);
                break;
            }
            Err(StoreError::Unavailable { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(served.expect("reads are served again").len(), 3);
    // Still full: whatever the readiness probe's small commit found room
    // for in the file, the big event is refused again.
    let _ = store.check_writable().await;
    let refused = store
        .append(request(&acc, ExpectedVersion::Exact(3), &big))
        .await
        .unwrap_err();
    assert_unavailable(&refused);

    faults.full(false);
    store.check_writable().await.unwrap();
    let outcome = store
        .append(request(&acc, ExpectedVersion::Exact(3), &big))
        .await
        .unwrap();
    assert_eq!(outcome.last_version(), 4);
}
