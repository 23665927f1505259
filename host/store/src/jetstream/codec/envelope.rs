//! An event's envelope (everything of it but its data) in its message's
//! headers, in either of the two layouts a stream may hold.
//!
//! **Layout 2** (written by this version): one header, `Aether-Event`:
//!
//! ```text
//! Aether-Event: <version> <event id> <timestamp ms> t=<type> m=<content type>[ c=<command id>][ r=<correlation id>][ a=<causation id>][ d=<component digest>]
//! ```
//!
//! The named fields after the first three are there when the event has
//! them, in any order, each at most once. In their values `%`, whitespace
//! and control characters are written `%XX` (each byte of the character's
//! UTF-8 in upper-case hex), so a value never holds the separator, never
//! ends a header line and is never trimmed; any other character is
//! written as it is. Anything else (a missing or
//! repeated field, an unknown name, a bad escape, a number that is not
//! one) is a damaged message.
//!
//! **Layout 1** (written before): one header per field, the values as
//! they are: `Aether-Version`, `Aether-Event-Id`, `Aether-Event-Type`,
//! `Aether-Content-Type` (absent: JSON), `Aether-Timestamp-Ms` (absent:
//! 0), and `Aether-Command-Id`, `Aether-Correlation-Id`,
//! `Aether-Causation-Id`, `Aether-Component-Digest` when set. Still read,
//! so a stream written by both versions reads whole: a message with an
//! `Aether-Event` header is layout 2, any other layout 1.
//!
//! Why one header: every header of every message read costs the server
//! (a direct get re-encodes them) and the client (async-nats parses each
//! into its header map, with allocations); with one instead of five to
//! nine, an activation of 10 000 events reads about a third faster
//! (BENCHMARKS.md, "JetStream activation: one read ahead, one header per
//! event"). The atomic batch's own `Nats-Batch-*` headers stay on each
//! stored message.
//!
//! A node of an earlier version cannot read layout 2: it answers such
//! events as damaged (`Corrupt`; nothing is lost or changed). Upgrade every
//! node of a cluster sharing a JetStream store before the new ones write.

use std::borrow::Cow;
use std::fmt::Write as _;

use async_nats::HeaderMap;

use crate::RecordedEvent;

/// The layout-2 header.
pub(super) const EVENT: &str = "Aether-Event";

const VERSION: &str = "Aether-Version";
const EVENT_ID: &str = "Aether-Event-Id";
const EVENT_TYPE: &str = "Aether-Event-Type";
const CONTENT_TYPE: &str = "Aether-Content-Type";
const TIMESTAMP: &str = "Aether-Timestamp-Ms";
const COMMAND: &str = "Aether-Command-Id";
const CORRELATION: &str = "Aether-Correlation-Id";
const CAUSATION: &str = "Aether-Causation-Id";
const DIGEST: &str = "Aether-Component-Digest";

/// The headers that carry everything of `event` but its data (layout 2).
pub(in crate::jetstream) fn headers(event: &RecordedEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(EVENT, encode(event).as_str());
    headers
}

/// The value of `event`'s `Aether-Event` header.
fn encode(event: &RecordedEvent) -> String {
    let metadata = &event.metadata;
    let mut value = String::with_capacity(96 + event.event_type.len());
    // Writing to a String cannot fail.
    let _ = write!(
        value,
        "{} {} {}",
        event.version, event.id, event.timestamp_ms
    );
    for (name, field) in [
        ('t', Some(&event.event_type)),
        ('m', Some(&event.content_type)),
        ('c', metadata.command_id.as_ref()),
        ('r', metadata.correlation_id.as_ref()),
        ('a', metadata.causation_id.as_ref()),
        ('d', metadata.component_digest.as_ref()),
    ] {
        if let Some(field) = field {
            value.push(' ');
            value.push(name);
            value.push('=');
            escape(field, &mut value);
        }
    }
    value
}

/// Whether `c` is written `%XX` (each byte of it) in a named field: the
/// escape itself, the separator, and what could end a header line or be
/// trimmed from its ends.
fn escaped(c: char) -> bool {
    c == '%' || c.is_whitespace() || c.is_control()
}

