//! What every backend does with an append request before storing it.

use uuid::Uuid;

use crate::{AppendError, AppendRequest, RecordedEvent};

/// The backends' side of [`AppendRequest`]: checking and recording it.
pub(crate) trait AppendRequestExt {
    /// Refuses a request no backend may store: one without events.
    fn check(&self) -> Result<(), AppendError>;

    fn record(self, current_version: u64, head_position: u64) -> Vec<RecordedEvent>;
}

impl AppendRequestExt for AppendRequest {
    fn check(&self) -> Result<(), AppendError> {
        if self.events.is_empty() {
            return Err(AppendError::Invalid(
                "an append needs at least one event".to_owned(),
            ));
        }
        Ok(())
    }

    fn record(self, current_version: u64, head_position: u64) -> Vec<RecordedEvent> {
        let AppendRequest {
            stream,
            events,
            metadata,
            timestamp_ms,
            ..
        } = self;
        (1..)
            .zip(events)
            .map(|(offset, event)| RecordedEvent {
                id: Uuid::now_v7(),
                stream: stream.clone(),
                version: current_version + offset,
                position: head_position + offset,
                event_type: event.event_type,
                content_type: event.content_type,
                data: event.data,
                metadata: metadata.clone(),
                timestamp_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventMetadata, ExpectedVersion, NewEvent, StreamId};

    #[test]
    fn record_continues_versions_and_positions() {
        let stream = StreamId::new(
            "bank".parse().unwrap(),
            "bank-account".parse().unwrap(),
            "acc-1".parse().unwrap(),
        );
        let request = AppendRequest {
            stream,
            expected: ExpectedVersion::Exact(0),
            events: vec![NewEvent::json("opened", b"{}".to_vec())],
            metadata: EventMetadata::default(),
            timestamp_ms: 7,
        };
        let event = request.record(4, 9).remove(0);
        assert_eq!(
            (event.version, event.position, event.timestamp_ms),
            (5, 10, 7)
        );
        assert_eq!(event.stream.to_string(), "bank/bank-account/acc-1");
    }
}
