//! The `event-batch` of `aether:aggregate@0.2.0` and later: the one place that
//! writes and reads its layout. Events follow one another in version
//! order, each a 28-byte little-endian header (version u64, timestamp-ms
//! u64, then the lengths of its event type, content type and data as u32)
//! followed by those three byte strings. `wit/aggregate.wit` specifies it;
//! the Rust SDK's reader is `aether_guest`'s `batch` module.
//!
//! The store writes a replay's batches with it (straight from its records,
//! see `aether_store::ReplayBatch`), and the runtime writes the events a
//! guest just decided with it; a component of the frozen 0.1.0 interface
//! gets the events read back out ([`EventBatch::events`]).
//!
//! **Invariant:** a batch always has the documented layout: it is only
//! ever written by [`EventBatch::push`], whose `str` arguments are UTF-8
//! and whose lengths must fit in a u32 (the stores cap events far below
//! 4 GiB, so a longer field is a bug and panics). The reader relies on it.

/// Bytes of the fixed header in front of each event.
pub const HEADER_LEN: usize = 28;

/// One event of a batch: what a replay hands a guest, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchEvent<'a> {
    /// Its version in its stream.
    pub version: u64,
    /// When it was stored, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Its type, as the guest named it.
    pub event_type: &'a str,
    /// The content type of `data`.
    pub content_type: &'a str,
    /// Its payload.
    pub data: &'a [u8],
}

/// A batch of events in the `event-batch` layout, with what the host needs
/// to know of it without reading it again: how many events, the first and
/// last versions and timestamps, and whether the versions are consecutive.
///
/// Reusable: [`EventBatch::clear`] keeps the buffer's capacity. Two
/// batches are equal when their bytes are (the rest follows from them).
#[derive(Clone, Debug, Default)]
pub struct EventBatch {
    bytes: Vec<u8>,
    len: usize,
    /// (version, timestamp) of the first and of the last event.
    first: (u64, u64),
    last: (u64, u64),
    /// Whether every event's version is the one before it plus one.
    consecutive: bool,
}

impl EventBatch {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Starts a new batch, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.len = 0;
    }

    /// Appends one event.
    pub fn push(&mut self, event: BatchEvent<'_>) {
        let len = |what: &str, n: usize| {
            u32::try_from(n).unwrap_or_else(|_| panic!("an event's {what} longer than 4 GiB"))
        };
        let BatchEvent {
            version,
            timestamp_ms,
            event_type,
            content_type,
            data,
        } = event;
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
        if self.len == 0 {
            self.first = (version, timestamp_ms);
            self.consecutive = true;
        } else {
            self.consecutive &= self.last.0.checked_add(1) == Some(version);
        }
        self.last = (version, timestamp_ms);
        self.len += 1;
    }

    /// The batch as the guest receives it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first event's version and timestamp; `None` if empty.
    pub fn first(&self) -> Option<(u64, u64)> {
        (self.len > 0).then_some(self.first)
    }

    /// The last event's version and timestamp; `None` if empty.
    pub fn last(&self) -> Option<(u64, u64)> {
        (self.len > 0).then_some(self.last)
    }

    /// Whether the events' versions are `after + 1`, `after + 2`, … with no
    /// gap (false for an empty batch).
    pub fn continues(&self, after: u64) -> bool {
        self.len > 0 && self.consecutive && after.checked_add(1) == Some(self.first.0)
    }

    /// Frees a buffer grown past `keep` bytes (and empties the batch), so
    /// one very large batch does not keep its high-water mark for good.
    pub fn shrink(&mut self, keep: usize) {
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
            self.len = 0;
        }
    }

    /// The events, read back out of the buffer in order.
    pub fn events(&self) -> Events<'_> {
        Events { rest: &self.bytes }
    }
}

