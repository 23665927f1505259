//! Contract cases for appending: versions, optimistic concurrency, atomicity,
//! idempotency and namespace isolation.

use std::collections::HashSet;

use super::{
    account, append_conflict, append_ok, bank, event, head, payloads, places, read_log,
    read_stream, request, stream, version, with_command,
};
use crate::{
    AppendError, AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Snapshot,
    VersionConflict,
};

/// Appending to a new stream records versions 1..n and positions 1..n, gives
/// every event a unique UUIDv7 and keeps payloads, timestamp and metadata.
pub async fn append_to_new_stream(store: &dyn EventStore) {
    let acc = account("acc-1");
    let metadata = EventMetadata {
        command_id: Some("cmd-1".into()),
        correlation_id: Some("corr-1".into()),
        causation_id: Some("cause-1".into()),
        component_digest: Some("blake3:abc".into()),
    };
    let events = vec![
        event("opened", r#"{"owner":"ada"}"#),
        NewEvent::new("raw", "application/octet-stream", vec![0, 0xff, 0x80]),
        NewEvent::new("empty", "application/json", Vec::new()),
    ];
    let mut req = request(&acc, ExpectedVersion::Exact(0), events.clone());
    req.metadata = metadata.clone();
    req.timestamp_ms = 1_234_567;
    let outcome = append_ok(store, req).await;

    assert!(!outcome.duplicate, "a first append is not a duplicate");
    assert_eq!(
        places(&outcome.events),
        [(1, 1), (2, 2), (3, 3)],
        "versions and positions"
    );
    assert_eq!(outcome.last_version(), 3);
    for (recorded, sent) in outcome.events.iter().zip(&events) {
        assert_eq!(recorded.stream, acc);
        assert_eq!(recorded.event_type, sent.event_type);
        assert_eq!(recorded.content_type, sent.content_type);
        assert_eq!(recorded.data, sent.data, "payload bytes must round-trip");
        assert_eq!(recorded.metadata, metadata, "metadata must round-trip");
        assert_eq!(
            recorded.timestamp_ms, 1_234_567,
            "the request's timestamp is stored"
        );
        assert_eq!(recorded.id.get_version_num(), 7, "event ids are UUIDv7");
    }
    let ids: HashSet<_> = outcome.events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3, "event ids must be unique");

    assert_eq!(
        read_stream(store, &acc, 1, usize::MAX).await,
        outcome.events,
        "read back"
    );
    assert_eq!(version(store, &acc).await, 3);
    assert_eq!(head(store, &bank()).await, 3);
}

/// `Exact(0)` means "the stream must not exist yet".
pub async fn exact_zero_on_existing_stream_conflicts(store: &dyn EventStore) {
    let acc = account("acc-1");
    append_ok(
        store,
        request(&acc, ExpectedVersion::Exact(0), vec![event("opened", "{}")]),
    )
    .await;
    let conflict = append_conflict(
        store,
        request(&acc, ExpectedVersion::Exact(0), vec![event("opened", "{}")]),
    )
    .await;
    assert_eq!(
        conflict,
        VersionConflict {
            stream: acc.clone(),
            expected: 0,
            actual: 1
        }
    );
    assert_eq!(
        version(store, &acc).await,
        1,
        "nothing written by the conflicting append"
    );
}

/// A stale expected version conflicts, reports expected and actual, and
/// writes nothing: not to the stream, not to the namespace's log.
pub async fn stale_expected_version_conflicts(store: &dyn EventStore) {
    let acc = account("acc-1");
    let five = (1..=5)
        .map(|i| event("deposited", &format!("{{\"n\":{i}}}")))
        .collect();
    append_ok(store, request(&acc, ExpectedVersion::Exact(0), five)).await;

    let stale = request(
        &acc,
        ExpectedVersion::Exact(3),
        vec![event("withdrawn", "{}")],
    );
    let conflict = append_conflict(store, stale).await;
    assert_eq!(
        conflict,
        VersionConflict {
            stream: acc.clone(),
            expected: 3,
            actual: 5
        }
    );
    assert_eq!(
        conflict.to_string(),
        "version conflict on bank/bank-account/acc-1: expected version 3, found 5"
    );
    assert_eq!(version(store, &acc).await, 5);
    assert_eq!(
        head(store, &bank()).await,
        5,
        "a conflict must not consume a position"
    );

    let next = append_ok(
        store,
        request(
            &acc,
            ExpectedVersion::Exact(5),
            vec![event("withdrawn", "{}")],
        ),
    )
    .await;
    assert_eq!(
        places(&next.events),
        [(6, 6)],
        "the log continues without a gap after a conflict"
    );
}

