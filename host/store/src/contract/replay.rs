//! Contract cases for [`EventStore::read_replay_batch`]: an activation's
//! read is `read_stream` laid out for the guest, whichever way a backend
//! writes it.

use super::{account, append_ok, event, read_stream, request, stream, version, with_command};
use crate::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, ReplayBatch, StreamId};

/// What a replay batch of `events` must hold: each event's (version,
/// timestamp, type, content type, data), and the command ids in order,
/// each once per run of events carrying it.
type Replayed = (Vec<(u64, u64, String, String, Vec<u8>)>, Vec<String>);

fn expected(events: &[RecordedEvent]) -> Replayed {
    let fields = events
        .iter()
        .map(|e| {
            (
                e.version,
                e.timestamp_ms,
                e.event_type.clone(),
                e.content_type.clone(),
                e.data.clone(),
            )
        })
        .collect();
    let mut command_ids: Vec<String> = Vec::new();
    for id in events.iter().filter_map(|e| e.metadata.command_id.as_ref()) {
        if command_ids.last() != Some(id) {
            command_ids.push(id.clone());
        }
    }
    (fields, command_ids)
}

fn held(batch: &ReplayBatch) -> Replayed {
    let fields = batch
        .events()
        .events()
        .map(|e| {
            (
                e.version,
                e.timestamp_ms,
                e.event_type.to_owned(),
                e.content_type.to_owned(),
                e.data.to_vec(),
            )
        })
        .collect();
    let command_ids = batch.command_ids().map(str::to_owned).collect();
    (fields, command_ids)
}

async fn read_replay_batch(
    store: &dyn EventStore,
    stream: &StreamId,
    from: u64,
    limit: usize,
) -> ReplayBatch {
    store
        .read_replay_batch(stream, from, limit)
        .await
        .unwrap_or_else(|error| {
            panic!("read_replay_batch({stream}, {from}, {limit}) failed: {error}")
        })
}

/// From every version (0 and past the end included) and in every batch
/// size, `read_replay_batch` holds exactly the events `read_stream` reads,
/// in the `event-batch` layout, with their command ids; among them events
/// of one append with one command id, events without one, binary data,
/// other content types, an empty payload, and other streams' events
/// stored in between.
pub async fn read_replay_batch_holds_what_read_stream_reads(store: &dyn EventStore) {
    let acc = account("acc-1");
    let neighbour = account("acc-2");
    let elsewhere = stream("tenant-b", "bank-account", "acc-1");
    let appends: Vec<(Option<&str>, Vec<NewEvent>)> = vec![
        (
            Some("cmd-a"),
            vec![
                event("opened", r#"{"owner":"ada"}"#),
                event("deposited", "1"),
                event("deposited", "2"),
            ],
        ),
        (None, vec![event("deposited", "3")]),
        (
            Some("cmd-b"),
            vec![
                NewEvent::new("blob", "application/octet-stream", vec![0, 159, 255, 10]),
                NewEvent::new("blob", "application/octet-stream", Vec::new()),
            ],
        ),
        (Some("cmd-c"), vec![event("closed", "{}")]),
        (None, vec![event("reopened", "{}"), event("deposited", "4")]),
    ];
    for (i, (command_id, events)) in appends.into_iter().enumerate() {
        let expected = ExpectedVersion::Exact(version(store, &acc).await);
        let mut append = request(&acc, expected, events);
        append.timestamp_ms += i as u64;
        if let Some(id) = command_id {
            append = with_command(append, id);
        }
        append_ok(store, append).await;
        for other in [&neighbour, &elsewhere].into_iter().take(i % 3) {
            let any = request(other, ExpectedVersion::Any, vec![event("noise", "0")]);
            append_ok(store, any).await;
        }
    }
    let all = read_stream(store, &acc, 1, usize::MAX).await;
    assert_eq!(all.len(), 9);
    for from in 0..=11 {
        for limit in [0, 1, 2, 3, 4, 5, 8, 9, 10, usize::MAX] {
            let events = read_stream(store, &acc, from, limit).await;
            let batch = read_replay_batch(store, &acc, from, limit).await;
            let what = format!("from {from}, limit {limit}");
            assert_eq!(held(&batch), expected(&events), "{what}");
            assert_eq!(batch.len(), events.len(), "{what}");
            assert_eq!(
                batch.events().first().map(|(version, _)| version),
                events.first().map(|e| e.version),
                "{what}"
            );
            assert_eq!(
                batch.events().last(),
                events.last().map(|e| (e.version, e.timestamp_ms)),
                "{what}"
            );
            let layout: usize = events
                .iter()
                .map(|e| 28 + e.event_type.len() + e.content_type.len() + e.data.len())
                .sum();
            assert_eq!(batch.events().as_bytes().len(), layout, "{what}");
            if !events.is_empty() {
                assert!(
                    batch.events().continues(from.max(1) - 1),
                    "{what}: versions follow on from the one before `from`"
                );
            }
        }
    }
}

/// An unknown stream, and a stream read past its end or with limit 0,
/// give an empty batch.
pub async fn read_replay_batch_of_nothing_is_empty(store: &dyn EventStore) {
    let acc = account("acc-1");
    assert!(
        read_replay_batch(store, &acc, 1, usize::MAX)
            .await
            .is_empty()
    );
    let expected = ExpectedVersion::Exact(0);
    append_ok(
        store,
        request(&acc, expected, vec![event("a", "1"), event("b", "2")]),
    )
    .await;
    let ghost = account("ghost");
    for (stream, from, limit) in [
        (&ghost, 1, usize::MAX),
        (&acc, 3, 10),
        (&acc, 7, 1),
        (&acc, 1, 0),
    ] {
        let batch = read_replay_batch(store, stream, from, limit).await;
        assert!(batch.is_empty(), "{stream} from {from}, limit {limit}");
        assert!(batch.events().as_bytes().is_empty());
        assert_eq!(batch.command_ids().count(), 0);
    }
    assert_eq!(read_replay_batch(store, &acc, 0, 10).await.len(), 2);
}
