//! A simulated power loss: what the disk holds is what was synced, plus any
//! part of what was written after the last sync. The store runs on
//! [`FaultyFile`](crate::embedded::faults::FaultyFile) with a record of
//! every write, resize and sync of its data file and its commit journal;
//! each sync is a moment the power may fail. For each such moment the test
//! builds disk images of both files (each file's synced state, plus none,
//! all, prefixes and random subsets of the writes since, and writes torn at
//! 512-byte sectors), puts the watermark written by then next to each, opens
//! it as a store and checks:
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
use crate::embedded::faults::{Commits, FileKind, FileOp, WriteFaults};

/// Appends made (one at a time, each awaited): each is one commit.
const APPENDS: usize = 40;
/// Random subsets and torn variants per power-loss moment.
const RANDOM_VARIANTS: usize = 5;
/// The sector size a torn write is torn at.
const SECTOR: usize = 512;

/// One append of the run and where the recording was when it was sent and
/// when it was acknowledged.
struct Sent {
    payloads: Vec<String>,
    /// Recording length when the append was sent.
    sent_at: usize,
    /// Recording length when its future resolved `Ok`.
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

/// The two files' bytes: the data file and the journal.
#[derive(Clone, Default)]
struct Disk {
    data: Vec<u8>,
    journal: Vec<u8>,
}

impl Disk {
    fn file(&mut self, file: FileKind) -> &mut Vec<u8> {
        match file {
            FileKind::Data => &mut self.data,
            FileKind::Journal => &mut self.journal,
        }
    }
}

fn apply(disk: &mut Disk, op: &FileOp) {
    match op {
        FileOp::Write { file, offset, data } => {
            let image = disk.file(*file);
            let (start, end) = (*offset as usize, *offset as usize + data.len());
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        FileOp::SetLen(len) => disk.data.resize(*len as usize, 0),
        FileOp::Sync { .. } => {}
    }
}

/// The file an operation is on (a resize is of the data file).
fn file_of(op: &FileOp) -> FileKind {
    match op {
        FileOp::Write { file, .. } | FileOp::Sync { file, .. } => *file,
        FileOp::SetLen(_) => FileKind::Data,
    }
}

/// Applies only the 512-byte sectors of `op` (a write) that `keep` picks.
fn apply_torn(disk: &mut Disk, op: &FileOp, keep: &mut impl FnMut() -> bool) -> bool {
    let FileOp::Write { file, offset, data } = op else {
        apply(disk, op);
        return false;
    };
    let mut torn = false;
    for (index, chunk) in data.chunks(SECTOR).enumerate() {
        if keep() {
            let at = FileOp::Write {
                file: *file,
                offset: offset + (index * SECTOR) as u64,
                data: chunk.to_vec(),
            };
            apply(disk, &at);
        } else {
            torn = true;
        }
    }
    torn
}

/// The disk images a power loss at this moment can leave: `synced` plus
/// parts of `pending` (the operations on each file since its last sync, in
/// order).
fn images(synced: &Disk, pending: &[&FileOp], rng: &mut Rng) -> Vec<(String, Disk)> {
    let with = |ops: &mut dyn Iterator<Item = &&FileOp>| {
        let mut image = synced.clone();
        ops.for_each(|op| apply(&mut image, op));
        image
    };
    let mut out = vec![
        ("nothing since the sync".to_owned(), synced.clone()),
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
        .filter(|&i| matches!(pending[i], FileOp::Write { data, .. } if data.len() > SECTOR))
        .collect();
    for _ in 0..RANDOM_VARIANTS {
        if big.is_empty() {
            break;
        }
        let victim = big[rng.below(big.len())];
        let mut image = synced.clone();
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
    image: &Disk,
    watermark: Option<&[u8]>,
    acked: &[&Sent],
    in_flight: Option<&Sent>,
    what: &str,
    outcomes: &mut Outcomes,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.redb"), &image.data).unwrap();
    std::fs::write(dir.path().join("events.journal"), &image.journal).unwrap();
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

/// Through the journal, as in production (a checkpoint now and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_keeps_every_acknowledged_append_and_no_part_of_another() {
    power_loss(Commits::Journaled).await;
}

/// Through the journal with a checkpoint after every batch: power losses
/// while the data file takes the journaled batches and the journal starts
/// over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_during_checkpoints_keeps_every_acknowledged_append() {
    power_loss(Commits::CheckpointEachBatch).await;
}

/// Without the journal (a store whose journal could not be created, or a
/// batch too big for it): every batch a durable redb commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_without_the_journal_keeps_every_acknowledged_append() {
    power_loss(Commits::Direct).await;
}

async fn power_loss(commits: Commits) {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let faults = WriteFaults::new();
    faults.set_commits(commits);
    faults.start_recording(dir.path().join("events.head"));
    let store = EmbeddedStore::open_with(dir.path(), Some(Arc::clone(&faults))).unwrap();
    // A store created through the recorded backend is not created
    // atomically (`open::create_new`); power losses start once it is open.
    let opened_at = faults.recorded_len();
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
        let sent_at = faults.recorded_len();
        let outcome = store
            .append(request(&id, ExpectedVersion::Exact(version), &payloads))
            .await
            .unwrap();
        version = outcome.last_version();
        let acked_at = faults.recorded_len();
        sent.push(Sent {
            payloads,
            sent_at,
            acked_at,
        });
    }
    let recorded = faults.recorded_ops();
    // The writer records the last head after answering (and before it
    // closes): the end of the run is after the close.
    drop(store);
    let last_watermark = std::fs::read(dir.path().join("events.head")).unwrap();

    // Every sync is a moment the power may fail just before it returns; so
    // is the end of the run (with nothing pending).
    let mut moments: Vec<(usize, Option<Vec<u8>>)> = recorded
        .iter()
        .enumerate()
        .filter_map(|(at, op)| match op {
            FileOp::Sync { watermark, .. } if at >= opened_at => Some((at, watermark.clone())),
            _ => None,
        })
        .collect();
    moments.push((recorded.len(), Some(last_watermark)));
    let syncs = moments.len() - 1;
    // One fsync per commit on the acknowledgement's path: the journal
    // entry's (the data file is synced by checkpoints, after a reply, so
    // one may fall inside the next append's window); without the journal,
    // redb's 1-phase commit's, and one more when the commit grew the file
    // (redb syncs the new length before it writes into it). `durable_at`:
    // where that sync is in the record; once the writer records a later
    // sync, it has returned.
    let is_sync =
        |op: &FileOp, kind: FileKind| matches!(op, FileOp::Sync { file, .. } if *file == kind);
    let mut durable_at = Vec::new();
    for (i, append) in sent.iter().enumerate() {
        let ops = &recorded[append.sent_at..append.acked_at];
        let count = |what: &dyn Fn(&FileOp) -> bool| ops.iter().filter(|op| what(op)).count();
        let journal_syncs = count(&|op| is_sync(op, FileKind::Journal));
        let data_syncs = count(&|op| is_sync(op, FileKind::Data));
        let resizes = count(&|op| matches!(op, FileOp::SetLen(_)));
        let commit_sync = if commits == Commits::Direct {
            assert_eq!(
                (journal_syncs, data_syncs),
                (0, 1 + resizes),
                "append {i} made {data_syncs} syncs of the data file and {resizes} resizes"
            );
            ops.iter().rposition(|op| is_sync(op, FileKind::Data))
        } else {
            assert_eq!(
                journal_syncs, 1,
                "append {i} made {journal_syncs} syncs of the journal"
            );
            ops.iter().position(|op| is_sync(op, FileKind::Journal))
        };
        durable_at.push(append.sent_at + commit_sync.expect("counted above"));
    }

    let mut rng = Rng(0x5eed_0fc0_ffee);
    let mut outcomes = Outcomes::default();
    // For each file, what its last sync made durable (during the open, for
    // the first moment) and where in the record that sync was.
    let last_sync_before = |file: FileKind, at: usize| {
        recorded[..at]
            .iter()
            .rposition(|op| matches!(op, FileOp::Sync { file: f, .. } if *f == file))
            .unwrap_or_else(|| panic!("the open syncs the {file:?} file"))
    };
    let mut synced_upto = [
        last_sync_before(FileKind::Data, opened_at),
        match commits {
            Commits::Direct => 0,
            _ => last_sync_before(FileKind::Journal, opened_at),
        },
    ];
    let mut synced = Disk::default();
    for (index, file) in [FileKind::Data, FileKind::Journal].into_iter().enumerate() {
        for op in recorded[..synced_upto[index]]
            .iter()
            .filter(|op| file_of(op) == file)
        {
            apply(&mut synced, op);
        }
    }
    let slot = |file: FileKind| usize::from(file == FileKind::Journal);
    let mut strongest_watermark = 0;
    for (moment, (at, watermark)) in moments.iter().enumerate() {
        let acked: Vec<&Sent> = sent.iter().filter(|s| s.acked_at <= *at).collect();
        let acked_count = acked.len();
        let in_flight = sent.get(acked_count).filter(|s| s.sent_at <= *at);
        // Each file's operations since its own last sync, in order.
        let pending: Vec<&FileOp> = recorded[..*at]
            .iter()
            .enumerate()
            .filter(|(index, op)| {
                !matches!(op, FileOp::Sync { .. }) && *index >= synced_upto[slot(file_of(op))]
            })
            .map(|(_, op)| op)
            .collect();
        if let Some(bytes) = watermark.as_deref().filter(|b| b.len() == 16) {
            // Never ahead of what is durable: the appends whose commit's
            // sync returned before this moment.
            let head = watermark_head(bytes);
            let synced_events: u64 = sent
                .iter()
                .zip(&durable_at)
                .filter(|(_, durable)| **durable < *at)
                .map(|(s, _)| s.payloads.len() as u64)
                .sum();
            assert!(
                head <= synced_events,
                "moment {moment}: the watermark says {head} events, only {synced_events} are \
                 durable"
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
        // Past this sync, everything written to its file before it is on
        // disk.
        if let Some(FileOp::Sync { file, .. }) = recorded.get(*at) {
            let upto = &mut synced_upto[slot(*file)];
            for op in recorded[*upto..*at]
                .iter()
                .filter(|op| file_of(op) == *file)
            {
                apply(&mut synced, op);
            }
            *upto = *at;
        }
    }
    println!(
        "{commits:?}: {syncs} syncs for {APPENDS} appends, {outcomes:?}, in {:?}",
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
