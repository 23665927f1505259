//! Kills a real writer process with SIGKILL at random moments, again and
//! again on the same data directory, and checks after every crash that the
//! store opens cleanly and holds every acknowledged append with its exact
//! events, gaplessly.
//!
//! Every kill lands mid-append: the writer says `appending` once its first
//! append of the run was acknowledged (its 16 tasks then append without
//! pause), and the test kills it 0–60 ms after that, so the kill never
//! lands while it is still opening (verifying) the store.
//!
//! The random delays come from a seed printed at the start (and in every
//! failure); set `AETHER_CRASH_SEED` to repeat a run, `AETHER_CRASH_ROUNDS`
//! to change the number of crashes (default 120).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aether_crash_tests::{Ack, Rng, STREAMS, cut_torn_ack, digest, parse_acks, stream};
use aether_host::store::{EmbeddedStore, EventStore, RecordedEvent};
use anyhow::{Context, bail, ensure};

const WRITER: &str = env!("CARGO_BIN_EXE_crash-writer");

#[test]
fn acknowledged_appends_survive_sigkill() -> anyhow::Result<()> {
    let seed = match std::env::var("AETHER_CRASH_SEED") {
        Ok(seed) => seed.parse().context("AETHER_CRASH_SEED")?,
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
    };
    let rounds: usize = match std::env::var("AETHER_CRASH_ROUNDS") {
        Ok(rounds) => rounds.parse().context("AETHER_CRASH_ROUNDS")?,
        Err(_) => 120,
    };
    println!("crash test seed {seed} (AETHER_CRASH_SEED={seed} repeats this run)");
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let (data, acks) = (dir.path().join("store"), dir.path().join("acks.log"));
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut last = Checked::default();
    let mut torn = 0;
    for round in 1..=rounds {
        let delay = Duration::from_millis(rng.between(0, 60));
        let checked = crash_once(&data, &acks, delay)
            .and_then(|()| {
                // The kill may have cut the last ack line short (see
                // `cut_torn_ack`); the next writer must not continue it.
                torn += usize::from(cut_torn_ack(&acks)? > 0);
                runtime.block_on(check(&data, &acks))
            })
            .with_context(|| {
                format!("round {round} of {rounds}, seed {seed}, killed after {delay:?}")
            })?;
        ensure!(
            checked.events >= last.events && checked.acks > last.acks,
            "round {round}, seed {seed}: the store shrank from {last:?} to {checked:?}, or \
             the round acknowledged nothing"
        );
        last = checked;
    }
    println!(
        "{rounds} crashes in {:?}; finally {last:?}; {torn} torn ack lines cut off",
        started.elapsed()
    );
    ensure!(
        last.acks > rounds,
        "the writer acknowledged only {} appends in {rounds} runs",
        last.acks
    );
    Ok(())
}

/// Starts the writer, waits until it appends, lets it run for `delay`, and
/// kills it with SIGKILL.
fn crash_once(data: &Path, acks: &Path, delay: Duration) -> anyhow::Result<()> {
    let mut child = Command::new(WRITER)
        .arg(data)
        .arg(acks)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("start crash-writer")?;
    let stdout = child.stdout.take().context("crash-writer's stdout")?;
    let mut writer = KillOnDrop(child);
    let (said, heard) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = said.send(line);
    });
    let line = heard
        .recv_timeout(Duration::from_secs(120))
        .context("crash-writer did not start appending within 120 s")?;
    ensure!(
        line.trim() == "appending",
        "crash-writer said {line:?} instead of `appending` (see its stderr above)"
    );
    std::thread::sleep(delay);
    if let Some(status) = writer.0.try_wait()? {
        bail!("crash-writer exited by itself with {status} (see its stderr above)");
    }
    writer.0.kill().context("SIGKILL crash-writer")?;
    writer.0.wait().context("reap crash-writer")?;
    Ok(())
}

/// Kills the writer if the test fails while it runs, so that it never
/// outlives the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    events: u64,
    acks: usize,
}

/// Opens the store after a crash and checks it against the ack log.
async fn check(data: &Path, acks: &Path) -> anyhow::Result<Checked> {
    let store = EmbeddedStore::open(data).context("the store must open cleanly after a crash")?;
    let mut streams = BTreeMap::new();
    let mut total = 0;
    for index in 0..STREAMS {
        let id = stream(index)?;
        let events = store.read_stream(&id, 1, usize::MAX).await?;
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        ensure!(
            versions.iter().copied().eq(1..=events.len() as u64),
            "{id} versions are not gapless from 1: {versions:?}"
        );
        ensure!(
            store.stream_version(&id).await? == events.len() as u64,
            "{id} head"
        );
        total += events.len() as u64;
        streams.insert(id.to_string(), events);
    }

    // Every stream is in the same namespace, so its log holds them all.
    let namespace = stream(0)?.namespace;
    let head = store.head_position(&namespace).await?;
    let log = store.read_log(&namespace, 1, usize::MAX).await?;
    ensure!(
        log.iter().map(|e| e.position).eq(1..=head),
        "the positions of {namespace} are not gapless 1..={head}"
    );
    ensure!(
        head == total,
        "the log has {head} events, the streams {total}"
    );

    let acks = parse_acks(&std::fs::read_to_string(acks).unwrap_or_default())?;
    for ack in &acks {
        check_ack(ack, streams.get(&ack.stream).map_or(&[], Vec::as_slice))?;
    }
    Ok(Checked {
        events: head,
        acks: acks.len(),
    })
}

/// The acknowledged versions are stored, with the acknowledged payloads.
fn check_ack(ack: &Ack, events: &[RecordedEvent]) -> anyhow::Result<()> {
    let range = usize::try_from(ack.first - 1)?..usize::try_from(ack.last)?;
    let Some(stored) = events.get(range) else {
        bail!(
            "acknowledged {ack} but {} has only {} events",
            ack.stream,
            events.len()
        );
    };
    let stored_digest = digest(stored.iter().map(|e| e.data.as_slice()));
    ensure!(
        stored_digest == ack.digest,
        "acknowledged {ack} but the stored payloads digest to {stored_digest}"
    );
    Ok(())
}
