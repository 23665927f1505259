//! The batch `apply` receives and `execute` hands back
//! (`aether:aggregate@0.4.0`): events one after another, each a 28-byte
//! little-endian header (version, timestamp, the lengths of its event
//! type, content type and data) followed by those three byte strings. The
//! layout is specified on `apply` in `wit/aggregate.wit`.
//!
//! Events are read in place: the type names and the data are borrowed
//! slices, so a replay allocates nothing per event here. The type names
//! stay bytes: the host only stores UTF-8 names, and checking them again
//! for every event was a fifth of a replay's time in the guest; `apply`
//! matches them as bytes (`wire::decode_event`).
//! The host guarantees the layout; a batch that breaks it (a host bug) is
//! reported as an `apply-error` rather than read past its end.

/// Bytes of the fixed header in front of each event.
const HEADER_LEN: usize = 28;

/// One event of a batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchEvent<'a> {
    pub(crate) version: u64,
    pub(crate) event_type: &'a [u8],
    pub(crate) content_type: &'a [u8],
    pub(crate) data: &'a [u8],
}

/// A batch that does not have the documented layout: where it broke (the
/// byte offset) and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) offset: usize,
    pub(crate) reason: &'static str,
}

/// The events of `bytes`, in order; stops at the first malformed one.
pub(crate) fn events(bytes: &[u8]) -> Events<'_> {
    Events { bytes, offset: 0 }
}

/// Iterator over a batch's events ([`events`]).
pub(crate) struct Events<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<BatchEvent<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset == self.bytes.len() {
            return None;
        }
        let read = self.read();
        if read.is_err() {
            // Nothing after a malformed event can be trusted.
            self.offset = self.bytes.len();
        }
        Some(read)
    }
}

impl<'a> Events<'a> {
    fn read(&mut self) -> Result<BatchEvent<'a>, Malformed> {
        let start = self.offset;
        let malformed = |reason| Malformed {
            offset: start,
            reason,
        };
        let rest = &self.bytes[start..];
        let Some((header, rest)) = rest.split_first_chunk::<HEADER_LEN>() else {
            return Err(malformed("an event header is cut short"));
        };
        let u64_at = |at: usize| {
            let mut le = [0u8; 8];
            le.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(le)
        };
        let len_at = |at: usize| {
            let mut le = [0u8; 4];
            le.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(le) as usize
        };
        let version = u64_at(0);
        let (type_len, content_type_len, data_len) = (len_at(16), len_at(20), len_at(24));
        let body_len = type_len
            .checked_add(content_type_len)
            .and_then(|n| n.checked_add(data_len))
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| malformed("an event's lengths run past the end of the batch"))?;
        let (event_type, rest) = rest.split_at(type_len);
        let (content_type, data) = rest.split_at(content_type_len);
        let data = &data[..data_len];
        let event = BatchEvent {
            version,
            event_type,
            content_type,
            data,
        };
        self.offset = start + HEADER_LEN + body_len;
        Ok(event)
    }
}

/// Appends one event to `out` in the batch layout, stamped `timestamp_ms`
/// (what `execute` hands back). A field longer than 4 GiB cannot be
/// written: a bug in the aggregate's events, so it panics (the call traps).
pub(crate) fn push(out: &mut Vec<u8>, event: BatchEvent<'_>, timestamp_ms: u64) {
    let len =
        |n: usize| u32::try_from(n).unwrap_or_else(|_| panic!("an event field longer than 4 GiB"));
    out.reserve(HEADER_LEN + event.event_type.len() + event.content_type.len() + event.data.len());
    out.extend_from_slice(&event.version.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    for field in [event.event_type, event.content_type, event.data] {
        out.extend_from_slice(&len(field.len()).to_le_bytes());
    }
    out.extend_from_slice(event.event_type);
    out.extend_from_slice(event.content_type);
    out.extend_from_slice(event.data);
}

/// Writes a batch as the host does (for tests of the SDK).
#[cfg(test)]
pub(crate) fn write(events: &[BatchEvent<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        push(&mut out, *event, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [BatchEvent<'static>; 3] {
        [
            BatchEvent {
                version: 4,
                event_type: b"Deposited",
                content_type: b"application/json",
                data: br#"{"amount":70}"#,
            },
            BatchEvent {
                version: 5,
                event_type: b"Closed",
                content_type: b"application/json",
                data: b"null",
            },
            BatchEvent {
                version: 6,
                event_type: b"Noted",
                content_type: b"text/plain",
                data: b"",
            },
        ]
    }

    #[test]
    fn reads_back_what_was_written() {
        let bytes = write(&sample());
        let read: Vec<_> = events(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, sample());
        assert_eq!(events(&[]).count(), 0);
    }

    #[test]
    fn a_batch_cut_anywhere_is_malformed_never_read_past_its_end() {
        let bytes = write(&sample());
        let boundaries = [0, 28 + 9 + 16 + 13, 2 * 28 + 9 + 16 + 13 + 6 + 16 + 4];
        for cut in 0..bytes.len() {
            let read: Vec<_> = events(&bytes[..cut]).collect();
            let whole = read.iter().filter(|e| e.is_ok()).count();
            if boundaries.contains(&cut) {
                assert!(read.iter().all(Result::is_ok), "cut at {cut}");
            } else {
                let last = read.last().expect("a cut batch yields its error");
                assert!(last.is_err(), "cut at {cut}: {read:?}");
                assert_eq!(read.len(), whole + 1, "nothing after the error");
            }
        }
    }

    #[test]
    fn lengths_that_overflow_are_malformed() {
        let mut bytes = write(&sample()[..1]);
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let error = events(&bytes).next().unwrap().unwrap_err();
        assert_eq!(error.offset, 0);
        assert!(error.reason.contains("past the end"), "{error:?}");
    }
}
