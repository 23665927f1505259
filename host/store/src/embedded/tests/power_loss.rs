//! A simulated power loss: what the disk holds is what was synced, plus any
//! part of what was written after the last sync. The store runs on
//! [`FaultyFile`](crate::embedded::faults::FaultyFile) with a journal of
//! every write, resize and sync of its data file; each sync is a moment the
//! power may fail. For each such moment the test builds disk images (the
//! synced state, plus none, all, prefixes and random subsets of the writes
//! since, and writes torn at 512-byte sectors), puts the watermark written
//! by then next to each, opens it as a store and checks:
//!
//! - the store opens (a torn commit is rolled back or refused by redb's
//!   checksums, never an error that keeps the store closed);
//! - every append acknowledged before that moment is there with its exact
//!   events; the one append in flight is there entirely or not at all;
//!   nothing else is;
//! - the watermark never claims more than the synced state holds (it is
//!   written after the commit's sync returned), so it never refuses a file
//!   that lost only unacknowledged writes.

use super::*;
use crate::embedded::faults::{JournalOp, WriteFaults};

/// Appends made (one at a time, each awaited): each is one commit.
const APPENDS: usize = 40;
/// Random subsets and torn variants per power-loss moment.
const RANDOM_VARIANTS: usize = 5;
/// The sector size a torn write is torn at.
const SECTOR: usize = 512;

/// One append of the run and where the journal was when it was sent and
/// when it was acknowledged.
struct Sent {
    payloads: Vec<String>,
    /// Journal length when the append was sent.
    sent_at: usize,
    /// Journal length when its future resolved `Ok`.
    acked_at: usize,
}

/// A tiny deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn apply(image: &mut Vec<u8>, op: &JournalOp) {
    match op {
        JournalOp::Write { offset, data } => {
            let (start, end) = (*offset as usize, *offset as usize + data.len());
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        JournalOp::SetLen(len) => image.resize(*len as usize, 0),
        JournalOp::Sync { .. } => {}
    }
}

/// Applies only the 512-byte sectors of `op` (a write) that `keep` picks.
fn apply_torn(image: &mut Vec<u8>, op: &JournalOp, keep: &mut impl FnMut() -> bool) -> bool {
    let JournalOp::Write { offset, data } = op else {
        apply(image, op);
        return false;
    };
    let mut torn = false;
    for (index, chunk) in data.chunks(SECTOR).enumerate() {
        if keep() {
            let at = JournalOp::Write {
                offset: offset + (index * SECTOR) as u64,
                data: chunk.to_vec(),
            };
            apply(image, &at);
        } else {
            torn = true;
        }
    }
    torn
}

/// The disk images a power loss at this moment can leave: `synced` plus
/// parts of `pending` (the operations since the last sync, in order).
fn images(synced: &[u8], pending: &[&JournalOp], rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let with = |ops: &mut dyn Iterator<Item = &&JournalOp>| {
        let mut image = synced.to_vec();
        ops.for_each(|op| apply(&mut image, op));
        image
    };
    let mut out = vec![
        ("nothing since the sync".to_owned(), synced.to_vec()),
        (
            "everything since the sync".to_owned(),
            with(&mut pending.iter()),
        ),
    ];
    let n = pending.len();
    for k in (1..n).step_by((n / 6).max(1)) {
        out.push((
            format!("the first {k} of {n} writes"),
            with(&mut pending.iter().take(k)),
        ));
    }
    for _ in 0..RANDOM_VARIANTS {
        let mask: Vec<bool> = (0..n).map(|_| rng.next() & 1 == 1).collect();
        let picked = pending
            .iter()
            .zip(&mask)
            .filter(|(_, m)| **m)
            .map(|(op, _)| op);
        out.push((
            format!("writes {mask:?} of {n}"),
            with(&mut picked.copied().collect::<Vec<_>>().iter()),
        ));
    }
    let big: Vec<usize> = (0..n)
        .filter(|&i| matches!(pending[i], JournalOp::Write { data, .. } if data.len() > SECTOR))
        .collect();
    for _ in 0..RANDOM_VARIANTS {
        if big.is_empty() {
            break;
        }
        let victim = big[rng.below(big.len())];
        let mut image = synced.to_vec();
        let mut torn = false;
        for (i, op) in pending.iter().enumerate() {
            if i == victim {
                torn |= apply_torn(&mut image, op, &mut || rng.next() & 1 == 1);
            } else if !rng.next().is_multiple_of(4) {
                apply(&mut image, op);
            }
        }
        if torn {
            out.push((
                format!("write {victim} of {n} torn, 3/4 of the others"),
                image,
            ));
        }
    }
    out
}

