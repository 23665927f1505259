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

use redb::{ReadableTable, WriteTransaction};

use super::errors::InFile;
use super::ops::{Op, Tables, Writes};
use super::tables::stream_key;
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

/// What applying a batch produced.
pub(super) struct Applied {
    /// Each job's answer, in the order of the jobs.
    pub(super) answers: Vec<Answer>,
    /// The last log sequence after the batch (for the watermark).
    pub(super) head: u64,
    /// The batch's writes, as its journal entry records them.
    pub(super) entry: Vec<u8>,
}

/// Applies every job of a batch in order.
pub(super) fn apply_all(
    txn: &WriteTransaction,
    path: &Path,
    work: Vec<Work>,
) -> Result<Applied, StoreError> {
    let mut writes = Writes::new(Tables::open(txn, path)?);
    // **Architecture Invariant:** log sequences and namespace positions are
    // assigned here and nowhere else, each continuing from the last stored
    // one (the store's last sequence; the namespace's last position), read
    // inside the write transaction, which sees the earlier jobs of this
    // batch. Only the writer thread opens write transactions, so no two
    // batches interleave; a batch commits whole or not at all, so no
    // sequence or position is ever consumed without its event being stored.
    // Both are therefore gapless by construction (and verified on every
    // open).
    let mut head = read::last_sequence(path, &writes.tables.events)?;
    let answers = work
        .into_iter()
        .map(|work| match work {
            Work::Append(request) => {
                append(&mut writes, path, &mut head, request).map(Answer::Append)
            }
            Work::Snapshot(snapshot) => {
                save_snapshot(&mut writes, path, snapshot).map(Answer::Snapshot)
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(Applied {
        answers,
        head,
        entry: writes.into_entry(),
    })
}

/// One append; `head` is the store's last log sequence. The outer `Result`
/// is a redb failure (abort the batch), the inner one this append's own
/// answer.
fn append(
    writes: &mut Writes<'_>,
    path: &Path,
    head: &mut u64,
    request: AppendRequest,
) -> Result<Result<AppendOutcome, AppendError>, StoreError> {
    let key = stream_key(&request.stream);
    let key = key.as_str();

    // Idempotency first: a known command id wins over the expected version.
    if let Some(command_id) = &request.metadata.command_id {
        let tables = &writes.tables;
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

    let current = writes
        .tables
        .heads
        .get(key)
        .in_file(path)?
        .map_or(0, |v| v.value());
    if let Err(conflict) = request.expected.check(&request.stream, current) {
        return Ok(Err(conflict.into()));
    }

    let namespace = request.stream.namespace.clone();
    let namespace = namespace.as_str();
    let namespace_head = read::namespace_head(path, &writes.tables.log, namespace)?;
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
        let event_op = Op::Event {
            sequence,
            record: record.as_slice(),
        };
        writes.put(event_op, path)?;
        let log_op = Op::Log {
            namespace,
            position: event.position,
            sequence,
        };
        writes.put(log_op, path)?;
        let index_op = Op::Index {
            stream: key,
            version: event.version,
            sequence,
        };
        writes.put(index_op, path)?;
    }
    let head_op = Op::Head {
        stream: key,
        version: last.version,
    };
    writes.put(head_op, path)?;
    let stored = writes
        .tables
        .bytes
        .get(namespace)
        .in_file(path)?
        .map_or(0, |v| v.value());
    let added: u64 = recorded.iter().map(|e| e.data.len() as u64).sum();
    let bytes_op = Op::Bytes {
        namespace,
        bytes: stored.saturating_add(added),
    };
    writes.put(bytes_op, path)?;
    if let Some(command_id) = &command_id {
        let command_op = Op::Command {
            stream: key,
            command_id: command_id.as_str(),
            first: first.version,
            last: last.version,
        };
        writes.put(command_op, path)?;
    }
    *head += recorded.len() as u64;
    Ok(Ok(AppendOutcome {
        events: recorded,
        duplicate: false,
    }))
}

/// Stores a snapshot unless a newer one (higher version) is already there.
fn save_snapshot(
    writes: &mut Writes<'_>,
    path: &Path,
    snapshot: Snapshot,
) -> Result<Result<(), StoreError>, StoreError> {
    let key = stream_key(&snapshot.stream);
    let digest = snapshot.snapshot_key.as_str();
    let stored = match read::snapshot(
        path,
        &writes.tables.snapshots,
        &snapshot.stream,
        &key,
        digest,
    ) {
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
    let snapshot_op = Op::Snapshot {
        stream: key.as_str(),
        digest,
        record: record.as_slice(),
    };
    writes.put(snapshot_op, path)?;
    Ok(Ok(()))
}
