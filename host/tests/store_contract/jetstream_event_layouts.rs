//! Events of both envelope layouts in one stream: those an earlier
//! version wrote (layout 1, one header per field) read as they were
//! written, next to this version's (layout 2, one `Aether-Event` header),
//! on every read path.

use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, JetStreamConfig, JetStreamStore,
    NewEvent, RecordedEvent, ReplayBatch, StreamId,
};
use aether_nats_harness::NatsServer;

/// More than a consumer-backed read needs (256), so both read paths
/// (direct gets and the read's own consumer) cross the layouts.
const OLD: u64 = 300;
const NEW: u64 = 300;

fn stream(id: &str) -> StreamId {
    StreamId::new(
        "bank".parse().unwrap(),
        "bank-account".parse().unwrap(),
        id.parse().unwrap(),
    )
}

/// What a layout-1 event of `version` held: awkward texts where a field
/// is free text, a command id on every tenth.
fn old_event(stream: &StreamId, version: u64, position: u64) -> RecordedEvent {
    RecordedEvent {
        id: uuid::Uuid::now_v7(),
        stream: stream.clone(),
        version,
        position,
        event_type: if version == 1 { "opened" } else { "deposited" }.into(),
        content_type: "application/json".into(),
        data: format!("{{\"amount\":{version}}}").into_bytes(),
        metadata: EventMetadata {
            command_id: version
                .is_multiple_of(10)
                .then(|| format!("old command {version}")),
            correlation_id: Some("corr 100% plain".into()),
            causation_id: None,
            component_digest: Some("sha256:0123".into()),
        },
        timestamp_ms: 1_700_000_000_000 + version,
    }
}

/// Publishes `event` as an earlier version did (layout 1).
async fn publish_old(js: &async_nats::jetstream::Context, event: &RecordedEvent) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Aether-Version", event.version.to_string().as_str());
    headers.insert("Aether-Event-Id", event.id.to_string().as_str());
    headers.insert("Aether-Event-Type", event.event_type.as_str());
    headers.insert("Aether-Content-Type", event.content_type.as_str());
    headers.insert(
        "Aether-Timestamp-Ms",
        event.timestamp_ms.to_string().as_str(),
    );
    let m = &event.metadata;
    for (name, value) in [
        ("Aether-Command-Id", &m.command_id),
        ("Aether-Correlation-Id", &m.correlation_id),
        ("Aether-Causation-Id", &m.causation_id),
        ("Aether-Component-Digest", &m.component_digest),
    ] {
        if let Some(value) = value {
            headers.insert(name, value.as_str());
        }
    }
    let ack = js
        .publish_with_headers(
            "aether.events.bank.bank-account.mixed",
            headers,
            event.data.clone().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, event.position);
}

/// Fails naming the first event that differs, not printing them all.
fn same(read: &[RecordedEvent], want: &[RecordedEvent], what: &str) {
    if let Some(i) = (0..read.len().max(want.len())).find(|&i| read.get(i) != want.get(i)) {
        panic!(
            "{what}: {} events, {} wanted; the first difference, at {i}:\n  read {:?}\n  want {:?}",
            read.len(),
            want.len(),
            read.get(i),
            want.get(i)
        );
    }
}

#[test]
fn events_of_an_earlier_layout_read_as_written_next_to_new_ones() {
    aether_host::store::contract::block_on(async {
        let server = NatsServer::start();
        let store = JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
            .await
            .unwrap();
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let bank = "bank".parse().unwrap();
        let mut follower = store.follow_log(&bank, 0).await.unwrap().expect("a feed");

        // The namespace's stream, made by this version's first append.
        let first = store
            .append(AppendRequest {
                stream: stream("first"),
                expected: ExpectedVersion::Exact(0),
                events: vec![NewEvent::json("opened", b"{}".to_vec())],
                metadata: EventMetadata::default(),
                timestamp_ms: 5,
            })
            .await
            .unwrap()
            .events;
        let mixed = stream("mixed");
        let mut all = Vec::new();
        for version in 1..=OLD {
            let event = old_event(&mixed, version, version + 1);
            publish_old(&js, &event).await;
            all.push(event);
        }
        // This version appends after them (its expected version read from
        // the last layout-1 message), with text that needs escaping.
        let metadata = EventMetadata {
            command_id: Some("new command".into()),
            correlation_id: Some("line\r\nbreak %20".into()),
            causation_id: Some("ünï 口座".into()),
            component_digest: Some("sha256:4567".into()),
        };
        let appended = store
            .append(AppendRequest {
                stream: mixed.clone(),
                expected: ExpectedVersion::Exact(OLD),
                events: (0..NEW)
                    .map(|i| NewEvent {
                        event_type: format!("moved {i}%"),
                        content_type: "text/plain; charset=utf-8".into(),
                        data: i.to_string().into_bytes(),
                    })
                    .collect(),
                metadata,
                timestamp_ms: 1_800_000_000_000,
            })
            .await
            .unwrap();
        assert!(!appended.duplicate);
        all.extend(appended.events);

        // The store's own messages carry one envelope header.
        let stored = js
            .get_stream("AETHER_EVENTS_bank")
            .await
            .unwrap()
            .direct_get(OLD + 2)
            .await
            .unwrap();
        let names: Vec<String> = stored
            .headers
            .iter()
            .map(|(name, _)| name.to_string())
            .filter(|name| name.starts_with("Aether-"))
            .collect();
        assert_eq!(names, ["Aether-Event"]);

        // Whole, and from inside either layout, short and long reads.
        let total = (OLD + NEW) as usize;
        for (from, limit) in [
            (1, total),
            (1, 1_024),
            (OLD - 5, 10),
            (OLD + 1, 1_024),
            (2, 299),
        ] {
            let want = &all[from as usize - 1..(from as usize - 1 + limit).min(total)];
            let read = store.read_stream(&mixed, from, limit).await.unwrap();
            same(&read, want, &format!("read_stream from {from}, {limit}"));
            let batch = store.read_replay_batch(&mixed, from, limit).await.unwrap();
            assert!(
                batch == ReplayBatch::from_events(want),
                "read_replay_batch from {from}, {limit}"
            );
        }
        let mut log = first;
        log.extend(all.iter().cloned());
        same(
            &store.read_log(&bank, 1, 2_000).await.unwrap(),
            &log,
            "read_log",
        );
        for event in &log {
            let followed = follower.next().await.unwrap();
            same(&[followed], std::slice::from_ref(event), "follow_log");
        }

        // A command id of either layout is found, and its retry appends
        // nothing.
        for (command, version) in [("old command 250", 250), ("new command", OLD + 1)] {
            let found = store
                .command_events(&mixed, command)
                .await
                .unwrap()
                .expect(command);
            assert_eq!(found[0].version, version, "{command}");
            let retry = store
                .append(AppendRequest {
                    stream: mixed.clone(),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent::json("deposited", b"{}".to_vec())],
                    metadata: EventMetadata {
                        command_id: Some(command.into()),
                        ..EventMetadata::default()
                    },
                    timestamp_ms: 9,
                })
                .await
                .unwrap();
            assert!(retry.duplicate, "{command}");
        }
        assert_eq!(store.stream_version(&mixed).await.unwrap(), OLD + NEW);
    });
}
