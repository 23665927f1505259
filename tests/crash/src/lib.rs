//! What the crash writer and the crash test share: the streams written, the
//! ack log's line format and the payload digest.
//!
//! The writer (`crash-writer <data-dir> <ack-log>`) appends to [`STREAMS`]
//! streams from several tasks and, after each acknowledged append, writes one
//! [`Ack`] line to the ack log with a single `write(2)`. A `SIGKILL` loses no
//! completed `write(2)` (the data is in the page cache), so every line in the
//! log is an append the store promised to keep. The test kills the writer at
//! random moments and checks the store against the log.
//!
//! A `write(2)` is not atomic against `SIGKILL`: the kernel copies it into
//! the page cache a page at a time and stops between pages once a fatal
//! signal is pending, so a line that straddles a page boundary can be cut
//! short. The test therefore cuts such a torn last line off the log
//! ([`cut_torn_ack`]) before it starts the next writer, whose lines would
//! otherwise continue it.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::str::FromStr;

use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::store::StreamId;
use anyhow::{Context, bail};

/// How many streams the writer spreads its appends over.
pub const STREAMS: usize = 64;

/// The `index`-th stream the writer appends to.
pub fn stream(index: usize) -> anyhow::Result<StreamId> {
    Ok(StreamId::new(
        Namespace::new("crash")?,
        AggregateType::new("counter")?,
        AggregateId::new(format!("s-{index:02}"))?,
    ))
}

/// The digest the ack log records for the payloads of one append: blake3
/// over each payload's length (u64 LE) and bytes, first 16 bytes in hex.
pub fn digest<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = blake3::Hasher::new();
    for payload in payloads {
        hasher.update(&(payload.len() as u64).to_le_bytes());
        hasher.update(payload);
    }
    hasher.finalize().as_bytes()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One acknowledged append: `ack <stream> <first version> <last version> <digest>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The stream's display form (`crash/counter/s-07`).
    pub stream: String,
    /// Version of the append's first event.
    pub first: u64,
    /// Version of the append's last event.
    pub last: u64,
    /// [`digest`] of the append's payloads.
    pub digest: String,
}

impl fmt::Display for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ack {
            stream,
            first,
            last,
            digest,
        } = self;
        write!(f, "ack {stream} {first} {last} {digest}")
    }
}

impl FromStr for Ack {
    type Err = anyhow::Error;

    fn from_str(line: &str) -> anyhow::Result<Ack> {
        let fields: Vec<&str> = line.split(' ').collect();
        let ["ack", stream, first, last, digest] = fields[..] else {
            bail!("expected `ack <stream> <first> <last> <digest>`, found {line:?}");
        };
        let ack = Ack {
            stream: stream.to_owned(),
            first: first
                .parse()
                .with_context(|| format!("first version in {line:?}"))?,
            last: last
                .parse()
                .with_context(|| format!("last version in {line:?}"))?,
            digest: digest.to_owned(),
        };
        if ack.first == 0 || ack.last < ack.first {
            bail!(
                "versions {}..={} in {line:?} are not a valid range",
                ack.first,
                ack.last
            );
        }
        Ok(ack)
    }
}

/// Parses an ack log. A last line without its newline (the writer was killed
/// in the middle of writing it) is ignored: it was acknowledged, but the log
/// cannot say what.
pub fn parse_acks(log: &str) -> anyhow::Result<Vec<Ack>> {
    let complete = match log.rfind('\n') {
        Some(end) => &log[..end],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .map(|(n, line)| {
            line.parse()
                .with_context(|| format!("ack log line {}", n + 1))
        })
        .collect()
}

/// Cuts a torn last line (one without its newline: the writer was killed
/// while writing it) off the ack log at `path`, so that the next writer's
/// lines start on a line of their own. Returns the bytes cut (0 when the log
/// ends with a whole line, is empty or does not exist yet).
pub fn cut_torn_ack(path: &Path) -> anyhow::Result<u64> {
    let mut log = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(log) => log,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error).with_context(|| format!("open {}", path.display())),
    };
    let len = log.metadata()?.len();
    // An ack line is far shorter than this, so the last newline is in it.
    let tail = len.min(4096);
    log.seek(SeekFrom::Start(len - tail))?;
    let mut end = Vec::new();
    log.read_to_end(&mut end)?;
    let whole = match end.iter().rposition(|&byte| byte == b'\n') {
        Some(newline) => len - tail + newline as u64 + 1,
        None if tail == len => 0,
        None => bail!(
            "{} ends with {tail} bytes without a newline",
            path.display()
        ),
    };
    if whole < len {
        log.set_len(whole)
            .with_context(|| format!("cut the torn line off {}", path.display()))?;
    }
    Ok(len - whole)
}

/// A small, seedable random number generator (xorshift64*), so that a failing
/// run can be repeated from its printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, 0 included), scrambled by one
    /// splitmix64 step so that nearby seeds give unrelated sequences.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `range` (inclusive).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_round_trip() {
        let ack = Ack {
            stream: stream(7).unwrap().to_string(),
            first: 3,
            last: 5,
            digest: digest([&b"a"[..], b"bc"]),
        };
        let line = ack.to_string();
        assert_eq!(line.split(' ').nth(1), Some("crash/counter/s-07"));
        assert_eq!(
            parse_acks(&format!("{line}\n{line}\nack partial")).unwrap(),
            [ack.clone(), ack]
        );
        assert!(
            parse_acks("ack s 0 1 d\n").is_err(),
            "version 0 is not valid"
        );
        assert!(
            parse_acks("ack s 2 1 d\n").is_err(),
            "an empty range is not valid"
        );
        assert_ne!(digest([&b"ab"[..], b"c"]), digest([&b"a"[..], b"bc"]));
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_whole_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks.log");
        assert_eq!(cut_torn_ack(&path).unwrap(), 0, "no log yet");
        let whole = "ack crash/counter/s-22 242 242 2732086f5a6b\n".repeat(200);
        let torn = "ack crash/counter/s-47 262 2";
        for (log, cut) in [
            (format!("{whole}{torn}"), torn.len()),
            (whole.clone(), 0),
            (torn.to_owned(), torn.len()),
            (String::new(), 0),
        ] {
            std::fs::write(&path, &log).unwrap();
            assert_eq!(cut_torn_ack(&path).unwrap(), cut as u64, "{log:?}");
            let kept = std::fs::read_to_string(&path).unwrap();
            assert_eq!(kept, log[..log.len() - cut]);
            assert!(kept.is_empty() || kept.ends_with('\n'));
        }
    }

    #[test]
    fn rng_is_repeatable_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..1000 {
            let n = a.between(20, 400);
            assert_eq!(n, b.between(20, 400));
            assert!((20..=400).contains(&n));
        }
        assert_ne!(Rng::new(0).next_u64(), Rng::new(1).next_u64());
    }
}
