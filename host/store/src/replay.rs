//! [`ReplayBatch`]: a run of a stream's events as an activation replays
//! them, already in the `event-batch` layout the guest receives
//! ([`aether_core::batch`]), with the events' command ids beside it.
//!
//! [`EventStore::read_replay_batch`](crate::EventStore::read_replay_batch)
//! reads one. By default it is built from
//! [`read_stream`](crate::EventStore::read_stream) ([`ReplayBatch::from_events`]);
//! the embedded store writes it straight from its records (the JetStream
//! store from its messages), with no owned event in between.

use aether_core::batch::{BatchEvent, EventBatch};

use crate::RecordedEvent;

/// Stored events of one stream, in version order, laid out for a guest's
/// `apply`, and the command ids they carry (for the live aggregate's memory
/// of command ids).
///
/// Only what a replay uses is kept: version, timestamp, event type,
/// content type, data and command id; not the event id, position,
/// correlation, causation or component digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayBatch {
    events: EventBatch,
    /// The command ids, one after another; `command_id_ends[i]` is where
    /// the i-th ends.
    command_ids: String,
    command_id_ends: Vec<usize>,
}

impl ReplayBatch {
    /// An empty batch with room for `bytes` bytes of events.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            events: EventBatch::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// The batch of `events` (in the order given).
    pub fn from_events(events: &[RecordedEvent]) -> Self {
        let bytes = events
            .iter()
            .map(|e| {
                aether_core::batch::HEADER_LEN
                    + e.event_type.len()
                    + e.content_type.len()
                    + e.data.len()
            })
            .sum();
        let mut batch = Self::with_capacity(bytes);
        for e in events {
            let event = BatchEvent {
                version: e.version,
                timestamp_ms: e.timestamp_ms,
                event_type: &e.event_type,
                content_type: &e.content_type,
                data: &e.data,
            };
            batch.push(event, e.metadata.command_id.as_deref());
        }
        batch
    }

    /// Appends an event, which carries `command_id` if any.
    pub fn push(&mut self, event: BatchEvent<'_>, command_id: Option<&str>) {
        self.events.push(event);
        if let Some(id) = command_id
            && self.last_command_id() != Some(id)
        {
            self.command_ids.push_str(id);
            self.command_id_ends.push(self.command_ids.len());
        }
    }

    /// The events, as the guest receives them.
    pub fn events(&self) -> &EventBatch {
        &self.events
    }

    /// The events, to be handed on (the command ids are left behind).
    pub fn into_events(self) -> EventBatch {
        self.events
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The command ids the events carry, in order, each once per run of
    /// events carrying it (the events of one append carry the same id).
    pub fn command_ids(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.command_id_ends.iter().map(move |&end| {
            let id = &self.command_ids[start..end];
            start = end;
            id
        })
    }

    /// The command id of the last event that carried one.
    fn last_command_id(&self) -> Option<&str> {
        let (&end, before) = self.command_id_ends.split_last()?;
        let start = before.last().copied().unwrap_or(0);
        Some(&self.command_ids[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::AppendRequestExt;
    use crate::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent, StreamId};

    fn recorded(first_version: u64, command_id: Option<&str>, n: usize) -> Vec<RecordedEvent> {
        let request = AppendRequest {
            stream: StreamId::new(
                "bank".parse().unwrap(),
                "bank-account".parse().unwrap(),
                "acc-1".parse().unwrap(),
            ),
            expected: ExpectedVersion::Any,
            events: (0..n)
                .map(|i| NewEvent::json("Deposited", format!(r#"{{"amount":{i}}}"#).into_bytes()))
                .collect(),
            metadata: EventMetadata {
                command_id: command_id.map(str::to_owned),
                ..EventMetadata::default()
            },
            timestamp_ms: 42,
        };
        request.record(first_version - 1, 0)
    }

    #[test]
    fn a_batch_of_events_holds_their_fields_and_each_run_of_a_command_id_once() {
        let mut events = recorded(1, Some("c-1"), 2);
        events.extend(recorded(3, None, 1));
        events.extend(recorded(4, Some("c-2"), 1));
        events.extend(recorded(5, Some("c-1"), 1));
        let batch = ReplayBatch::from_events(&events);
        assert_eq!(batch.len(), 5);
        let read: Vec<_> = batch.events().events().collect();
        for (event, read) in events.iter().zip(&read) {
            assert_eq!(
                (
                    read.version,
                    read.timestamp_ms,
                    read.event_type,
                    read.content_type,
                    read.data
                ),
                (
                    event.version,
                    event.timestamp_ms,
                    event.event_type.as_str(),
                    event.content_type.as_str(),
                    &event.data[..]
                )
            );
        }
        assert_eq!(
            batch.command_ids().collect::<Vec<_>>(),
            ["c-1", "c-2", "c-1"]
        );
        assert!(batch.events().continues(0));
        assert!(ReplayBatch::from_events(&[]).is_empty());
        assert_eq!(ReplayBatch::default().command_ids().count(), 0);
    }
}
