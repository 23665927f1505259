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
//! | `call_deadline` | the epoch deadline set before each guest call (`deadline.rs`) | the call is interrupted: [`super::GuestFailureKind::DeadlineExceeded`] |
//! | `fuel_per_call` | the fuel set before each guest call | [`super::GuestFailureKind::FuelExhausted`] |
//! | `max_command_bytes` | before the command reaches the guest | [`super::CommandError::CommandTooLarge`] |
//! | `max_event_bytes`, `max_events_per_command` | after `handle`, before anything is stored | [`super::CommandError::DecisionTooLarge`] |
//! | `max_pending_commands` | on entry to the command path | [`super::CommandError::QuotaExceeded`] |
//! | `max_view_bytes` | on the partition thread, before the view is parsed | [`super::CommandError::ViewTooLarge`] |
//! | `max_live_streams` | the node, when a live event stream opens | `429 too_many_streams` (`aether_node`) |
//! | `max_stored_event_bytes` | before each append, against the namespace's stored bytes (`storage.rs`) | [`super::CommandError::StorageQuotaExceeded`] |
//! | `max_stored_component_bytes` | the node, before a new component is stored | `507 storage_quota_exceeded` (`aether_node`) |
//! | `max_concurrent_uploads` | the node, before an upload's body is read | `429 too_many_uploads` (`aether_node`) |
//! | `upload_bytes_per_sec` | the node, while an upload's body is read (`upload_pacing.rs`) | the upload waits before it reads more (nothing fails) |
//! | `compile_share_percent` | before a deploy's compile (`pacing.rs`) | the deploy waits for its turn (nothing fails) |
//! | `cpu_share_percent` | after each job on a partition thread that gave way (`busy.rs`) | the thread rests before its next job (nothing fails) |
//! | `max_live_aggregates` | the namespace's LRU of live aggregates | the least recently used are passivated (no command fails) |
//!
//! `max_live_aggregates` also sizes wasmtime's cap on the component-model
//! handles of each instance's `Store` (one handle per live aggregate, plus
//! headroom; `instance.rs`): wasmtime's default of 100 000 would otherwise
//! fail activations past the 100 000th in one partition.
//!
//! **One definition per limit:** the [`sandbox_limits!`] call below is the
//! only place a limit is named. From it come the runtime's
//! [`SandboxLimits`] (with its default), the API's [`LimitOverrides`] and
//! [`EffectiveLimits`] (the names and units a request and a response use),
//! the zero check, and [`limits()`], from which the `aether serve` flags
//! are made and the table in docs/api.md is checked.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a limit's value is spelt in the API (requests, responses,
/// `node.json`) and on the command line: whole numbers, with the unit in
/// the limit's API name.
pub trait LimitValue: Sized {
    /// What an override sets (and a flag takes).
    type Api;
    /// How the effective value is reported.
    type Reported;
    /// The value an override of `api` stands for.
    fn from_api(api: Self::Api) -> Self;
    /// The value as the API reports it.
    fn report(&self) -> Self::Reported;
    /// The value as a command-line flag's default (`None`: no default).
    fn flag_default(&self) -> Option<u64>;
    /// True if the value would refuse everything.
    fn is_zero(&self) -> bool;
}

