//! Contract cases for reading streams and the namespace logs, and for snapshots.

use super::{
    account, append_conflict, append_ok, bank, event, head, namespace, payloads, places, read_log,
    read_stream, request, stream, version, with_command,
};
use crate::{EventStore, ExpectedVersion, Snapshot, StreamId};

/// Appends `count` single-event commands to `stream`, payloads `"0"`, `"1"`, ….
async fn fill(store: &dyn EventStore, stream: &StreamId, count: u64) {
    for i in 0..count {
        let expected = ExpectedVersion::Exact(version(store, stream).await);
        append_ok(
            store,
            request(stream, expected, vec![event("counted", &i.to_string())]),
        )
        .await;
    }
}

fn snapshot(stream: &StreamId, version: u64, digest: &str, state: &str) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version,
        snapshot_key: digest.to_owned(),
        state: state.as_bytes().to_vec(),
        timestamp_ms: 1_700_000_000_000 + version,
    }
}

async fn save(store: &dyn EventStore, snapshot: Snapshot) {
    let what = format!("save_snapshot({}, v{})", snapshot.stream, snapshot.version);
    store
        .save_snapshot(snapshot)
        .await
        .unwrap_or_else(|error| panic!("{what} failed: {error}"));
}

async fn load(store: &dyn EventStore, stream: &StreamId, digest: &str) -> Option<Snapshot> {
    store
        .load_snapshot(stream, digest)
        .await
        .unwrap_or_else(|error| panic!("load_snapshot({stream}, {digest}) failed: {error}"))
}

/// `read_stream` starts at any version, honours `limit`, and treats 0 like 1.
pub async fn read_stream_from_version_with_limit(store: &dyn EventStore) {
    let acc = account("acc-1");
    fill(store, &acc, 10).await;
    let all = read_stream(store, &acc, 1, usize::MAX).await;
    assert_eq!(all.len(), 10);
    assert_eq!(
        read_stream(store, &acc, 0, usize::MAX).await,
        all,
        "from_version 0 reads from the start"
    );

    let middle = read_stream(store, &acc, 4, usize::MAX).await;
    assert_eq!(
        middle.iter().map(|e| e.version).collect::<Vec<_>>(),
        (4..=10).collect::<Vec<_>>()
    );
    let page = read_stream(store, &acc, 4, 3).await;
    assert_eq!(payloads(&page), ["3", "4", "5"], "versions 4..=6");
    assert_eq!(
        read_stream(store, &acc, 10, 5).await.len(),
        1,
        "the last event only"
    );
    assert!(
        read_stream(store, &acc, 11, 5).await.is_empty(),
        "past the end is empty"
    );
    assert!(
        read_stream(store, &acc, 1, 0).await.is_empty(),
        "limit 0 reads nothing"
    );
}

/// A stream without events has version 0 and reads as empty.
pub async fn unknown_stream_is_empty(store: &dyn EventStore) {
    let ghost = account("ghost");
    assert_eq!(version(store, &ghost).await, 0);
    assert!(read_stream(store, &ghost, 1, usize::MAX).await.is_empty());
    fill(store, &account("acc-1"), 2).await;
    assert_eq!(
        version(store, &ghost).await,
        0,
        "other streams do not change it"
    );
    assert!(read_stream(store, &ghost, 1, usize::MAX).await.is_empty());
}

/// A namespace's log numbers its events 1..N across all its streams, in
/// append order, without gaps, with unique ids.
pub async fn read_log_is_gapless_across_streams(store: &dyn EventStore) {
    assert!(
        read_log(store, &bank(), 1, usize::MAX).await.is_empty(),
        "a new store has an empty log"
    );
    let streams = [account("acc-1"), account("acc-2"), account("acc-3")];
    let mut appended = Vec::new();
    for round in 0..3 {
        for stream in &streams {
            let expected = ExpectedVersion::Exact(round * 2);
            let events = vec![event("a", "{}"), event("b", "{}")];
            appended.extend(
                append_ok(store, request(stream, expected, events))
                    .await
                    .events,
            );
        }
    }
    let log = read_log(store, &bank(), 1, usize::MAX).await;
    assert_eq!(
        log, appended,
        "the log holds exactly the appended events, in order"
    );
    let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=18).collect::<Vec<_>>(),
        "positions are gapless from 1"
    );
    let ids: std::collections::HashSet<_> = log.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 18, "event ids are unique across streams");
    for stream in &streams {
        let versions: Vec<u64> = log
            .iter()
            .filter(|e| &e.stream == stream)
            .map(|e| e.version)
            .collect();
        assert_eq!(
            versions,
            (1..=6).collect::<Vec<_>>(),
            "{stream} is in version order in the log"
        );
    }
}

