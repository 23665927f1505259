//! The `event-batch` buffer of `aether:aggregate@0.2.0`: a batch of events
//! written one after another, each a 28-byte little-endian header (version,
//! timestamp, three lengths) followed by its event type, content type and
//! data. The layout is specified in `wit/aggregate.wit`; the Rust SDK's
//! reader is `aether_guest`'s `batch` module.
//!
//! **Invariant:** a batch written here always has the documented layout
//! (every length fits in a u32, strings are UTF-8 because they are `str`);
//! an event whose type, content type or data does not fit in a u32 length
//! cannot be stored (the store caps events far below 4 GiB), so
//! [`EventBatch::push`] treats it as a bug.

/// Bytes of the fixed header in front of each event.
pub(crate) const HEADER_LEN: usize = 28;

/// A reusable buffer that batches are written into: cleared, not freed,
/// between batches, so a replay allocates it once.
#[derive(Default)]
pub(crate) struct EventBatch {
    bytes: Vec<u8>,
}

impl EventBatch {
    /// Starts a new batch, keeping the buffer's capacity.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
    }

    /// Appends one event.
    pub(crate) fn push(
        &mut self,
        version: u64,
        timestamp_ms: u64,
        event_type: &str,
        content_type: &str,
        data: &[u8],
    ) {
        let len = |what: &str, n: usize| {
            u32::try_from(n).unwrap_or_else(|_| panic!("an event's {what} longer than 4 GiB"))
        };
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(&version.to_le_bytes());
        header[8..16].copy_from_slice(&timestamp_ms.to_le_bytes());
        header[16..20].copy_from_slice(&len("event type", event_type.len()).to_le_bytes());
        header[20..24].copy_from_slice(&len("content type", content_type.len()).to_le_bytes());
        header[24..28].copy_from_slice(&len("data", data.len()).to_le_bytes());
        self.bytes
            .reserve(HEADER_LEN + event_type.len() + content_type.len() + data.len());
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(event_type.as_bytes());
        self.bytes.extend_from_slice(content_type.as_bytes());
        self.bytes.extend_from_slice(data);
    }

    /// The batch written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Frees a buffer that a very large batch grew, so one long replay does
    /// not keep its high-water mark for the instance's lifetime.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_laid_out_as_the_wit_says() {
        let mut batch = EventBatch::default();
        batch.push(
            7,
            1_700,
            "Deposited",
            "application/json",
            br#"{"amount":5}"#,
        );
        batch.push(8, 1_701, "Closed", "text/plain", b"");
        let b = batch.as_bytes();
        assert_eq!(&b[0..8], &7u64.to_le_bytes());
        assert_eq!(&b[8..16], &1_700u64.to_le_bytes());
        assert_eq!(&b[16..20], &9u32.to_le_bytes());
        assert_eq!(&b[20..24], &16u32.to_le_bytes());
        assert_eq!(&b[24..28], &12u32.to_le_bytes());
        assert_eq!(&b[28..37], b"Deposited");
        assert_eq!(&b[37..53], b"application/json");
        assert_eq!(&b[53..65], br#"{"amount":5}"#);
        let second = &b[65..];
        assert_eq!(&second[0..8], &8u64.to_le_bytes());
        assert_eq!(&second[16..20], &6u32.to_le_bytes());
        assert_eq!(&second[20..24], &10u32.to_le_bytes());
        assert_eq!(&second[24..28], &0u32.to_le_bytes());
        assert_eq!(&second[28..], b"Closedtext/plain");
        batch.clear();
        assert!(batch.as_bytes().is_empty());
    }
}
