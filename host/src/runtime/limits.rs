//! The sandbox limits of one namespace.
//!
//! Every namespace runs under a [`SandboxLimits`]: the runtime's defaults
//! ([`super::RuntimeConfig::limits`]) unless an operator set others for it
//! ([`super::Runtime::set_namespace_limits`]). Exceeding a limit fails the
//! one command that exceeded it, with an error naming the limit; the node
//! and every other namespace carry on.
//!
//! | Limit | Enforced where | Exceeding it |
//! |---|---|---|
//! | `memory_bytes` | the instance's `StoreLimits`-style limiter | the call traps: [`super::GuestFailureKind::MemoryLimit`] |
//! | `call_deadline` | the epoch deadline set before each guest call | the call is interrupted: [`super::GuestFailureKind::DeadlineExceeded`] |
//! | `fuel_per_call` | the fuel set before each guest call | [`super::GuestFailureKind::FuelExhausted`] |
//! | `max_command_bytes` | before the command reaches the guest | [`super::CommandError::CommandTooLarge`] |
//! | `max_event_bytes`, `max_events_per_command` | after `handle`, before anything is stored | [`super::CommandError::DecisionTooLarge`] |
//! | `max_pending_commands` | on entry to the command path | [`super::CommandError::QuotaExceeded`] |
//! | `max_view_bytes` | on the partition thread, before the view is parsed | [`super::CommandError::ViewTooLarge`] |
//! | `max_live_streams` | the node, when a live event stream opens | `429 too_many_streams` (`crate::node`) |
//! | `max_stored_event_bytes` | before each append, against the namespace's stored bytes (`storage.rs`) | [`super::CommandError::StorageQuotaExceeded`] |
//! | `max_stored_component_bytes` | the node, before a new component is stored | `507 storage_quota_exceeded` (`crate::node`) |
//! | `max_concurrent_uploads` | the node, before an upload's body is read | `429 too_many_uploads` (`crate::node`) |
//! | `max_live_aggregates` | the namespace's LRU of live aggregates | the least recently used are passivated (no command fails) |
//!
//! `max_live_aggregates` also sizes wasmtime's cap on the component-model
//! handles of each instance's `Store` (one handle per live aggregate, plus
//! headroom; `instance.rs`): wasmtime's default of 100 000 would otherwise
//! fail activations past the 100 000th in one partition.

use std::time::Duration;

/// The limits one namespace's aggregates run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Memory one guest instance may grow to, in bytes. Default: 256 MiB.
    pub memory_bytes: usize,
    /// Wall-clock deadline of one guest call (a command's `handle`, a batch
    /// of `apply`). Default: 1 s.
    pub call_deadline: Duration,
    /// Fuel (roughly, Wasm instructions) per guest call, for deterministic
    /// metering. `None` (the default): no metering. Needs
    /// [`super::RuntimeConfig::fuel_metering`].
    pub fuel_per_call: Option<u64>,
    /// Largest command payload accepted, in bytes. Default: 1 MiB.
    pub max_command_bytes: usize,
    /// Largest event payload a command may produce, in bytes. Default: 1 MiB.
    pub max_event_bytes: usize,
    /// Most events one command may produce. Default: 1 000.
    pub max_events_per_command: usize,
    /// Live aggregates of the namespace kept in memory; the least recently
    /// used are passivated beyond it. Default: 200 000.
    pub max_live_aggregates: usize,
    /// Commands of the namespace in the runtime at once (waiting for their
    /// aggregate or running); more are refused until some finish.
    /// Default: 10 000.
    pub max_pending_commands: usize,
    /// Largest JSON view of one aggregate a state read returns, in bytes.
    /// Default: 1 MiB.
    pub max_view_bytes: usize,
    /// Live event streams (`…/events/live`) of the namespace open at once
    /// on a node; more are refused until some close. Default: 64.
    pub max_live_streams: usize,
    /// Bytes of event payloads the namespace may store in all; a command
    /// that would go past it is refused. Default: 10 GiB.
    pub max_stored_event_bytes: u64,
    /// Bytes of distinct components the namespace may store in all (every
    /// version it ever deployed counts, as it can be activated again).
    /// Default: 1 GiB.
    pub max_stored_component_bytes: u64,
    /// Component uploads of the namespace in progress at once on a node
    /// (each body is held in memory up to the component size limit while
    /// it compiles); more are refused until some finish. Default: 2.
    pub max_concurrent_uploads: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            call_deadline: Duration::from_secs(1),
            fuel_per_call: None,
            max_command_bytes: 1 << 20,
            max_event_bytes: 1 << 20,
            max_events_per_command: 1_000,
            max_live_aggregates: 200_000,
            max_pending_commands: 10_000,
            max_view_bytes: 1 << 20,
            max_live_streams: 64,
            max_stored_event_bytes: 10 << 30,
            max_stored_component_bytes: 1 << 30,
            max_concurrent_uploads: 2,
        }
    }
}

/// Limits a runtime cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidLimits {
    /// A limit is zero, which would refuse everything.
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
    /// The memory limit is above what the engine reserves per instance.
    #[error("`memory_bytes` is {requested}, more than this node's ceiling of {ceiling} bytes")]
    MemoryAboveCeiling {
        /// The limit asked for.
        requested: usize,
        /// [`super::RuntimeConfig::memory_ceiling_bytes`].
        ceiling: usize,
    },
    /// Fuel was asked for on a runtime without fuel metering.
    #[error("`fuel_per_call` needs fuel metering, which is off on this node")]
    FuelMeteringOff,
}

