//! Applying one batch of writes inside the writer's write transaction: the
//! optimistic concurrency check, idempotency by command id, and the
//! assignment of versions, namespace positions and log sequences.
//!
//! Each job sees the state left by the jobs before it in the same batch (a
//! write transaction reads its own writes), so two appends in one batch with
//! the same expected version behave exactly as two sequential ones: the first
//! wins, the second conflicts. A job that fails on its own (conflict, invalid,
//! a damaged original for a duplicate) writes nothing and returns its error as
//! its answer; an `Err` from [`apply_all`] is a redb failure that aborts the
//! whole transaction.

use crate::request::AppendRequestExt;
use std::path::Path;

use redb::{ReadableTable, Table, WriteTransaction};

use super::errors::InFile;
use super::tables::{
    COMMANDS, EVENTS, NAMESPACE_BYTES, NAMESPACE_LOG, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX,
    stream_key,
};
use super::{codec, read};
use crate::{AppendError, AppendOutcome, AppendRequest, Snapshot, StoreError};

/// Largest record (event or snapshot) accepted, well below redb's own limit.
pub(super) const MAX_RECORD_BYTES: usize = 1 << 30;

/// What one job asks for.
pub(super) enum Work {
    Append(AppendRequest),
    Snapshot(Snapshot),
}

/// A job's answer, sent only once its transaction committed.
pub(super) enum Answer {
    Append(Result<AppendOutcome, AppendError>),
    Snapshot(Result<(), StoreError>),
}

/// The tables a batch writes.
struct Tables<'txn> {
    events: Table<'txn, u64, &'static [u8]>,
    log: Table<'txn, (&'static str, u64), u64>,
    index: Table<'txn, (&'static str, u64), u64>,
    heads: Table<'txn, &'static str, u64>,
    commands: Table<'txn, (&'static str, &'static str), (u64, u64)>,
    snapshots: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    bytes: Table<'txn, &'static str, u64>,
}

