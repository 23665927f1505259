//! `crash-writer <data-dir> <ack-log>`: appends to an [`EmbeddedStore`] until
//! it is killed, logging every acknowledged append to the ack log.
//!
//! Several tasks append concurrently (so group commit batches them), each to
//! random streams, 1–3 events per append, with the exact expected version it
//! last saw; after a conflict it re-reads the version. On start it continues
//! from whatever the store holds. Each ack line is written with one
//! `write(2)` on a file opened for appending, right after the append's
//! future resolved `Ok`. After the first acknowledged append of this process
//! it prints `appending` on stdout, so that the test kills it while appends
//! are in flight (not while it opens the store).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aether_crash_tests::{Ack, Rng, STREAMS, digest, stream};
use aether_host::store::{
    AppendError, AppendRequest, EmbeddedStore, EventMetadata, EventStore, ExpectedVersion, NewEvent,
};
use anyhow::{Context, bail};

const TASKS: u64 = 16;

/// Whether `appending` was printed yet.
static APPENDING: AtomicBool = AtomicBool::new(false);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, ack_log] = &args[..] else {
        bail!("usage: crash-writer <data-dir> <ack-log>");
    };
    let store = Arc::new(EmbeddedStore::open(data_dir).context("open the store")?);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(ack_log)
        .with_context(|| format!("open the ack log {ack_log}"))?;
    let log = Arc::new(Mutex::new(log));
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64
        ^ u64::from(std::process::id());

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, log) = (Arc::clone(&store), Arc::clone(&log));
            tokio::spawn(async move { append_forever(&store, &log, run, task).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn append_forever(
    store: &EmbeddedStore,
    log: &Mutex<File>,
    run: u64,
    task: u64,
) -> anyhow::Result<()> {
    let mut rng = Rng::new(run.wrapping_add(task));
    let mut versions = HashMap::new();
    for attempt in 0u64.. {
        let index = rng.between(0, STREAMS as u64 - 1) as usize;
        let id = stream(index)?;
        let known = match versions.get(&index) {
            Some(&version) => version,
            None => store.stream_version(&id).await?,
        };
        let count = rng.between(1, 3);
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|n| {
                format!(
                    r#"{{"run":{run},"task":{task},"n":{n},"noise":{}}}"#,
                    rng.next_u64()
                )
                .into_bytes()
            })
            .collect();
        let request = AppendRequest {
            stream: id.clone(),
            expected: ExpectedVersion::Exact(known),
            events: payloads
                .iter()
                .map(|p| NewEvent::json("counted", p.clone()))
                .collect(),
            metadata: EventMetadata {
                command_id: Some(format!("{run:x}-{task}-{attempt}")),
                ..EventMetadata::default()
            },
            timestamp_ms: 1_700_000_000_000 + attempt,
        };
        match store.append(request).await {
            Ok(outcome) => {
                let Some(first) = outcome.events.first() else {
                    bail!("the store acknowledged an append to {id} with no events");
                };
                if outcome.duplicate {
                    bail!("a fresh command id on {id} was reported as a duplicate");
                }
                let ack = Ack {
                    stream: id.to_string(),
                    first: first.version,
                    last: outcome.last_version(),
                    digest: digest(payloads.iter().map(Vec::as_slice)),
                };
                let line = format!("{ack}\n");
                let mut file = log
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the ack log lock is poisoned"))?;
                file.write_all(line.as_bytes())
                    .context("write the ack log")?;
                drop(file);
                versions.insert(index, outcome.last_version());
                if !APPENDING.swap(true, Ordering::SeqCst) {
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "appending").context("tell the test")?;
                    stdout.flush().context("tell the test")?;
                }
            }
            Err(AppendError::Conflict(_)) => {
                // Another task appended first: read the version again.
                versions.remove(&index);
            }
            Err(error) => return Err(error).context("append"),
        }
    }
    Ok(())
}