impl PartialEq for EventBatch {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for EventBatch {}

/// Why a buffer a guest gave as its decided events is not the batch it
/// must be ([`read_decided`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("decided event {index} (at byte {offset} of {total}): {problem}")]
pub struct DecidedBatchError {
    /// Which event (0-based) breaks the layout.
    pub index: usize,
    /// Where its header starts in the buffer.
    pub offset: usize,
    /// The buffer's length.
    pub total: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads the events a guest decided for a command (`execute` of
/// `aether:aggregate@0.4.0`): bytes from the guest, so every part of the
/// layout is checked, not trusted: each header whole, each length within
/// the buffer, event and content types UTF-8, versions `first_version`,
/// `first_version + 1`, … and every timestamp `timestamp_ms` (what the host
/// will store them as), nothing after the last event. An empty buffer is
/// no events.
pub fn read_decided(
    bytes: &[u8],
    first_version: u64,
    timestamp_ms: u64,
) -> Result<Vec<BatchEvent<'_>>, DecidedBatchError> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let index = events.len();
        let fail = |problem: String| DecidedBatchError {
            index,
            offset: at,
            total: bytes.len(),
            problem,
        };
        let Some(header) = bytes.get(at..at + HEADER_LEN) else {
            return Err(fail(format!(
                "{} bytes left, less than a {HEADER_LEN}-byte header",
                bytes.len() - at
            )));
        };
        let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let len_at =
            |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes")) as usize;
        let (version, timestamp) = (u64_at(0), u64_at(8));
        let expected = first_version
            .checked_add(index as u64)
            .ok_or_else(|| fail("its version would be past u64::MAX".to_owned()))?;
        if version != expected {
            return Err(fail(format!("version {version}, expected {expected}")));
        }
        if timestamp != timestamp_ms {
            return Err(fail(format!(
                "timestamp {timestamp}, expected the command's {timestamp_ms}"
            )));
        }
        let (type_len, content_len, data_len) = (len_at(16), len_at(20), len_at(24));
        let start = at + HEADER_LEN;
        let end = start
            .checked_add(type_len)
            .and_then(|n| n.checked_add(content_len))
            .and_then(|n| n.checked_add(data_len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                fail(format!(
                    "lengths {type_len} + {content_len} + {data_len} run past the buffer's end"
                ))
            })?;
        let field = |from: usize, len: usize, what: &str| {
            std::str::from_utf8(&bytes[from..from + len])
                .map_err(|_| fail(format!("its {what} is not UTF-8")))
        };
        let event_type = field(start, type_len, "event type")?;
        let content_type = field(start + type_len, content_len, "content type")?;
        events.push(BatchEvent {
            version,
            timestamp_ms,
            event_type,
            content_type,
            data: &bytes[start + type_len + content_len..end],
        });
        at = end;
    }
    Ok(events)
}

/// The events of an [`EventBatch`], in order ([`EventBatch::events`]).
pub struct Events<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Events<'a> {
    type Item = BatchEvent<'a>;