/// Expecting a version the stream has not reached yet is a conflict too.
pub async fn expected_version_ahead_conflicts(store: &dyn EventStore) {
    let acc = account("acc-1");
    let conflict = append_conflict(
        store,
        request(&acc, ExpectedVersion::Exact(2), vec![event("opened", "{}")]),
    )
    .await;
    assert_eq!((conflict.expected, conflict.actual), (2, 0));
    append_ok(
        store,
        request(&acc, ExpectedVersion::Exact(0), vec![event("opened", "{}")]),
    )
    .await;
    let conflict = append_conflict(
        store,
        request(&acc, ExpectedVersion::Exact(7), vec![event("x", "{}")]),
    )
    .await;
    assert_eq!((conflict.expected, conflict.actual), (7, 1));
    assert_eq!(version(store, &acc).await, 1);
    assert_eq!(head(store, &bank()).await, 1);
}

/// `Any` skips the check, on a new stream and on an existing one.
pub async fn any_appends_to_new_and_existing_streams(store: &dyn EventStore) {
    let acc = account("acc-1");
    let first = append_ok(
        store,
        request(&acc, ExpectedVersion::Any, vec![event("opened", "{}")]),
    )
    .await;
    assert_eq!(first.last_version(), 1);
    let second = append_ok(
        store,
        request(
            &acc,
            ExpectedVersion::Any,
            vec![event("a", "{}"), event("b", "{}")],
        ),
    )
    .await;
    assert_eq!(places(&second.events), [(2, 2), (3, 3)]);
    assert_eq!(version(store, &acc).await, 3);
}

/// The events of one append are recorded all together, in order, or not at all.
pub async fn multi_event_append_is_atomic(store: &dyn EventStore) {
    let acc = account("acc-1");
    let other = account("acc-2");
    append_ok(
        store,
        request(
            &other,
            ExpectedVersion::Exact(0),
            vec![event("opened", "\"other\"")],
        ),
    )
    .await;
    let batch: Vec<_> = (1..=10)
        .map(|i| event("deposited", &i.to_string()))
        .collect();
    let outcome = append_ok(store, request(&acc, ExpectedVersion::Exact(0), batch)).await;
    let expected_places: Vec<_> = (1..=10).map(|v| (v, v + 1)).collect();
    assert_eq!(
        places(&outcome.events),
        expected_places,
        "contiguous versions and positions"
    );
    let read = read_stream(store, &acc, 1, usize::MAX).await;
    let expected_payloads: Vec<_> = (1..=10).map(|i| i.to_string()).collect();
    assert_eq!(payloads(&read), expected_payloads, "read back in order");

    // A conflicting batch writes none of its events.
    let batch: Vec<_> = (0..5).map(|i| event("withdrawn", &i.to_string())).collect();
    append_conflict(store, request(&acc, ExpectedVersion::Exact(3), batch)).await;
    assert_eq!(
        read_stream(store, &acc, 1, usize::MAX).await,
        read,
        "stream unchanged"
    );
    assert_eq!(
        read_log(store, &bank(), 1, usize::MAX).await.len(),
        11,
        "the namespace's log unchanged"
    );
}

/// An append without events is rejected as invalid and writes nothing.
pub async fn empty_append_is_invalid(store: &dyn EventStore) {
    let acc = account("acc-1");
    let result = store
        .append(request(&acc, ExpectedVersion::Exact(0), Vec::new()))
        .await;
    assert_eq!(
        result,
        Err(AppendError::Invalid(
            "an append needs at least one event".into()
        )),
        "an empty append must be Invalid"
    );
    assert_eq!(version(store, &acc).await, 0);
    assert_eq!(head(store, &bank()).await, 0);
}

/// Retrying a command id returns the original events flagged `duplicate`, even
/// with a stale expected version, and writes nothing.
pub async fn command_id_makes_append_idempotent(store: &dyn EventStore) {
    let acc = account("acc-1");
    let first = with_command(
        request(
            &acc,
            ExpectedVersion::Exact(0),
            vec![event("opened", "{}"), event("deposited", "10")],
        ),
        "cmd-1",
    );
    let original = append_ok(store, first.clone()).await;
    assert!(!original.duplicate);

    let retry = append_ok(store, first.clone()).await;
    assert!(
        retry.duplicate,
        "a retried command id must be reported as a duplicate"
    );
    assert_eq!(
        retry.events, original.events,
        "a duplicate returns the originally recorded events"
    );

    append_ok(
        store,
        request(
            &acc,
            ExpectedVersion::Exact(2),
            vec![event("deposited", "5")],
        ),
    )
    .await;
    let late_retry = append_ok(store, first).await;
    assert!(
        late_retry.duplicate,
        "the command id wins over a now-stale expected version"
    );
    assert_eq!(late_retry.events, original.events);

    let looked_up = store.command_events(&acc, "cmd-1").await.unwrap();
    assert_eq!(
        looked_up.as_ref(),
        Some(&original.events),
        "command_events finds what the command recorded"
    );
    assert_eq!(
        store.command_events(&acc, "cmd-unknown").await.unwrap(),
        None,
        "an unknown command id has no events"
    );
    assert_eq!(
        store
            .command_events(&account("acc-other"), "cmd-1")
            .await
            .unwrap(),
        None,
        "command ids are looked up per stream"
    );

    assert_eq!(
        version(store, &acc).await,
        3,
        "duplicates write nothing to the stream"
    );
    assert_eq!(
        head(store, &bank()).await,
        3,
        "duplicates write nothing to the log"
    );
}