impl SandboxLimits {
    /// Checks that a runtime with this memory ceiling and fuel setting can
    /// enforce these limits.
    pub fn check(&self, memory_ceiling: usize, fuel_metering: bool) -> Result<(), InvalidLimits> {
        let nonzero = [
            ("memory_bytes", self.memory_bytes as u128),
            ("call_deadline", self.call_deadline.as_nanos()),
            ("max_command_bytes", self.max_command_bytes as u128),
            ("max_event_bytes", self.max_event_bytes as u128),
            (
                "max_events_per_command",
                self.max_events_per_command as u128,
            ),
            ("max_live_aggregates", self.max_live_aggregates as u128),
            ("max_pending_commands", self.max_pending_commands as u128),
            ("max_view_bytes", self.max_view_bytes as u128),
            ("max_live_streams", self.max_live_streams as u128),
            (
                "max_stored_event_bytes",
                self.max_stored_event_bytes as u128,
            ),
            (
                "max_stored_component_bytes",
                self.max_stored_component_bytes as u128,
            ),
            (
                "max_concurrent_uploads",
                self.max_concurrent_uploads as u128,
            ),
            ("fuel_per_call", self.fuel_per_call.map_or(1, u128::from)),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, value)| *value == 0) {
            return Err(InvalidLimits::Zero(name));
        }
        if self.memory_bytes > memory_ceiling {
            return Err(InvalidLimits::MemoryAboveCeiling {
                requested: self.memory_bytes,
                ceiling: memory_ceiling,
            });
        }
        if self.fuel_per_call.is_some() && !fuel_metering {
            return Err(InvalidLimits::FuelMeteringOff);
        }
        Ok(())
    }

    /// Live aggregates per partition when the namespace has `partitions`.
    pub(crate) fn live_aggregates_per_partition(&self, partitions: usize) -> usize {
        self.max_live_aggregates.div_ceil(partitions.max(1)).max(1)
    }

    /// Checks a command's payload size.
    pub(crate) fn check_command(&self, size: usize) -> Result<(), super::CommandError> {
        if size > self.max_command_bytes {
            return Err(super::CommandError::CommandTooLarge {
                size,
                limit: self.max_command_bytes,
            });
        }
        Ok(())
    }

    /// Checks the size of a guest's view before it is parsed.
    pub(crate) fn check_view(&self, size: usize) -> Result<(), super::CommandError> {
        if size > self.max_view_bytes {
            return Err(super::CommandError::ViewTooLarge {
                size,
                limit: self.max_view_bytes,
            });
        }
        Ok(())
    }

    /// Checks what a command decided (each event's payload size) before
    /// anything is stored.
    pub(crate) fn check_decision<'a>(
        &self,
        event_sizes: impl ExactSizeIterator<Item = (&'a str, usize)>,
    ) -> Result<(), super::CommandError> {
        let count = event_sizes.len();
        if count > self.max_events_per_command {
            return Err(super::CommandError::DecisionTooLarge(format!(
                "the command produced {count} events, more than the namespace's limit of {}",
                self.max_events_per_command
            )));
        }
        for (event_type, size) in event_sizes {
            if size > self.max_event_bytes {
                return Err(super::CommandError::DecisionTooLarge(format!(
                    "event `{event_type}` is {size} bytes, more than the namespace's limit of {} bytes",
                    self.max_event_bytes
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_check() {
        SandboxLimits::default().check(256 << 20, false).unwrap();
    }

    #[test]
    fn impossible_limits_are_named() {
        let zero = SandboxLimits {
            max_events_per_command: 0,
            ..SandboxLimits::default()
        };
        assert_eq!(
            zero.check(1 << 30, true).unwrap_err().to_string(),
            "`max_events_per_command` must be greater than zero"
        );
        let big = SandboxLimits {
            memory_bytes: 2 << 30,
            ..SandboxLimits::default()
        };
        assert!(matches!(
            big.check(1 << 30, true),
            Err(InvalidLimits::MemoryAboveCeiling { .. })
        ));
        let fuel = SandboxLimits {
            fuel_per_call: Some(1_000),
            ..SandboxLimits::default()
        };
        assert_eq!(
            fuel.check(1 << 30, false),
            Err(InvalidLimits::FuelMeteringOff)
        );
        fuel.check(1 << 30, true).unwrap();
    }

    #[test]
    fn decisions_over_the_limits_are_refused() {
        let limits = SandboxLimits {
            max_event_bytes: 10,
            max_events_per_command: 2,
            ..SandboxLimits::default()
        };
        assert!(
            limits
                .check_decision([("A", 10), ("B", 1)].into_iter())
                .is_ok()
        );
        let many = limits
            .check_decision([("A", 1), ("B", 1), ("C", 1)].into_iter())
            .unwrap_err();
        assert!(many.to_string().contains("3 events"), "{many}");
        let big = limits
            .check_decision([("Big", 11)].into_iter())
            .unwrap_err();
        assert!(big.to_string().contains("event `Big` is 11 bytes"), "{big}");
        assert!(limits.check_command(1 << 20).is_ok());
        let command = SandboxLimits {
            max_command_bytes: 5,
            ..limits
        };
        assert!(matches!(
            command.check_command(6),
            Err(super::super::CommandError::CommandTooLarge { size: 6, limit: 5 })
        ));
        let view = SandboxLimits {
            max_view_bytes: 8,
            ..SandboxLimits::default()
        };
        assert!(view.check_view(8).is_ok());
        assert!(matches!(
            view.check_view(9),
            Err(super::super::CommandError::ViewTooLarge { size: 9, limit: 8 })
        ));
    }
}