/// `read_log` starts at any position, honours `limit`, and treats 0 like 1.
pub async fn read_log_from_position_with_limit(store: &dyn EventStore) {
    fill(store, &account("acc-1"), 4).await;
    fill(store, &account("acc-2"), 4).await;
    let all = read_log(store, &bank(), 1, usize::MAX).await;
    assert_eq!(
        read_log(store, &bank(), 0, usize::MAX).await,
        all,
        "from_position 0 reads from the start"
    );
    let tail = read_log(store, &bank(), 3, usize::MAX).await;
    assert_eq!(
        tail.iter().map(|e| e.position).collect::<Vec<_>>(),
        (3..=8).collect::<Vec<_>>()
    );
    let page = read_log(store, &bank(), 4, 3).await;
    assert_eq!(
        places(&page),
        [(4, 4), (1, 5), (2, 6)],
        "crosses from acc-1 to acc-2"
    );
    assert!(
        read_log(store, &bank(), 9, 10).await.is_empty(),
        "past the head is empty"
    );
    assert!(
        read_log(store, &bank(), 1, 0).await.is_empty(),
        "limit 0 reads nothing"
    );
}

/// `head_position` is 0 for a namespace without events and then its last
/// event's position.
pub async fn head_position_follows_appends(store: &dyn EventStore) {
    assert_eq!(head(store, &bank()).await, 0);
    let outcome = append_ok(
        store,
        request(
            &account("acc-1"),
            ExpectedVersion::Any,
            vec![event("a", "{}"), event("b", "{}")],
        ),
    )
    .await;
    assert_eq!(head(store, &bank()).await, 2);
    assert_eq!(outcome.last_position(), 2);
    append_ok(
        store,
        request(
            &account("acc-2"),
            ExpectedVersion::Any,
            vec![event("c", "{}")],
        ),
    )
    .await;
    assert_eq!(head(store, &bank()).await, 3);
}

/// `stored_bytes` is 0 for a namespace without events, grows by at least
/// an append's payload bytes, and counts only the namespace's own events:
/// a duplicate or a conflicting append adds nothing.
pub async fn stored_bytes_count_a_namespaces_payloads(store: &dyn EventStore) {
    let (a, b) = (namespace("tenant-a"), namespace("tenant-b"));
    let bytes = |namespace| async move {
        store
            .stored_bytes(&namespace)
            .await
            .unwrap_or_else(|error| panic!("stored_bytes({namespace}) failed: {error}"))
    };
    assert_eq!((bytes(a.clone()).await, bytes(b.clone()).await), (0, 0));
    let big = format!("\"{}\"", "x".repeat(1_000));
    let in_a = stream("tenant-a", "bank-account", "acc-1");
    let first = with_command(
        request(&in_a, ExpectedVersion::Exact(0), vec![event("big", &big)]),
        "cmd-1",
    );
    append_ok(store, first.clone()).await;
    let after_one = bytes(a.clone()).await;
    assert!(
        after_one >= 1_002,
        "{after_one} bytes after a 1 002-byte payload"
    );
    assert_eq!(
        bytes(b.clone()).await,
        0,
        "another namespace's events are not counted"
    );

    append_ok(store, first).await;
    append_conflict(
        store,
        request(&in_a, ExpectedVersion::Exact(0), vec![event("big", &big)]),
    )
    .await;
    assert_eq!(
        bytes(a.clone()).await,
        after_one,
        "a duplicate or a conflict stores nothing"
    );

    append_ok(
        store,
        request(
            &in_a,
            ExpectedVersion::Exact(1),
            vec![event("big", &big), event("big", &big)],
        ),
    )
    .await;
    let after_three = bytes(a.clone()).await;
    assert!(
        after_three >= after_one + 2_004,
        "{after_three} bytes after {after_one} and 2 004 more"
    );
    append_ok(
        store,
        request(
            &stream("tenant-b", "bank-account", "acc-1"),
            ExpectedVersion::Any,
            vec![event("small", "1")],
        ),
    )
    .await;
    assert!(bytes(b).await >= 1);
    assert_eq!(bytes(a).await, after_three);
}

