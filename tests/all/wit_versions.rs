//! Components built with each SDK (Rust, Python, JavaScript) export
//! `aether:aggregate/handler@0.4.0` (one `execute` call per command that
//! hands the decided events back as a batch, `apply` takes a batch as one
//! buffer): through each, a history longer than two replay batches gives
//! the same state, a command changes it, and an event the guest cannot
//! apply is reported at its own version. Components written against one
//! version by hand, without an SDK, go through the same checks: 0.4.0 with
//! `tests/programs/tally-v04`, the frozen 0.3.0 (`execute` takes a
//! `command` record and gives a `list<new-event>`) with `tally-v03`, 0.2.0
//! (`handle`, then `apply` with the decided events) with `tally-v02`, 0.1.0
//! (`apply` takes a `list<event>`) with `tally-v01`; the probes
//! (`languages_sandbox.rs`) export 0.1.0 too. `tally-v04` also hands back
//! decided events that break the batch rules on purpose: the host must
//! refuse them and store nothing.

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::runtime::{CommandError, CommandRequest, GuestFailureKind, Runtime};
use std::sync::Arc;

use aether_host::store::{
    AppendRequest, EmbeddedStore, EventMetadata, ExpectedVersion, NewEvent, StreamId,
};
use aether_tests::{artifacts, component, memory_runtime, runtime_on, send, stream, test_config};
use serde_json::json;

/// More than two of the runtime's replay batches (1 024 events).
const EVENTS: u64 = 2_500;

const COMPONENTS: [(&str, &str, &str); 7] = [
    (
        "rust",
        artifacts::BANK_ACCOUNT,
        "aether:aggregate/handler@0.4.0",
    ),
    (
        "python",
        artifacts::BANK_ACCOUNT_PY,
        "aether:aggregate/handler@0.4.0",
    ),
    (
        "javascript",
        artifacts::BANK_ACCOUNT_JS,
        "aether:aggregate/handler@0.4.0",
    ),
    // The tallies' views are only the balance: not compared with the bank
    // accounts'.
    (
        "rust on 0.4.0",
        artifacts::TALLY_V04,
        "aether:aggregate/handler@0.4.0",
    ),
    (
        "rust on 0.3.0",
        artifacts::TALLY_V03,
        "aether:aggregate/handler@0.3.0",
    ),
    (
        "rust on 0.2.0",
        artifacts::TALLY_V02,
        "aether:aggregate/handler@0.2.0",
    ),
    (
        "rust on 0.1.0",
        artifacts::TALLY_V01,
        "aether:aggregate/handler@0.1.0",
    ),
];

