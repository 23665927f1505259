//! Appends started with [`EventStore::start_append`]: queued for the
//! writer on the calling thread, their outcome handed to the continuation
//! exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::EmbeddedStore;
use super::super::writer::Then;
use super::{request, stream};
use crate::{AppendError, AppendStep, AppendThen, EventStore, ExpectedVersion, StoreError};

/// An append started on a thread outside any async runtime (as the
/// runtime's partition threads start them) is queued for the writer there
/// and then, stored whatever its continuation does, and its outcome handed
/// to the continuation on the writer thread; an invalid one is answered at
/// once, on the calling thread.
#[tokio::test]
async fn a_started_append_is_stored_and_answered_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let acc = stream("acc-1");
    let (answers, answered) = std::sync::mpsc::channel();
    let start = |expected, payload: &str, answers: Option<std::sync::mpsc::Sender<_>>| {
        let then: AppendThen = Box::new(move |step| {
            let thread = std::thread::current().name().map(str::to_owned);
            if let Some(answers) = answers {
                answers.send((thread, step)).unwrap();
            }
        });
        store.start_append(
            request(
                &acc,
                ExpectedVersion::Exact(expected),
                &[payload.to_owned()],
            ),
            then,
        );
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            start(0, "a", Some(answers.clone()));
            start(1, "b", None);
        });
    });
    let (thread, step) = answered.recv_timeout(Duration::from_secs(10)).unwrap();
    let AppendStep::Done(outcome) = step else {
        panic!("an append the writer's queue has room for is started at once");
    };
    assert_eq!(outcome.unwrap().last_version(), 1);
    assert_eq!(thread.as_deref(), Some("aether-redb-writer"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stream_version(&acc).await.unwrap() < 2 {
        assert!(
            Instant::now() < deadline,
            "the append whose continuation ignored its outcome was never stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let invalid = |answers: std::sync::mpsc::Sender<_>| {
        let then: AppendThen = Box::new(move |step| {
            answers.send((std::thread::current().id(), step)).unwrap();
        });
        store.start_append(request(&acc, ExpectedVersion::Exact(2), &[]), then);
    };
    let (answers, answered) = std::sync::mpsc::channel();
    invalid(answers);
    let (thread, step) = answered
        .try_recv()
        .expect("an invalid append is answered at once");
    assert_eq!(thread, std::thread::current().id());
    assert!(matches!(
        step,
        AppendStep::Done(Err(AppendError::Invalid(_)))
    ));
}

/// A continuation the writer drops uncalled (it stopped with the job
/// queued) still hears of it: the writer is gone, a retryable error.
#[test]
fn a_continuation_dropped_uncalled_reports_the_writer_gone() {
    let (answers, answered) = std::sync::mpsc::channel();
    let then: AppendThen = Box::new(move |step| answers.send(step).unwrap());
    drop(Then::new(
        then,
        Arc::from(std::path::Path::new("/data/events.redb")),
    ));
    let step = answered
        .try_recv()
        .expect("a dropped continuation is called");
    let AppendStep::Done(Err(AppendError::Store(error))) = step else {
        panic!("a dropped continuation reports the writer gone");
    };
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains("writer thread has stopped"),
        "{error}"
    );
}
