//! The table writes of a batch, one [`Op`] each: made in the batch's write
//! transaction and recorded, in the same order, as the payload of its
//! [journal](super::journal) entry, from which `open` replays them.
//!
//! **Invariant:** every write of a batch goes through [`Writes::put`], so
//! the journal entry holds exactly what the transaction wrote, and an op
//! holds the value written (never a delta), so replaying it again changes
//! nothing.
//!
//! Payload format: ops one after another, each a tag byte and its fields,
//! integers `u64` LE, strings and bytes as `u32` LE length + bytes.

use std::path::Path;

use redb::{Table, WriteTransaction};

use super::errors::InFile;
use super::tables::{
    COMMANDS, EVENTS, NAMESPACE_BYTES, NAMESPACE_LOG, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX,
};
use crate::StoreError;

/// The tables a batch writes.
pub(super) struct Tables<'txn> {
    pub(super) events: Table<'txn, u64, &'static [u8]>,
    pub(super) log: Table<'txn, (&'static str, u64), u64>,
    pub(super) index: Table<'txn, (&'static str, u64), u64>,
    pub(super) heads: Table<'txn, &'static str, u64>,
    pub(super) commands: Table<'txn, (&'static str, &'static str), (u64, u64)>,
    pub(super) snapshots: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    pub(super) bytes: Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction, path: &Path) -> Result<Self, StoreError> {
        Ok(Tables {
            events: txn.open_table(EVENTS).in_file(path)?,
            log: txn.open_table(NAMESPACE_LOG).in_file(path)?,
            index: txn.open_table(STREAM_INDEX).in_file(path)?,
            heads: txn.open_table(STREAM_HEADS).in_file(path)?,
            commands: txn.open_table(COMMANDS).in_file(path)?,
            snapshots: txn.open_table(SNAPSHOTS).in_file(path)?,
            bytes: txn.open_table(NAMESPACE_BYTES).in_file(path)?,
        })
    }
}

/// One write to one table.
#[derive(Debug, PartialEq)]
pub(super) enum Op<'a> {
    Event {
        sequence: u64,
        record: &'a [u8],
    },
    Log {
        namespace: &'a str,
        position: u64,
        sequence: u64,
    },
    Index {
        stream: &'a str,
        version: u64,
        sequence: u64,
    },
    Head {
        stream: &'a str,
        version: u64,
    },
    Command {
        stream: &'a str,
        command_id: &'a str,
        first: u64,
        last: u64,
    },
    Bytes {
        namespace: &'a str,
        bytes: u64,
    },
    Snapshot {
        stream: &'a str,
        digest: &'a str,
        record: &'a [u8],
    },
}

impl Op<'_> {
    /// Makes the write.
    pub(super) fn write(&self, tables: &mut Tables<'_>, path: &Path) -> Result<(), StoreError> {
        match *self {
            Op::Event { sequence, record } => {
                tables.events.insert(sequence, record).in_file(path)?;
            }
            Op::Log {
                namespace,
                position,
                sequence,
            } => {
                tables
                    .log
                    .insert((namespace, position), sequence)
                    .in_file(path)?;
            }
            Op::Index {
                stream,
                version,
                sequence,
            } => {
                tables
                    .index
                    .insert((stream, version), sequence)
                    .in_file(path)?;
            }
            Op::Head { stream, version } => {
                tables.heads.insert(stream, version).in_file(path)?;
            }
            Op::Command {
                stream,
                command_id,
                first,
                last,
            } => {
                tables
                    .commands
                    .insert((stream, command_id), (first, last))
                    .in_file(path)?;
            }
            Op::Bytes { namespace, bytes } => {
                tables.bytes.insert(namespace, bytes).in_file(path)?;
            }
            Op::Snapshot {
                stream,
                digest,
                record,
            } => {
                tables
                    .snapshots
                    .insert((stream, digest), record)
                    .in_file(path)?;
            }
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let int = |out: &mut Vec<u8>, n: u64| out.extend_from_slice(&n.to_le_bytes());
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match *self {
            Op::Event { sequence, record } => {
                out.push(1);
                int(out, sequence);
                bytes(out, record);
            }
            Op::Log {
                namespace,
                position,
                sequence,
            } => {
                out.push(2);
                bytes(out, namespace.as_bytes());
                int(out, position);
                int(out, sequence);
            }
            Op::Index {
                stream,
                version,
                sequence,
            } => {
                out.push(3);
                bytes(out, stream.as_bytes());
                int(out, version);
                int(out, sequence);
            }
            Op::Head { stream, version } => {
                out.push(4);
                bytes(out, stream.as_bytes());
                int(out, version);
            }
            Op::Command {
                stream,
                command_id,
                first,
                last,
            } => {
                out.push(5);
                bytes(out, stream.as_bytes());
                bytes(out, command_id.as_bytes());
                int(out, first);
                int(out, last);
            }
            Op::Bytes {
                namespace,
                bytes: n,
            } => {
                out.push(6);
                bytes(out, namespace.as_bytes());
                int(out, n);
            }
            Op::Snapshot {
                stream,
                digest,
                record,
            } => {
                out.push(7);
                bytes(out, stream.as_bytes());
                bytes(out, digest.as_bytes());
                bytes(out, record);
            }
        }
    }
}

