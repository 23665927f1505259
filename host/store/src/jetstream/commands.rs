//! Finding the events a command id recorded on a stream without reading
//! the whole stream each time.
//!
//! JetStream cannot look messages up by a header, so the command ids of a
//! stream are only known by reading its events. This store remembers, per
//! stream, the command ids (as 64-bit hashes) of its events up to a
//! version it has read ("covered"); a look-up reads only the events after
//! that version (usually none or a few: what other nodes appended since),
//! and reads the whole stream only when the id's hash is among the known
//! ones (the id was stored, or a hash collision) to return its events.
//!
//! **Invariant:** an entry's hashes are those of every command id in the
//! stream's events `1..=covered`. Streams are append-only (the streams deny
//! deletes and purges) and a version's event never changes, so an entry
//! stays true forever; it is only ever replaced by one that covers more.
//! A command's events are one atomic batch, and `covered` is always the
//! stream's last version at some instant, so a batch is never split
//! between the covered part and the part read after it.
//!
//! Bounded: when the entries hold more than [`MAX_HASHES`] hashes they are
//! all forgotten (the next look-up of each stream reads it whole again).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use super::JetStreamStore;
use crate::{RecordedEvent, StoreError, StreamId};

/// The most hashes remembered across all streams (8 bytes each, plus the
/// sets' overhead: some tens of MiB at most).
const MAX_HASHES: usize = 1 << 20;

/// The command ids of a stream's events up to `covered`.
#[derive(Clone, Default)]
struct Known {
    covered: u64,
    ids: HashSet<u64>,
}

/// See the module docs.
#[derive(Default)]
pub(super) struct CommandIndex {
    streams: Mutex<(HashMap<StreamId, Known>, usize)>,
}

fn hash(command_id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    command_id.hash(&mut hasher);
    hasher.finish()
}

impl CommandIndex {
    fn get(&self, stream: &StreamId) -> Option<Known> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.0.get(stream).cloned()
    }

    /// Keeps `known` for `stream` unless what is there covers more.
    fn keep(&self, stream: &StreamId, known: Known) {
        let mut guard = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let (streams, total) = &mut *guard;
        if streams
            .get(stream)
            .is_some_and(|old| old.covered >= known.covered)
        {
            return;
        }
        let before = streams.get(stream).map_or(0, |old| old.ids.len());
        if *total - before + known.ids.len() > MAX_HASHES {
            streams.clear();
            *total = 0;
        } else {
            *total -= before;
        }
        *total += known.ids.len();
        streams.insert(stream.clone(), known);
    }
}

impl JetStreamStore {
    /// The events `command_id` recorded on `stream`, whose last version is
    /// `current` (read from the leader by the caller); `None` if no append
    /// up to `current` carried it. See the module docs.
    pub(super) async fn recorded_by(
        &self,
        stream: &StreamId,
        command_id: &str,
        current: u64,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let wanted = hash(command_id);
        let mut known = match self.commands.get(stream) {
            Some(known) if known.covered <= current => known,
            _ => Known::default(),
        };
        let whole = known.covered == 0;
        let mut found = Vec::new();
        if known.covered < current {
            let newer: Vec<RecordedEvent> = self
                .events_of(
                    stream,
                    known.covered + 1,
                    (current - known.covered) as usize,
                )
                .await?;
            for event in newer {
                known.covered = event.version;
                let Some(id) = &event.metadata.command_id else {
                    continue;
                };
                known.ids.insert(hash(id));
                if id == command_id {
                    found.push(event);
                }
            }
            self.commands.keep(stream, known.clone());
        }
        if !found.is_empty() {
            return Ok(Some(found));
        }
        if whole || !known.ids.contains(&wanted) {
            return Ok(None);
        }
        // Stored earlier (or a hash that collides): read its events.
        let found: Vec<RecordedEvent> = self
            .events_of::<Vec<RecordedEvent>>(stream, 1, current as usize)
            .await?
            .into_iter()
            .filter(|event| event.metadata.command_id.as_deref() == Some(command_id))
            .collect();
        Ok((!found.is_empty()).then_some(found))
    }
}