/// Every namespace numbers its own events 1, 2, 3…: appends to one never
/// move another's head or take one of its positions, however they
/// interleave.
pub async fn namespaces_have_their_own_positions(store: &dyn EventStore) {
    let (a, b) = (namespace("tenant-a"), namespace("tenant-b"));
    let in_a = [
        stream("tenant-a", "bank-account", "acc-1"),
        stream("tenant-a", "order", "o-1"),
    ];
    let in_b = stream("tenant-b", "bank-account", "acc-1");
    let mut expected_a = Vec::new();
    let mut expected_b = Vec::new();
    for round in 0..3u64 {
        for stream in &in_a {
            let outcome = append_ok(
                store,
                request(
                    stream,
                    ExpectedVersion::Exact(round),
                    vec![event("a", "{}")],
                ),
            )
            .await;
            expected_a.extend(outcome.events);
        }
        let two = vec![event("b", "{}"), event("b", "{}")];
        let outcome = append_ok(
            store,
            request(&in_b, ExpectedVersion::Exact(round * 2), two),
        )
        .await;
        assert_eq!(
            places(&outcome.events),
            [
                (round * 2 + 1, round * 2 + 1),
                (round * 2 + 2, round * 2 + 2)
            ],
            "tenant-b's positions ignore tenant-a's appends"
        );
        expected_b.extend(outcome.events);
    }
    assert_eq!(head(store, &a).await, 6);
    assert_eq!(head(store, &b).await, 6);
    assert_eq!(
        head(store, &namespace("tenant-c")).await,
        0,
        "a namespace without events has head 0"
    );
    let log_a = read_log(store, &a, 1, usize::MAX).await;
    let log_b = read_log(store, &b, 1, usize::MAX).await;
    assert_eq!(log_a, expected_a, "tenant-a's log, in append order");
    assert_eq!(log_b, expected_b, "tenant-b's log, in append order");
    for log in [&log_a, &log_b] {
        assert_eq!(
            log.iter().map(|e| e.position).collect::<Vec<_>>(),
            (1..=6).collect::<Vec<_>>(),
            "each namespace's positions are gapless from 1"
        );
    }
    assert_eq!(
        read_log(store, &a, 5, usize::MAX).await,
        log_a[4..],
        "reading from a position stays in the namespace"
    );
}

/// `read_log` of a namespace returns only that namespace's events, even
/// for positions another namespace has, and nothing for a namespace
/// without events.
pub async fn read_log_never_returns_another_namespace(store: &dyn EventStore) {
    let (a, b) = (namespace("tenant-a"), namespace("tenant-b"));
    fill(store, &stream("tenant-a", "bank-account", "acc-1"), 5).await;
    fill(store, &stream("tenant-b", "bank-account", "acc-1"), 2).await;
    fill(store, &stream("tenant-ab", "bank-account", "acc-1"), 3).await;
    for (namespace, count) in [(&a, 5), (&b, 2)] {
        let log = read_log(store, namespace, 0, usize::MAX).await;
        assert_eq!(log.len(), count, "{namespace} has {count} events");
        assert!(
            log.iter().all(|e| &e.stream.namespace == namespace),
            "{namespace}'s log holds only its own events"
        );
    }
    assert!(
        read_log(store, &b, 3, usize::MAX).await.is_empty(),
        "past tenant-b's head, although tenant-a has positions 3..=5"
    );
    assert!(
        read_log(store, &namespace("tenant"), 1, usize::MAX)
            .await
            .is_empty(),
        "a namespace whose name prefixes others' has no events"
    );
    assert!(
        read_log(store, &namespace("tenant-c"), 1, usize::MAX)
            .await
            .is_empty(),
        "an unknown namespace has an empty log"
    );
}

/// A saved snapshot loads back unchanged by stream and component digest.
pub async fn snapshots_round_trip_by_digest(store: &dyn EventStore) {
    let acc = account("acc-1");
    fill(store, &acc, 3).await;
    assert_eq!(
        load(store, &acc, "blake3:one").await,
        None,
        "no snapshot yet"
    );
    let one = snapshot(&acc, 3, "blake3:one", "state by one");
    let two = snapshot(&acc, 2, "blake3:two", "state by two");
    save(store, one.clone()).await;
    save(store, two.clone()).await;
    assert_eq!(
        load(store, &acc, "blake3:one").await,
        Some(one),
        "round-trips exactly"
    );
    assert_eq!(
        load(store, &acc, "blake3:two").await,
        Some(two),
        "each digest keeps its own"
    );
    assert_eq!(
        load(store, &account("acc-2"), "blake3:one").await,
        None,
        "other streams have none"
    );
}

/// A newer snapshot replaces the stored one; an older one is ignored.
pub async fn newer_snapshot_replaces_older_and_older_is_ignored(store: &dyn EventStore) {
    let acc = account("acc-1");
    fill(store, &acc, 10).await;
    save(store, snapshot(&acc, 5, "d", "five")).await;
    let ten = snapshot(&acc, 10, "d", "ten");
    save(store, ten.clone()).await;
    assert_eq!(
        load(store, &acc, "d").await,
        Some(ten.clone()),
        "the newer snapshot replaces"
    );
    save(store, snapshot(&acc, 7, "d", "seven")).await;
    assert_eq!(
        load(store, &acc, "d").await,
        Some(ten),
        "a snapshot never goes backwards"
    );
}

/// A snapshot made by another component digest is not offered.
pub async fn snapshot_of_other_digest_is_none(store: &dyn EventStore) {
    let acc = account("acc-1");
    fill(store, &acc, 2).await;
    save(store, snapshot(&acc, 2, "blake3:old", "old")).await;
    assert_eq!(load(store, &acc, "blake3:new").await, None);
    assert_eq!(
        version(store, &acc).await,
        2,
        "snapshots do not change the stream"
    );
    assert_eq!(head(store, &bank()).await, 2);
}