/// Applies every job of a batch in order; returns the answers in the same
/// order and the last log sequence after the batch (for the watermark).
pub(super) fn apply_all(
    txn: &WriteTransaction,
    path: &Path,
    work: Vec<Work>,
) -> Result<(Vec<Answer>, u64), StoreError> {
    let mut tables = Tables {
        events: txn.open_table(EVENTS).in_file(path)?,
        log: txn.open_table(NAMESPACE_LOG).in_file(path)?,
        index: txn.open_table(STREAM_INDEX).in_file(path)?,
        heads: txn.open_table(STREAM_HEADS).in_file(path)?,
        commands: txn.open_table(COMMANDS).in_file(path)?,
        snapshots: txn.open_table(SNAPSHOTS).in_file(path)?,
        bytes: txn.open_table(NAMESPACE_BYTES).in_file(path)?,
    };
    // **Architecture Invariant:** log sequences and namespace positions are
    // assigned here and nowhere else, each continuing from the last stored
    // one (the store's last sequence; the namespace's last position), read
    // inside the write transaction, which sees the earlier jobs of this
    // batch. Only the writer thread opens write transactions, so no two
    // batches interleave; a batch commits whole or not at all, so no
    // sequence or position is ever consumed without its event being stored.
    // Both are therefore gapless by construction (and verified on every
    // open).
    let mut head = read::last_sequence(path, &tables.events)?;
    let answers = work
        .into_iter()
        .map(|work| match work {
            Work::Append(request) => {
                append(&mut tables, path, &mut head, request).map(Answer::Append)
            }
            Work::Snapshot(snapshot) => {
                save_snapshot(&mut tables, path, snapshot).map(Answer::Snapshot)
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((answers, head))
}

/// One append; `head` is the store's last log sequence. The outer `Result`
/// is a redb failure (abort the batch), the inner one this append's own
/// answer.
fn append(
    tables: &mut Tables<'_>,
    path: &Path,
    head: &mut u64,
    request: AppendRequest,
) -> Result<Result<AppendOutcome, AppendError>, StoreError> {
    let key = stream_key(&request.stream);
    let key = key.as_str();

    // Idempotency first: a known command id wins over the expected version.
    if let Some(command_id) = &request.metadata.command_id {
        let original = read::command_events(
            path,
            &tables.commands,
            &tables.index,
            &tables.events,
            &request.stream,
            key,
            command_id,
        )?;
        if let Some(events) = original {
            return Ok(Ok(AppendOutcome {
                events,
                duplicate: true,
            }));
        }
    }

    let current = tables
        .heads
        .get(key)
        .in_file(path)?
        .map_or(0, |v| v.value());
    if let Err(conflict) = request.expected.check(&request.stream, current) {
        return Ok(Err(conflict.into()));
    }

    let namespace = request.stream.namespace.clone();
    let namespace = namespace.as_str();
    let namespace_head = read::namespace_head(path, &tables.log, namespace)?;
    let command_id = request.metadata.command_id.clone();
    let recorded = request.record(current, namespace_head);
    let mut records = Vec::with_capacity(recorded.len());
    for (event, sequence) in recorded.iter().zip(*head + 1..) {
        match codec::encode_event(sequence, event) {
            Ok(record) if record.len() <= MAX_RECORD_BYTES => records.push(record),
            Ok(_) | Err(codec::TooLarge(_)) => {
                return Ok(Err(AppendError::Invalid(format!(
                    "event version {} of {} is larger than {MAX_RECORD_BYTES} bytes: split it",
                    event.version, event.stream
                ))));
            }
        }
    }
    let (first, last) = match (recorded.first(), recorded.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => {
            return Ok(Err(AppendError::Invalid(
                "an append needs at least one event".into(),
            )));
        }
    };
    for ((event, record), sequence) in recorded.iter().zip(&records).zip(*head + 1..) {
        tables
            .events
            .insert(sequence, record.as_slice())
            .in_file(path)?;
        tables
            .log
            .insert((namespace, event.position), sequence)
            .in_file(path)?;
        tables
            .index
            .insert((key, event.version), sequence)
            .in_file(path)?;
    }
    tables.heads.insert(key, last.version).in_file(path)?;
    let stored = tables
        .bytes
        .get(namespace)
        .in_file(path)?
        .map_or(0, |v| v.value());
    let added: u64 = recorded.iter().map(|e| e.data.len() as u64).sum();
    tables
        .bytes
        .insert(namespace, stored.saturating_add(added))
        .in_file(path)?;
    if let Some(command_id) = &command_id {
        let versions = (first.version, last.version);
        tables
            .commands
            .insert((key, command_id.as_str()), versions)
            .in_file(path)?;
    }
    *head += recorded.len() as u64;
    Ok(Ok(AppendOutcome {
        events: recorded,
        duplicate: false,
    }))
}

/// Stores a snapshot unless a newer one (higher version) is already there.
fn save_snapshot(
    tables: &mut Tables<'_>,
    path: &Path,
    snapshot: Snapshot,
) -> Result<Result<(), StoreError>, StoreError> {
    let key = stream_key(&snapshot.stream);
    let digest = snapshot.snapshot_key.as_str();
    let stored = match read::snapshot(path, &tables.snapshots, &snapshot.stream, &key, digest) {
        Ok(stored) => stored,
        Err(damaged @ StoreError::Corrupt { .. }) => return Ok(Err(damaged)),
        Err(error) => return Err(error),
    };
    if stored.is_some_and(|stored| stored.version > snapshot.version) {
        return Ok(Ok(()));
    }
    let record = match codec::encode_snapshot(&snapshot) {
        Ok(record) if record.len() <= MAX_RECORD_BYTES => record,
        _ => {
            return Ok(Err(StoreError::Unavailable {
                backend: super::errors::BACKEND,
                message: format!(
                    "the snapshot of {} is larger than {MAX_RECORD_BYTES} bytes and was not stored",
                    snapshot.stream
                ),
            }));
        }
    };
    tables
        .snapshots
        .insert((key.as_str(), digest), record.as_slice())
        .in_file(path)?;
    Ok(Ok(()))
}