/// What opening one image showed about the append in flight.
#[derive(Debug, Default)]
struct Outcomes {
    images: usize,
    in_flight_kept: usize,
    in_flight_absent: usize,
}

/// Opens `image` (with `watermark`, if one was written) as a store and
/// checks it holds exactly the acknowledged appends, plus possibly the whole
/// append in flight.
async fn check_image(
    image: &[u8],
    watermark: Option<&[u8]>,
    acked: &[&Sent],
    in_flight: Option<&Sent>,
    what: &str,
    outcomes: &mut Outcomes,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.redb"), image).unwrap();
    if let Some(watermark) = watermark {
        std::fs::write(dir.path().join("events.head"), watermark).unwrap();
    }
    let store = match EmbeddedStore::open(dir.path()) {
        Ok(store) => store,
        Err(error) => panic!("{what}: the store must open after a power loss: {error}"),
    };
    let stored: Vec<Vec<u8>> = store
        .read_stream(&stream("acc-1"), 1, usize::MAX)
        .await
        .unwrap_or_else(|error| panic!("{what}: read: {error}"))
        .into_iter()
        .map(|event| event.data)
        .collect();
    let acked: Vec<Vec<u8>> = acked
        .iter()
        .flat_map(|sent| sent.payloads.iter().map(|p| p.as_bytes().to_vec()))
        .collect();
    outcomes.images += 1;
    if stored == acked {
        outcomes.in_flight_absent += 1;
    } else {
        let Some(in_flight) = in_flight else {
            panic!(
                "{what}: {} events stored, {} acknowledged and none in flight",
                stored.len(),
                acked.len()
            );
        };
        let mut with_in_flight = acked;
        with_in_flight.extend(in_flight.payloads.iter().map(|p| p.as_bytes().to_vec()));
        assert!(
            stored == with_in_flight,
            "{what}: {} events stored; expected exactly the {} acknowledged ones, or those and \
             the {} of the append in flight",
            stored.len(),
            with_in_flight.len() - in_flight.payloads.len(),
            in_flight.payloads.len()
        );
        outcomes.in_flight_kept += 1;
    }
    // The store continues after what survived.
    let next = request(
        &stream("acc-1"),
        ExpectedVersion::Exact(stored.len() as u64),
        &["{\"after\":\"power loss\"}".to_owned()],
    );
    store
        .append(next)
        .await
        .unwrap_or_else(|error| panic!("{what}: append after reopening: {error}"));
}

