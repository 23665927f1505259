//! Snapshot policy: when the runtime saves an aggregate's state.
//!
//! A snapshot records the version it was taken at and the snapshot key of
//! the component that made it ([`LoadedComponent::snapshot_key`]): its
//! declared state-schema version (`schema:<v>`, from the component's
//! `aether:state-schema` custom section) or, if it declares none, its
//! digest. Activation starts from the newest snapshot under the *same* key
//! and replays only the events after it; any other snapshot is ignored
//! (full replay), because only a component that writes the same state
//! schema knows how to read it. A new version of a component that keeps its
//! state schema therefore keeps its snapshots across a hot reload.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aether_core::namespace::{AggregateType, Namespace};
use aether_store::{Snapshot, StreamId};

use super::partition::PartitionHandle;
use super::{LoadedComponent, Runtime};
use aether_core::clock::now_ms;

/// When to snapshot an aggregate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Never: activation always replays the whole stream.
    Never,
    /// Each time the version crosses a multiple of N (N ≥ 1).
    Every(u64),
}

impl SnapshotPolicy {
    /// Whether moving from `old` to `new` version crosses a snapshot point.
    pub fn is_due(self, old: u64, new: u64) -> bool {
        match self {
            SnapshotPolicy::Never => false,
            SnapshotPolicy::Every(n) => {
                let n = n.max(1);
                new / n > old / n
            }
        }
    }
}

/// Per (namespace, aggregate type) overrides of the runtime's default policy.
#[derive(Default)]
pub(crate) struct SnapshotPolicies {
    overrides: RwLock<HashMap<(Namespace, AggregateType), SnapshotPolicy>>,
}

impl SnapshotPolicies {
    pub(crate) fn set(
        &self,
        namespace: Namespace,
        aggregate_type: AggregateType,
        policy: SnapshotPolicy,
    ) {
        self.overrides
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace, aggregate_type), policy);
    }

    pub(crate) fn get(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Option<SnapshotPolicy> {
        self.overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.clone(), aggregate_type.clone()))
            .copied()
    }
}

impl Runtime {
    /// Sets the snapshot policy of one aggregate type in one namespace,
    /// overriding [`super::RuntimeConfig::snapshots`].
    pub fn set_snapshot_policy(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        policy: SnapshotPolicy,
    ) {
        self.inner
            .snapshot_policies
            .set(namespace.clone(), aggregate_type.clone(), policy);
    }

    /// The snapshot policy in force for an aggregate type.
    pub fn snapshot_policy(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> SnapshotPolicy {
        self.inner
            .snapshot_policies
            .get(namespace, aggregate_type)
            .unwrap_or(self.inner.config.snapshots)
    }

    /// Saves a snapshot if the command moved the aggregate past a snapshot
    /// point. Failing to snapshot is logged, never fails the command: the
    /// events are stored, and activation can always replay them.
    pub(crate) async fn snapshot_if_due(
        &self,
        partition: &PartitionHandle,
        stream: &StreamId,
        component: &Arc<LoadedComponent>,
        old_version: u64,
        new_version: u64,
    ) {
        if !self
            .snapshot_policy(&stream.namespace, &stream.aggregate_type)
            .is_due(old_version, new_version)
        {
            return;
        }
        let s = stream.clone();
        let taken = match partition.call(move |p| p.snapshot(&s)).await {
            Ok(Ok(taken)) => taken,
            Ok(Err(error)) => {
                tracing::warn!(%stream, ?error, "taking a snapshot failed");
                return;
            }
            Err(_) => return,
        };
        let super::partition::TakenSnapshot {
            state,
            version,
            command_ids,
        } = taken;
        let snapshot = Snapshot {
            stream: stream.clone(),
            version,
            snapshot_key: component.snapshot_key(),
            state,
            timestamp_ms: now_ms(),
        };
        if let Err(error) = self.inner.store.save_snapshot(snapshot).await {
            tracing::warn!(%stream, %error, "saving a snapshot failed");
            return;
        }
        // The command ids of the events up to the same version, so an
        // aggregate activated from this snapshot still tells a new id from
        // a stored one without the store. Saved after the state: one that
        // is missing or of another version is not used.
        let Some(command_ids) = command_ids else {
            return;
        };
        let saved = Snapshot {
            stream: stream.clone(),
            version,
            snapshot_key: super::command_ids::SNAPSHOT_KEY.into(),
            state: command_ids,
            timestamp_ms: now_ms(),
        };
        if let Err(error) = self.inner.store.save_snapshot(saved).await {
            tracing::warn!(%stream, %error, "saving the command ids with a snapshot failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SnapshotPolicy;

    #[test]
    fn due_when_crossing_a_multiple() {
        let every = SnapshotPolicy::Every(10);
        assert!(!every.is_due(0, 9));
        assert!(every.is_due(9, 10));
        assert!(every.is_due(8, 12));
        assert!(!every.is_due(10, 19));
        assert!(every.is_due(3, 25));
        assert!(!SnapshotPolicy::Never.is_due(0, 1_000));
        assert!(SnapshotPolicy::Every(0).is_due(0, 1), "0 is treated as 1");
    }
}