/// A command id is unique per stream: another stream may reuse it.
pub async fn command_id_is_scoped_to_its_stream(store: &dyn EventStore) {
    let one = account("acc-1");
    let two = account("acc-2");
    let a = append_ok(
        store,
        with_command(
            request(&one, ExpectedVersion::Exact(0), vec![event("opened", "1")]),
            "cmd",
        ),
    )
    .await;
    let b = append_ok(
        store,
        with_command(
            request(&two, ExpectedVersion::Exact(0), vec![event("opened", "2")]),
            "cmd",
        ),
    )
    .await;
    assert!(
        !a.duplicate && !b.duplicate,
        "the same command id on another stream is a new command"
    );
    assert_eq!(places(&b.events), [(1, 2)]);
    assert_eq!(head(store, &bank()).await, 2);
}

/// A failed append does not remember its command id, so the corrected retry
/// is recorded.
pub async fn conflicting_append_does_not_record_its_command_id(store: &dyn EventStore) {
    let acc = account("acc-1");
    append_ok(
        store,
        request(&acc, ExpectedVersion::Exact(0), vec![event("opened", "{}")]),
    )
    .await;
    let stale = with_command(
        request(
            &acc,
            ExpectedVersion::Exact(0),
            vec![event("deposited", "1")],
        ),
        "cmd-2",
    );
    append_conflict(store, stale.clone()).await;
    assert_eq!(
        store.command_events(&acc, "cmd-2").await.unwrap(),
        None,
        "a conflicting append records no command"
    );
    let fixed = AppendRequest {
        expected: ExpectedVersion::Exact(1),
        ..stale
    };
    let outcome = append_ok(store, fixed).await;
    assert!(
        !outcome.duplicate,
        "a conflicting append must not record its command id"
    );
    assert_eq!(places(&outcome.events), [(2, 2)]);
}

/// The same aggregate type and id in two namespaces are two unrelated streams:
/// versions, reads, command ids and snapshots do not leak across.
pub async fn namespaces_are_isolated(store: &dyn EventStore) {
    let a = stream("tenant-a", "bank-account", "acc-1");
    let b = stream("tenant-b", "bank-account", "acc-1");
    let in_a = vec![event("opened", "\"a\""), event("deposited", "\"a\"")];
    append_ok(
        store,
        with_command(request(&a, ExpectedVersion::Exact(0), in_a), "cmd"),
    )
    .await;
    let outcome = append_ok(
        store,
        with_command(
            request(
                &b,
                ExpectedVersion::Exact(0),
                vec![event("opened", "\"b\"")],
            ),
            "cmd",
        ),
    )
    .await;
    assert!(
        !outcome.duplicate,
        "a command id from another namespace is not a duplicate"
    );
    assert_eq!(
        outcome.last_version(),
        1,
        "namespace B's stream starts at version 1"
    );

    assert_eq!(version(store, &a).await, 2);
    assert_eq!(version(store, &b).await, 1);
    let read_a = read_stream(store, &a, 1, usize::MAX).await;
    let read_b = read_stream(store, &b, 1, usize::MAX).await;
    assert_eq!(payloads(&read_a), ["\"a\"", "\"a\""]);
    assert_eq!(payloads(&read_b), ["\"b\""]);
    assert!(read_b.iter().all(|e| e.stream == b));

    store
        .save_snapshot(Snapshot {
            stream: a.clone(),
            version: 2,
            snapshot_key: "d".into(),
            state: b"a".to_vec(),
            timestamp_ms: 1,
        })
        .await
        .unwrap_or_else(|error| panic!("save_snapshot failed: {error}"));
    let leaked = store
        .load_snapshot(&b, "d")
        .await
        .unwrap_or_else(|error| panic!("load_snapshot failed: {error}"));
    assert_eq!(
        leaked, None,
        "a snapshot must not leak into another namespace"
    );
}