/// The head recorded in a watermark file's bytes (see `watermark.rs`).
fn watermark_head(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_keeps_every_acknowledged_append_and_no_part_of_another() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let faults = WriteFaults::new();
    faults.start_journal(dir.path().join("events.head"));
    let store = EmbeddedStore::open_with(dir.path(), Some(Arc::clone(&faults))).unwrap();
    // A store created through the journaled backend is not created
    // atomically (`open::create_new`); power losses start once it is open.
    let opened_at = faults.journal_len();
    let id = stream("acc-1");
    let mut sent = Vec::new();
    let mut version = 0;
    for i in 0..APPENDS {
        let payloads: Vec<String> = (0..1 + i % 3)
            .map(|k| {
                format!(
                    r#"{{"append":{i},"event":{k},"pad":"{}"}}"#,
                    "p".repeat(i * 40)
                )
            })
            .collect();
        let sent_at = faults.journal_len();
        let outcome = store
            .append(request(&id, ExpectedVersion::Exact(version), &payloads))
            .await
            .unwrap();
        version = outcome.last_version();
        let acked_at = faults.journal_len();
        sent.push(Sent {
            payloads,
            sent_at,
            acked_at,
        });
    }
    let journal = faults.journal_ops();
    let last_watermark = std::fs::read(dir.path().join("events.head")).unwrap();
    drop(store);

    // Every sync is a moment the power may fail just before it returns; so
    // is the end of the run (with nothing pending).
    let mut moments: Vec<(usize, Option<Vec<u8>>)> = journal
        .iter()
        .enumerate()
        .filter_map(|(at, op)| match op {
            JournalOp::Sync { watermark } if at >= opened_at => Some((at, watermark.clone())),
            _ => None,
        })
        .collect();
    moments.push((journal.len(), Some(last_watermark)));
    let syncs = moments.len() - 1;
    // One fsync per commit (redb's 1-phase commit; 2-phase made two), and
    // one more when the commit grew the file (redb syncs the new length
    // before it writes into it).
    for (i, append) in sent.iter().enumerate() {
        let ops = &journal[append.sent_at..append.acked_at];
        let count = |what: fn(&JournalOp) -> bool| ops.iter().filter(|op| what(op)).count();
        let syncs = count(|op| matches!(op, JournalOp::Sync { .. }));
        let resizes = count(|op| matches!(op, JournalOp::SetLen(_)));
        assert_eq!(
            syncs,
            1 + resizes,
            "append {i} made {syncs} syncs of the data file and {resizes} resizes"
        );
    }

    let mut rng = Rng(0x5eed_0fc0_ffee);
    let mut outcomes = Outcomes::default();
    // What the last sync of the open made durable; what the open wrote
    // after it is pending at the first moment.
    let mut synced_upto = journal[..opened_at]
        .iter()
        .rposition(|op| matches!(op, JournalOp::Sync { .. }))
        .expect("the open syncs");
    let mut synced = Vec::new();
    for op in &journal[..synced_upto] {
        apply(&mut synced, op);
    }
    let mut strongest_watermark = 0;
    for (moment, (at, watermark)) in moments.iter().enumerate() {
        let acked: Vec<&Sent> = sent.iter().filter(|s| s.acked_at <= *at).collect();
        let acked_count = acked.len();
        let in_flight = sent.get(acked_count).filter(|s| s.sent_at <= *at);
        let pending: Vec<&JournalOp> = journal[synced_upto..*at]
            .iter()
            .filter(|op| !matches!(op, JournalOp::Sync { .. }))
            .collect();
        if let Some(bytes) = watermark.as_deref().filter(|b| b.len() == 16) {
            // Never ahead of what is synced: the acknowledged appends are
            // exactly the events the synced state must hold.
            let head = watermark_head(bytes);
            let synced_events: u64 = acked.iter().map(|s| s.payloads.len() as u64).sum();
            assert!(
                head <= synced_events,
                "moment {moment}: the watermark says {head} events, only {synced_events} are \
                 acknowledged (synced)"
            );
            strongest_watermark = strongest_watermark.max(head);
        }
        for (variant, image) in images(&synced, &pending, &mut rng) {
            let what = format!(
                "power loss at sync {moment} of {syncs} ({acked_count} appends acknowledged, \
                 {} in flight), {variant}",
                usize::from(in_flight.is_some())
            );
            check_image(
                &image,
                watermark.as_deref(),
                &acked,
                in_flight,
                &what,
                &mut outcomes,
            )
            .await;
        }
        // Past this sync, everything before it is on disk.
        for op in &journal[synced_upto..*at] {
            apply(&mut synced, op);
        }
        synced_upto = *at;
    }
    println!(
        "{syncs} syncs for {APPENDS} appends, {outcomes:?}, in {:?}",
        started.elapsed()
    );
    let total: usize = sent.iter().map(|s| s.payloads.len()).sum();
    assert_eq!(
        strongest_watermark, total as u64,
        "the watermark reached the last head"
    );
    assert!(
        outcomes.in_flight_kept >= APPENDS / 2 && outcomes.in_flight_absent >= APPENDS,
        "both outcomes of a commit cut by a power loss must occur: {outcomes:?}"
    );
}