/// Decodes a journal entry's payload; an error says what is malformed.
pub(super) fn decode(payload: &[u8]) -> Result<Vec<Op<'_>>, String> {
    let mut reader = Reader(payload);
    let mut ops = Vec::new();
    while let Some(tag) = reader.byte() {
        let op = match tag {
            1 => Op::Event {
                sequence: reader.int()?,
                record: reader.bytes()?,
            },
            2 => Op::Log {
                namespace: reader.str()?,
                position: reader.int()?,
                sequence: reader.int()?,
            },
            3 => Op::Index {
                stream: reader.str()?,
                version: reader.int()?,
                sequence: reader.int()?,
            },
            4 => Op::Head {
                stream: reader.str()?,
                version: reader.int()?,
            },
            5 => Op::Command {
                stream: reader.str()?,
                command_id: reader.str()?,
                first: reader.int()?,
                last: reader.int()?,
            },
            6 => Op::Bytes {
                namespace: reader.str()?,
                bytes: reader.int()?,
            },
            7 => Op::Snapshot {
                stream: reader.str()?,
                digest: reader.str()?,
                record: reader.bytes()?,
            },
            other => return Err(format!("unknown write {other} in a journal entry")),
        };
        ops.push(op);
    }
    Ok(ops)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a journal entry ends inside a write".to_owned());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn int(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        self.take(len as usize)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| "a name in a journal entry is not UTF-8".to_owned())
    }
}

/// A batch's tables and the journal entry its writes are recorded in.
pub(super) struct Writes<'txn> {
    pub(super) tables: Tables<'txn>,
    entry: Vec<u8>,
}

impl<'txn> Writes<'txn> {
    pub(super) fn new(tables: Tables<'txn>) -> Self {
        Writes {
            tables,
            entry: Vec::new(),
        }
    }

    /// Makes the write and records it.
    pub(super) fn put(&mut self, op: Op<'_>, path: &Path) -> Result<(), StoreError> {
        op.write(&mut self.tables, path)?;
        op.encode(&mut self.entry);
        Ok(())
    }

    /// The journal entry's payload: every write made, in order.
    pub(super) fn into_entry(self) -> Vec<u8> {
        self.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_decodes_as_it_was_encoded() {
        let ops = [
            Op::Event {
                sequence: 7,
                record: b"record",
            },
            Op::Log {
                namespace: "bank",
                position: 3,
                sequence: 7,
            },
            Op::Index {
                stream: "bank/a/b",
                version: 2,
                sequence: 7,
            },
            Op::Head {
                stream: "bank/a/b",
                version: 2,
            },
            Op::Command {
                stream: "bank/a/b",
                command_id: "cmd",
                first: 1,
                last: 2,
            },
            Op::Bytes {
                namespace: "bank",
                bytes: u64::MAX,
            },
            Op::Snapshot {
                stream: "bank/a/b",
                digest: "d",
                record: b"",
            },
        ];
        let mut payload = Vec::new();
        ops.iter().for_each(|op| op.encode(&mut payload));
        assert_eq!(decode(&payload).unwrap(), ops);
        for cut in 1..payload.len() {
            if let Ok(decoded) = decode(&payload[..cut]) {
                assert!(decoded.len() < ops.len(), "a cut payload decodes whole");
            }
        }
        assert!(decode(&[9]).unwrap_err().contains("unknown write 9"));
    }
}