    fn next(&mut self) -> Option<BatchEvent<'a>> {
        // The layout is this module's own (see the invariant): a batch
        // that does not parse is a bug, not bad input.
        const BROKEN: &str = "an event batch not written by EventBatch::push";
        if self.rest.is_empty() {
            return None;
        }
        let (header, rest) = self.rest.split_at(HEADER_LEN);
        let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect(BROKEN));
        let len_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect(BROKEN)) as usize;
        let (event_type, rest) = rest.split_at(len_at(16));
        let (content_type, rest) = rest.split_at(len_at(20));
        let (data, rest) = rest.split_at(len_at(24));
        self.rest = rest;
        Some(BatchEvent {
            version: u64_at(0),
            timestamp_ms: u64_at(8),
            event_type: std::str::from_utf8(event_type).expect(BROKEN),
            content_type: std::str::from_utf8(content_type).expect(BROKEN),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(version: u64, event_type: &'a str, data: &'a [u8]) -> BatchEvent<'a> {
        BatchEvent {
            version,
            timestamp_ms: 1_700 + version,
            event_type,
            content_type: "application/json",
            data,
        }
    }

    #[test]
    fn events_are_laid_out_as_the_wit_says() {
        let mut batch = EventBatch::default();
        batch.push(event(7, "Deposited", br#"{"amount":5}"#));
        batch.push(BatchEvent {
            content_type: "text/plain",
            ..event(8, "Closed", b"")
        });
        let b = batch.as_bytes();
        assert_eq!(&b[0..8], &7u64.to_le_bytes());
        assert_eq!(&b[8..16], &1_707u64.to_le_bytes());
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
        assert_eq!(
            (batch.len(), batch.first(), batch.last()),
            (2, Some((7, 1_707)), Some((8, 1_708)))
        );
        batch.clear();
        assert!(batch.as_bytes().is_empty() && batch.is_empty());
        assert_eq!((batch.first(), batch.last()), (None, None));
    }

    #[test]
    fn the_events_read_back_are_the_events_written() {
        let written = [
            event(3, "Opened", br#"{"owner":"Ada"}"#),
            event(4, "Deposited", b""),
            event(5, "Dépôt", &[0, 255, 7]),
        ];
        let mut batch = EventBatch::with_capacity(16);
        for e in written {
            batch.push(e);
        }
        assert_eq!(batch.events().collect::<Vec<_>>(), written);
        assert_eq!(EventBatch::default().events().count(), 0);
    }

    #[test]
    fn a_batch_continues_a_version_only_without_gaps() {
        let mut batch = EventBatch::default();
        assert!(!batch.continues(0), "empty");
        for version in [5, 6, 7] {
            batch.push(event(version, "Deposited", b""));
        }
        assert!(batch.continues(4));
        assert!(!batch.continues(3) && !batch.continues(5));
        batch.push(event(9, "Deposited", b""));
        assert!(!batch.continues(4), "a gap after 7");
        batch.clear();
        batch.push(event(5, "Deposited", b""));
        batch.push(event(5, "Deposited", b""));
        assert!(!batch.continues(4), "a repeated version");
        batch.clear();
        batch.push(event(1, "Deposited", b""));
        assert!(batch.continues(0), "cleared: starts afresh");
    }

    fn decided(events: &[BatchEvent<'_>]) -> Vec<u8> {
        let mut batch = EventBatch::default();
        for event in events {
            batch.push(*event);
        }
        batch.as_bytes().to_vec()
    }

    #[test]
    fn decided_events_read_back_as_written() {
        let written = [
            BatchEvent {
                timestamp_ms: 9,
                ..event(4, "Opened", br#"{"owner":"Ada"}"#)
            },
            BatchEvent {
                timestamp_ms: 9,
                ..event(5, "Deposited", b"")
            },
        ];
        assert_eq!(read_decided(&decided(&written), 4, 9).unwrap(), written);
        assert_eq!(read_decided(&[], 4, 9).unwrap(), []);
    }

    #[test]
    fn decided_events_that_break_the_layout_are_refused_with_where() {
        let written = [
            BatchEvent {
                timestamp_ms: 9,
                ..event(4, "Opened", b"{}")
            },
            BatchEvent {
                timestamp_ms: 9,
                ..event(5, "Deposited", b"{}")
            },
        ];
        let good = decided(&written);
        let second = HEADER_LEN + "Opened".len() + "application/json".len() + 2;
        let problem = |bytes: &[u8], first: u64, ts: u64| {
            let error = read_decided(bytes, first, ts).unwrap_err();
            (error.index, error.offset, error.problem)
        };
        // Versions and timestamps are the host's to give.
        assert_eq!(
            problem(&good, 3, 9),
            (0, 0, "version 4, expected 3".to_owned())
        );
        assert_eq!(
            problem(&good, 4, 8).2,
            "timestamp 9, expected the command's 8"
        );
        let mut gap = good.clone();
        gap[second] = 6;
        assert_eq!(
            problem(&gap, 4, 9),
            (1, second, "version 6, expected 5".to_owned())
        );
        assert!(problem(&good, u64::MAX, 9).2.contains("version"));
        // Truncated anywhere: a header cut short, or data past the end.
        for cut in [1, 5, HEADER_LEN + 1] {
            let short = &good[..good.len() - cut];
            assert_eq!(problem(short, 4, 9).0, 1, "cut {cut}");
        }
        assert!(
            problem(&good[..second + 3], 4, 9)
                .2
                .contains("less than a 28-byte header")
        );
        // Trailing bytes are a third event that does not parse.
        let mut long = good.clone();
        long.push(0);
        assert_eq!(problem(&long, 4, 9).0, 2);
        // A length that would overflow, and names that are not UTF-8.
        let mut huge = good.clone();
        huge[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(problem(&huge, 4, 9).2.contains("run past the buffer's end"));
        let mut latin = good.clone();
        latin[HEADER_LEN] = 0xff;
        assert_eq!(problem(&latin, 4, 9).2, "its event type is not UTF-8");
        let mut content = good.clone();
        content[HEADER_LEN + "Opened".len()] = 0xc3;
        assert_eq!(problem(&content, 4, 9).2, "its content type is not UTF-8");
    }
}