/// `Opened` then deposits of 1..; the event at `odd_one_out`, if any, has
/// a type the bank account does not know.
fn history(odd_one_out: Option<u64>) -> Vec<NewEvent> {
    (1..=EVENTS)
        .map(|version| match version {
            1 => NewEvent::json("Opened", br#"{"owner":"Ada"}"#.to_vec()),
            v if Some(v) == odd_one_out => NewEvent::json("Transmogrified", b"{}".to_vec()),
            v => NewEvent::json("Deposited", format!(r#"{{"amount":{v}}}"#).into_bytes()),
        })
        .collect()
}

/// Stores `events` for `target` (in appends of 500, straight to the store,
/// each with a command id).
async fn store_history(runtime: &Runtime, target: &StreamId, events: Vec<NewEvent>) {
    let mut version = 0;
    for (i, chunk) in events.chunks(500).enumerate() {
        let request = AppendRequest {
            stream: target.clone(),
            expected: ExpectedVersion::Exact(version),
            events: chunk.to_vec(),
            metadata: EventMetadata {
                command_id: Some(format!("history-{i}")),
                ..EventMetadata::default()
            },
            timestamp_ms: 1_700_000_000_000 + i as u64,
        };
        version = runtime
            .store()
            .append(request)
            .await
            .unwrap()
            .last_version();
    }
}

/// Each component is compiled once (Python's and JavaScript's take a while
/// in a debug build) and serves two aggregate types: `account`, whose
/// history it can apply, and `odd-account`, whose history has an event
/// type it does not know in the middle of the second batch.
#[tokio::test]
async fn each_served_version_replays_long_histories_and_decides_the_same_way() {
    let expected_balance: u64 = (2..=EVENTS).sum();
    // In the second batch, so the version is not the batch's first.
    let bad = 1_500;
    let namespace = Namespace::new("versions").unwrap();
    let mut views = Vec::new();
    for (language, path, export) in COMPONENTS {
        let runtime = memory_runtime(test_config());
        let loaded = runtime.load_component(component(path)).await.unwrap();
        assert_eq!(loaded.handler_export(), export, "{language}");
        for aggregate_type in ["account", "odd-account"] {
            let aggregate_type = AggregateType::new(aggregate_type).unwrap();
            runtime.activate(&namespace, &aggregate_type, loaded.clone());
        }

        let good = stream("versions", "account", "long");
        store_history(&runtime, &good, history(None)).await;
        let state = runtime.state(&good).await.unwrap();
        assert_eq!(state.version, EVENTS, "{language}");
        assert_eq!(
            state.view["balance"].as_u64(),
            Some(expected_balance),
            "{language}: {}",
            state.view
        );
        if !language.starts_with("rust on") {
            views.push((language, state.view));
        }

        // A command: one `execute` on 0.4.0 and 0.3.0; `handle`, then
        // `apply` of the event it decided, on the older versions.
        let outcome = send(&runtime, &good, "Deposit", json!({"amount": 7}))
            .await
            .unwrap_or_else(|e| panic!("{language}: {e}"));
        assert_eq!(outcome.version, EVENTS + 1, "{language}");
        let state = runtime.state(&good).await.unwrap();
        assert_eq!(
            state.view["balance"].as_u64(),
            Some(expected_balance + 7),
            "{language}: {}",
            state.view
        );

        let odd = stream("versions", "odd-account", "long");
        store_history(&runtime, &odd, history(Some(bad))).await;
        let error = runtime.state(&odd).await.unwrap_err();
        let CommandError::Guest(failure) = &error else {
            panic!("{language}: {error:?}");
        };
        assert_eq!(failure.kind, GuestFailureKind::ApplyFailed, "{language}");
        for part in [
            format!("could not apply event version {bad}"),
            "Transmogrified".to_string(),
        ] {
            assert!(
                failure.message.contains(&part),
                "{language}: {}",
                failure.message
            );
        }
    }
    for (language, view) in &views[1..] {
        assert_eq!(view, &views[0].1, "{language} against {}", views[0].0);
    }
}

/// The embedded store writes an activation's batches straight from its
/// records (the memory store above builds them from whole events): every
/// served version replays them the same way, over several batches, and a
/// refused event is reported at its own version.
#[tokio::test]
async fn every_version_replays_the_embedded_stores_batches() {
    let expected_balance: u64 = (2..=EVENTS).sum();
    let bad = 1_500;
    let namespace = Namespace::new("versions").unwrap();
    for (language, path, _) in COMPONENTS {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let runtime = runtime_on(store, test_config());
        let loaded = runtime.load_component(component(path)).await.unwrap();
        for aggregate_type in ["account", "odd-account"] {
            let aggregate_type = AggregateType::new(aggregate_type).unwrap();
            runtime.activate(&namespace, &aggregate_type, loaded.clone());
        }
        let good = stream("versions", "account", "long");
        store_history(&runtime, &good, history(None)).await;
        let state = runtime.state(&good).await.unwrap();
        assert_eq!(state.version, EVENTS, "{language}");
        assert_eq!(
            state.view["balance"].as_u64(),
            Some(expected_balance),
            "{language}: {}",
            state.view
        );
        // A command retried with an id the history stored is answered with
        // what it stored, not decided again.
        let mut retried = CommandRequest::json(good.clone(), "Deposit", &json!({"amount": 7}));
        retried.command_id = Some("history-2".into());
        let outcome = runtime.execute(retried).await.unwrap();
        assert!(outcome.duplicate, "{language}");
        assert_eq!(outcome.version, 1_500, "{language}");
        assert_eq!(runtime.state(&good).await.unwrap().version, EVENTS);

        let odd = stream("versions", "odd-account", "long");
        store_history(&runtime, &odd, history(Some(bad))).await;
        let error = runtime.state(&odd).await.unwrap_err();
        let CommandError::Guest(failure) = &error else {
            panic!("{language}: {error:?}");
        };
        assert_eq!(failure.kind, GuestFailureKind::ApplyFailed, "{language}");
        assert!(
            failure
                .message
                .contains(&format!("could not apply event version {bad}")),
            "{language}: {}",
            failure.message
        );
    }
}

/// 0.4.0's `execute` hands the decided events back as bytes from the
/// guest: the host checks their layout, versions and timestamps, and a
/// guest that breaks them fails its command like a trap: nothing is
/// stored, and the state it had changed before lying is forgotten (the
/// aggregate is rebuilt from the store). An `unapplied` decision is stored
/// and reported on replay, as on 0.3.0.
#[tokio::test]
async fn a_guest_whose_decided_events_break_the_batch_rules_stores_nothing() {
    let runtime = memory_runtime(test_config());
    let loaded = runtime
        .load_component(component(artifacts::TALLY_V04))
        .await
        .unwrap();
    let namespace = Namespace::new("versions").unwrap();
    runtime.activate(&namespace, &AggregateType::new("tally").unwrap(), loaded);
    let tally = stream("versions", "tally", "liar");
    send(&runtime, &tally, "Deposit", json!({"amount": 5}))
        .await
        .unwrap();
    for (how, problem) in [
        ("version", "version 3, expected 2"),
        ("timestamp", "expected the command's"),
        ("truncated", "run past the buffer's end"),
        ("trailing", "less than a 28-byte header"),
        ("utf8", "its event type is not UTF-8"),
        ("lengths", "run past the buffer's end"),
    ] {
        let error = send(&runtime, &tally, "Lie", json!({"how": how}))
            .await
            .unwrap_err();
        let CommandError::Guest(failure) = &error else {
            panic!("{how}: {error:?}");
        };
        assert_eq!(failure.kind, GuestFailureKind::Trap, "{how}: {failure}");
        for part in ["not a valid batch", problem] {
            assert!(failure.message.contains(part), "{how}: {failure}");
        }
        assert_eq!(runtime.store().stream_version(&tally).await.unwrap(), 1);
        let state = runtime.state(&tally).await.unwrap();
        assert_eq!(
            (state.version, &state.view),
            (1, &json!({"balance": 5})),
            "{how}"
        );
    }
    // The same guest telling the truth, after all that.
    let outcome = send(&runtime, &tally, "Deposit", json!({"amount": 2}))
        .await
        .unwrap();
    assert_eq!(outcome.version, 2);

    decided_events_that_do_not_apply_are_stored_and_reported(&runtime, &tally, 4).await;
}

/// 0.3.0's `decision` with an `apply-error` is stored and reported on
/// replay, as 0.4.0's `unapplied` is.
#[tokio::test]
async fn a_decision_with_an_apply_error_on_0_3_0_is_stored_and_reported() {
    let runtime = memory_runtime(test_config());
    let loaded = runtime
        .load_component(component(artifacts::TALLY_V03))
        .await
        .unwrap();
    let namespace = Namespace::new("versions").unwrap();
    runtime.activate(&namespace, &AggregateType::new("tally").unwrap(), loaded);
    let tally = stream("versions", "tally", "odd");
    send(&runtime, &tally, "Deposit", json!({"amount": 5}))
        .await
        .unwrap();
    decided_events_that_do_not_apply_are_stored_and_reported(&runtime, &tally, 3).await;
}

/// A tally's `Transmogrify` decides `Deposited` and then `Transmogrified`,
/// which it cannot apply: both are stored (the last at `last_version`),
/// and the aggregate's replay then meets the error at that version.
async fn decided_events_that_do_not_apply_are_stored_and_reported(
    runtime: &Runtime,
    tally: &StreamId,
    last_version: u64,
) {
    let outcome = send(runtime, tally, "Transmogrify", json!(null))
        .await
        .unwrap();
    assert_eq!(outcome.version, last_version);
    let types: Vec<_> = outcome
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["Deposited", "Transmogrified"]);
    assert_eq!(
        runtime.store().stream_version(tally).await.unwrap(),
        last_version
    );
    let error = runtime.state(tally).await.unwrap_err();
    let CommandError::Guest(failure) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(failure.kind, GuestFailureKind::ApplyFailed, "{failure}");
    assert!(
        failure
            .message
            .contains(&format!("could not apply event version {last_version}")),
        "{failure}"
    );
}
