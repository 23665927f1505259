//! Contract cases for concurrent writers: the optimistic concurrency
//! invariant under a real race, on a multi-threaded runtime.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::Barrier;

use super::{
    account, append_ok, bank, event, head, namespace, payloads, read_log, read_stream, request,
    stream, version, with_command,
};
use crate::{AppendError, EventStore, ExpectedVersion, VersionConflict};

const RACERS: usize = 16;

/// 16 tasks append to one stream with the same expected version at the same
/// moment: exactly one wins, every other one gets a conflict naming the
/// expected and actual version, and only the winner's event is written.
pub async fn concurrent_writers_with_same_expected_version(store: Arc<dyn EventStore>) {
    let acc = account("acc-1");
    let setup = vec![
        event("opened", "\"setup\""),
        event("deposited", "\"setup\""),
    ];
    append_ok(&*store, request(&acc, ExpectedVersion::Exact(0), setup)).await;

    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            let req = with_command(
                request(
                    &acc,
                    ExpectedVersion::Exact(2),
                    vec![event("deposited", &format!("\"racer-{i}\""))],
                ),
                &format!("racer-{i}"),
            );
            tokio::spawn(async move {
                start.wait().await;
                store.append(req).await
            })
        })
        .collect();

    let mut winners = Vec::new();
    for (i, racer) in racers.into_iter().enumerate() {
        let result = racer
            .await
            .unwrap_or_else(|error| panic!("racer {i} panicked: {error}"));
        match result {
            Ok(outcome) => winners.push((i, outcome)),
            Err(AppendError::Conflict(conflict)) => assert_eq!(
                conflict,
                VersionConflict {
                    stream: acc.clone(),
                    expected: 2,
                    actual: 3
                },
                "racer {i} lost and must see the winner's version"
            ),
            Err(error) => panic!("racer {i} must win or conflict, failed: {error}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {RACERS} racers wins, got {}",
        winners.len()
    );
    let (winner, outcome) = &winners[0];
    assert!(!outcome.duplicate);
    assert_eq!(outcome.events.len(), 1);
    assert_eq!(
        (outcome.events[0].version, outcome.events[0].position),
        (3, 3)
    );

    assert_eq!(
        version(&*store, &acc).await,
        3,
        "the stream advanced by exactly one event"
    );
    assert_eq!(
        head(&*store, &bank()).await,
        3,
        "losers wrote nothing to the log"
    );
    let stream = read_stream(&*store, &acc, 1, usize::MAX).await;
    assert_eq!(
        payloads(&stream)[2],
        format!("\"racer-{winner}\""),
        "the winner's event is stored"
    );
}

const WRITERS: usize = 8;
const COMMANDS_PER_WRITER: usize = 20;
const MAX_ATTEMPTS: usize = 10_000;

/// Many writers on two streams each reload the version and append, retrying on
/// conflict until all their commands are in: every command lands exactly once,
/// versions are gapless per stream and positions gapless across the log.
pub async fn concurrent_writers_with_retry_stay_gapless(store: Arc<dyn EventStore>) {
    let streams = [account("hot-1"), account("hot-2")];
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            let stream = streams[w % streams.len()].clone();
            tokio::spawn(async move {
                start.wait().await;
                for n in 0..COMMANDS_PER_WRITER {
                    let payload = format!("\"w{w}-{n}\"");
                    let mut attempts = 0;
                    loop {
                        let current = version(&*store, &stream).await;
                        let req = with_command(
                            request(
                                &stream,
                                ExpectedVersion::Exact(current),
                                vec![event("counted", &payload)],
                            ),
                            &format!("w{w}-{n}"),
                        );
                        match store.append(req).await {
                            Ok(outcome) => {
                                assert!(!outcome.duplicate, "writer {w} command {n} is new");
                                assert_eq!(outcome.last_version(), current + 1);
                                break;
                            }
                            Err(AppendError::Conflict(conflict)) => {
                                assert_eq!(conflict.expected, current);
                                assert!(
                                    conflict.actual > current,
                                    "a conflict means someone else advanced the stream"
                                );
                            }
                            Err(error) => panic!("writer {w} command {n} failed: {error}"),
                        }
                        attempts += 1;
                        assert!(
                            attempts < MAX_ATTEMPTS,
                            "writer {w} starved after {attempts} conflicts"
                        );
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for (w, writer) in writers.into_iter().enumerate() {
        writer
            .await
            .unwrap_or_else(|error| panic!("writer {w} panicked: {error}"));
    }

    let per_stream = (WRITERS / streams.len() * COMMANDS_PER_WRITER) as u64;
    for (s, stream) in streams.iter().enumerate() {
        assert_eq!(version(&*store, stream).await, per_stream);
        let events = read_stream(&*store, stream, 1, usize::MAX).await;
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(
            versions,
            (1..=per_stream).collect::<Vec<_>>(),
            "{stream} versions are gapless"
        );
        let seen = payloads(&events);
        for w in (s..WRITERS).step_by(streams.len()) {
            let own: Vec<_> = seen
                .iter()
                .filter(|p| p.starts_with(&format!("\"w{w}-")))
                .cloned()
                .collect();
            let expected: Vec<_> = (0..COMMANDS_PER_WRITER)
                .map(|n| format!("\"w{w}-{n}\""))
                .collect();
            assert_eq!(
                own, expected,
                "writer {w}'s commands land once each, in its order"
            );
        }
    }

    let total = per_stream * streams.len() as u64;
    assert_eq!(head(&*store, &bank()).await, total);
    let log = read_log(&*store, &bank(), 1, usize::MAX).await;
    let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=total).collect::<Vec<_>>(),
        "the namespace's positions are gapless"
    );
    let unique: HashSet<_> = payloads(&log).into_iter().collect();
    assert_eq!(unique.len() as u64, total, "no event is written twice");
}

const NAMESPACES: usize = 4;
const WRITERS_PER_NAMESPACE: usize = 4;
const APPENDS_PER_WRITER: usize = 10;

/// Writers in several namespaces append at the same moment (one or two
/// events per append, each writer to its own stream): every namespace's
/// log ends up gapless from 1, holding exactly its own events, with each
/// append's events at consecutive positions.
pub async fn concurrent_appends_across_namespaces_stay_gapless(store: Arc<dyn EventStore>) {
    let start = Arc::new(Barrier::new(NAMESPACES * WRITERS_PER_NAMESPACE));
    let writers: Vec<_> = (0..NAMESPACES * WRITERS_PER_NAMESPACE)
        .map(|w| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            let target = stream(
                &format!("tenant-{}", w % NAMESPACES),
                "bank-account",
                &format!("acc-{w}"),
            );
            tokio::spawn(async move {
                start.wait().await;
                let mut outcomes = Vec::new();
                for n in 0..APPENDS_PER_WRITER {
                    let events = (0..1 + n % 2)
                        .map(|k| event("counted", &format!("\"w{w}-{n}-{k}\"")))
                        .collect();
                    let req = request(&target, ExpectedVersion::Any, events);
                    let outcome = store
                        .append(req)
                        .await
                        .unwrap_or_else(|error| panic!("writer {w} append {n} failed: {error}"));
                    outcomes.push(outcome);
                }
                outcomes
            })
        })
        .collect();
    let mut appended = vec![Vec::new(); NAMESPACES];
    for (w, writer) in writers.into_iter().enumerate() {
        let outcomes = writer
            .await
            .unwrap_or_else(|error| panic!("writer {w} panicked: {error}"));
        for outcome in outcomes {
            let positions: Vec<u64> = outcome.events.iter().map(|e| e.position).collect();
            let first = positions[0];
            assert_eq!(
                positions,
                (first..first + positions.len() as u64).collect::<Vec<_>>(),
                "an append's events have consecutive positions"
            );
            appended[w % NAMESPACES].extend(outcome.events);
        }
    }

    let per_writer: usize = (0..APPENDS_PER_WRITER).map(|n| 1 + n % 2).sum();
    let per_namespace = (per_writer * WRITERS_PER_NAMESPACE) as u64;
    for (i, mut expected) in appended.into_iter().enumerate() {
        let ns = namespace(&format!("tenant-{i}"));
        assert_eq!(head(&*store, &ns).await, per_namespace, "{ns}'s head");
        let log = read_log(&*store, &ns, 1, usize::MAX).await;
        assert_eq!(
            log.iter().map(|e| e.position).collect::<Vec<_>>(),
            (1..=per_namespace).collect::<Vec<_>>(),
            "{ns}'s positions are gapless from 1"
        );
        assert!(
            log.iter().all(|e| e.stream.namespace == ns),
            "{ns}'s log holds only its own events"
        );
        expected.sort_by_key(|e| e.position);
        assert_eq!(
            log, expected,
            "{ns}'s log is exactly what its appends were told"
        );
        let unique: HashSet<_> = payloads(&log).into_iter().collect();
        assert_eq!(unique.len() as u64, per_namespace, "no event twice");
    }
}