fn escape(text: &str, out: &mut String) {
    if !text.chars().any(escaped) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if escaped(c) {
            for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

fn unescape(text: &str) -> Result<Cow<'_, str>, String> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    let bad = || format!("a bad escape in {text:?}");
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte != b'%' {
            bytes.push(byte);
            rest = after;
            continue;
        }
        let hex = after.get(..2).ok_or_else(bad)?;
        let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
        bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
        rest = &after[2..];
    }
    String::from_utf8(bytes).map(Cow::Owned).map_err(|_| bad())
}

/// The envelope of a message, its numbers still as text (borrowed from
/// the headers unless a value had to be unescaped).
#[derive(Default)]
pub(super) struct Envelope<'a> {
    pub(super) version: Option<Cow<'a, str>>,
    pub(super) id: Option<Cow<'a, str>>,
    pub(super) timestamp: Option<Cow<'a, str>>,
    pub(super) event_type: Option<Cow<'a, str>>,
    pub(super) content_type: Option<Cow<'a, str>>,
    pub(super) command: Option<Cow<'a, str>>,
    pub(super) correlation: Option<Cow<'a, str>>,
    pub(super) causation: Option<Cow<'a, str>>,
    pub(super) digest: Option<Cow<'a, str>>,
    /// Which layout it was read from.
    pub(super) layout: u8,
}

impl<'a> Envelope<'a> {
    /// The envelope in a message's headers (the first value of each),
    /// found in one pass over them: looking each up by name would build
    /// (and allocate) a header name and hash it, once per field per event.
    /// An error says what is wrong with a layout-2 header.
    pub(super) fn of(headers: &'a HeaderMap) -> Result<Self, String> {
        let mut envelope = Envelope::default();
        for (name, values) in headers.iter() {
            let field = match AsRef::<str>::as_ref(name) {
                EVENT => return Self::parse(values.first().map_or("", |v| v.as_str())),
                VERSION => &mut envelope.version,
                EVENT_ID => &mut envelope.id,
                TIMESTAMP => &mut envelope.timestamp,
                EVENT_TYPE => &mut envelope.event_type,
                CONTENT_TYPE => &mut envelope.content_type,
                COMMAND => &mut envelope.command,
                CORRELATION => &mut envelope.correlation,
                CAUSATION => &mut envelope.causation,
                DIGEST => &mut envelope.digest,
                _ => continue,
            };
            *field = values.first().map(|v| Cow::Borrowed(v.as_str()));
        }
        envelope.layout = 1;
        Ok(envelope)
    }

    /// A layout-2 header's value.
    fn parse(value: &'a str) -> Result<Self, String> {
        let mut tokens = value.split(' ');
        let mut number = || tokens.next().map(Cow::Borrowed);
        let mut envelope = Envelope {
            version: number(),
            id: number(),
            timestamp: number(),
            layout: 2,
            ..Envelope::default()
        };
        if envelope.timestamp.is_none() {
            return Err(format!("{EVENT} {value:?} has fewer than three fields"));
        }
        for token in tokens {
            let (name, field) = token
                .split_once('=')
                .ok_or_else(|| format!("{EVENT} has a field without a name: {token:?}"))?;
            let slot = match name {
                "t" => &mut envelope.event_type,
                "m" => &mut envelope.content_type,
                "c" => &mut envelope.command,
                "r" => &mut envelope.correlation,
                "a" => &mut envelope.causation,
                "d" => &mut envelope.digest,
                _ => return Err(format!("{EVENT} has an unknown field {name:?}")),
            };
            if slot.is_some() {
                return Err(format!("{EVENT} has field {name:?} twice"));
            }
            *slot = Some(unescape(field)?);
        }
        if envelope.content_type.is_none() {
            return Err(format!("{EVENT} has no content type (m=)"));
        }
        Ok(envelope)
    }

    /// What is wrong when `field` is missing or unreadable, in the
    /// message's layout.
    pub(super) fn missing(&self, field: Required) -> String {
        let (layout_1, layout_2) = match field {
            Required::Version => (VERSION, "version"),
            Required::Id => (EVENT_ID, "event id"),
            Required::Type => (EVENT_TYPE, "type (t=)"),
        };
        if self.layout == 2 {
            format!("no valid {layout_2} in the {EVENT} header")
        } else {
            format!("no valid {layout_1} header")
        }
    }
}

/// The fields every event has.
#[derive(Clone, Copy)]
pub(super) enum Required {
    Version,
    Id,
    Type,
}

#[cfg(test)]
mod tests;