impl LimitValue for usize {
    type Api = u64;
    type Reported = u64;
    fn from_api(api: u64) -> Self {
        usize::try_from(api).unwrap_or(usize::MAX)
    }
    fn report(&self) -> u64 {
        *self as u64
    }
    fn flag_default(&self) -> Option<u64> {
        Some(*self as u64)
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl LimitValue for u64 {
    type Api = u64;
    type Reported = u64;
    fn from_api(api: u64) -> Self {
        api
    }
    fn report(&self) -> u64 {
        *self
    }
    fn flag_default(&self) -> Option<u64> {
        Some(*self)
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

/// A duration, spelt in whole milliseconds.
impl LimitValue for Duration {
    type Api = u64;
    type Reported = u64;
    fn from_api(api: u64) -> Self {
        Duration::from_millis(api)
    }
    fn report(&self) -> u64 {
        u64::try_from(self.as_millis()).unwrap_or(u64::MAX)
    }
    fn flag_default(&self) -> Option<u64> {
        Some(self.report())
    }
    fn is_zero(&self) -> bool {
        self.is_zero()
    }
}

/// An optional limit: off (`None`) unless set.
impl LimitValue for Option<u64> {
    type Api = u64;
    type Reported = Option<u64>;
    fn from_api(api: u64) -> Self {
        Some(api)
    }
    fn report(&self) -> Option<u64> {
        *self
    }
    fn flag_default(&self) -> Option<u64> {
        *self
    }
    fn is_zero(&self) -> bool {
        *self == Some(0)
    }
}

/// One limit, as the operator sees it: its API name (also its flag,
/// `--` and dashes), its default as the API spells it, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitInfo {
    /// The limit's name in the API and `node.json` (`call_deadline_ms`).
    pub name: &'static str,
    /// Its default, in the API's unit; `None` for a limit that is off
    /// unless set.
    pub default: Option<u64>,
    /// The first line of its documentation.
    pub summary: &'static str,
}

impl LimitInfo {
    /// The `aether serve` flag that sets this limit's default for every
    /// namespace (`--call-deadline-ms`).
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// Declares every sandbox limit once. Each entry is the runtime's field,
/// its type and default, and its name in the API (with the unit).
macro_rules! sandbox_limits {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $default:expr, api $api:ident;
    )+) => {
        /// The limits one namespace's aggregates run under.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct SandboxLimits {
            $(
                $(#[doc = $doc])+
                pub $field: $ty,
            )+
        }

        impl Default for SandboxLimits {
            fn default() -> Self {
                Self { $($field: $default,)+ }
            }
        }

        /// A namespace's overrides of the node's default limits, as the API
        /// and `node.json` spell them: every field optional, so that a
        /// namespace overrides only what it names. Unknown fields are
        /// refused, so a misspelt limit is an error rather than silently
        /// ignored.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitOverrides {
            $(
                $(#[doc = $doc])+
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $api: Option<<$ty as LimitValue>::Api>,
            )+
        }

        /// Every limit a namespace runs under, as the API reports them.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct EffectiveLimits {
            $(
                $(#[doc = $doc])+
                pub $api: <$ty as LimitValue>::Reported,
            )+
        }

        impl LimitOverrides {
            /// `defaults` with these overrides applied.
            pub fn apply(&self, defaults: &SandboxLimits) -> SandboxLimits {
                SandboxLimits {
                    $($field: match self.$api {
                        Some(value) => <$ty as LimitValue>::from_api(value),
                        None => defaults.$field.clone(),
                    },)+
                }
            }

            /// These overrides with `newer`'s fields laid over them.
            pub fn merged(&self, newer: &LimitOverrides) -> LimitOverrides {
                LimitOverrides { $($api: newer.$api.or(self.$api),)+ }
            }

            /// Sets the limit named `name` (its API name); false if there
            /// is no such limit.
            pub fn set(&mut self, name: &str, value: u64) -> bool {
                match name {
                    $(stringify!($api) => self.$api = Some(value),)+
                    _ => return false,
                }
                true
            }
        }

        impl From<&SandboxLimits> for EffectiveLimits {
            fn from(limits: &SandboxLimits) -> Self {
                Self { $($api: LimitValue::report(&limits.$field),)+ }
            }
        }

        impl SandboxLimits {
            /// The first limit that is zero (it would refuse everything).
            fn first_zero(&self) -> Option<&'static str> {
                $(if LimitValue::is_zero(&self.$field) {
                    return Some(stringify!($field));
                })+
                None
            }
        }

        /// Every limit, in the order the API reports them.
        pub fn limits() -> Vec<LimitInfo> {
            let defaults = SandboxLimits::default();
            vec![$(LimitInfo {
                name: stringify!($api),
                default: LimitValue::flag_default(&defaults.$field),
                summary: [$($doc),+][0].trim(),
            },)+]
        }
    };
}

sandbox_limits! {
    /// Memory one guest instance may grow to, in bytes. Default: 256 MiB.
    memory_bytes: usize = 256 << 20, api memory_bytes;
    /// Deadline of one guest call (a command's `handle`, a batch of
    /// `apply`): wall-clock time, or CPU time on a lane that gave way to
    /// lighter ones (`deadline.rs`). Default: 1 s.
    call_deadline: Duration = Duration::from_secs(1), api call_deadline_ms;
    /// Fuel (roughly, Wasm instructions) per guest call, for deterministic
    /// metering. `None` (the default): no metering. Needs
    /// [`super::RuntimeConfig::fuel_metering`].
    fuel_per_call: Option<u64> = None, api fuel_per_call;
    /// Largest command payload accepted, in bytes. Default: 1 MiB.
    max_command_bytes: usize = 1 << 20, api max_command_bytes;
    /// Largest event payload a command may produce, in bytes. Default: 1 MiB.
    max_event_bytes: usize = 1 << 20, api max_event_bytes;
    /// Most events one command may produce. Default: 1 000.
    max_events_per_command: usize = 1_000, api max_events_per_command;
    /// Live aggregates of the namespace kept in memory; the least recently
    /// used are passivated beyond it. Default: 200 000.
    max_live_aggregates: usize = 200_000, api max_live_aggregates;
    /// Commands of the namespace in the runtime at once (waiting for their
    /// aggregate or running); more are refused until some finish.
    /// Default: 10 000.
    max_pending_commands: usize = 10_000, api max_pending_commands;
    /// Largest JSON view of one aggregate a state read returns, in bytes.
    /// Default: 1 MiB.
    max_view_bytes: usize = 1 << 20, api max_view_bytes;
    /// Live event streams (`…/events/live`) of the namespace open at once
    /// on a node; more are refused until some close. Default: 64.
    max_live_streams: usize = 64, api max_live_streams;
    /// Bytes of event payloads the namespace may store in all; a command
    /// that would go past it is refused. Default: 10 GiB.
    max_stored_event_bytes: u64 = 10 << 30, api max_stored_event_bytes;
    /// Bytes of distinct components the namespace may store in all (every
    /// version it ever deployed counts, as it can be activated again).
    /// Default: 1 GiB.
    max_stored_component_bytes: u64 = 1 << 30, api max_stored_component_bytes;
    /// Component uploads of the namespace in progress at once on a node
    /// (each body is held in memory up to the component size limit while
    /// it compiles); more are refused until some finish. Default: 2.
    max_concurrent_uploads: usize = 2, api max_concurrent_uploads;
    /// Bytes per second the node reads of the namespace's component
    /// uploads, all of them together: an upload ahead of it waits before
    /// it reads more. Default: 16 MiB/s (a 40 MB component in 2.5 s).
    upload_bytes_per_sec: u64 = 16 << 20, api upload_bytes_per_sec;
    /// Share of a node's time, in percent, that the namespace's component
    /// compiles may take: it compiles one at a time, and after a compile
    /// that took `t` its next one waits until `t × (100 − share) / share`
    /// has passed (100: no wait). Default: 25.
    compile_share_percent: usize = 25, api compile_share_percent;
    /// Share of one core, in percent, that each of the namespace's
    /// partition threads may use once it has given way to other
    /// namespaces (busy for most of half a second while they run,
    /// `busy.rs`): after using `c` of CPU time while other namespaces'
    /// threads did work too, it rests `c × (100 − share) / share` before
    /// its next job (100: no rest). Default: 25.
    cpu_share_percent: usize = 25, api cpu_share_percent;
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
        if let Some(name) = self.first_zero() {
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
