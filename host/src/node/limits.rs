//! Sandbox limits as the node's API and state file spell them: whole
//! numbers with their unit in the name, every field optional so that a
//! namespace overrides only what it names.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::SandboxLimits;

/// A namespace's overrides of the node's default limits. Unknown fields are
/// refused, so a misspelt limit is an error rather than silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Memory per guest instance, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Wall-clock deadline of one guest call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_deadline_ms: Option<u64>,
    /// Fuel per guest call (needs a node started with fuel metering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_call: Option<u64>,
    /// Largest command payload, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_command_bytes: Option<u64>,
    /// Largest event payload, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_bytes: Option<u64>,
    /// Most events per command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events_per_command: Option<u64>,
    /// Live aggregates kept in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_live_aggregates: Option<u64>,
    /// Commands in the node at once before more are refused (429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_commands: Option<u64>,
    /// Largest JSON view a state read returns, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_view_bytes: Option<u64>,
    /// Live event streams open at once before more are refused (429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_live_streams: Option<u64>,
    /// Bytes of event payloads the namespace may store in all (507).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stored_event_bytes: Option<u64>,
    /// Bytes of components the namespace may store in all (507).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stored_component_bytes: Option<u64>,
    /// Component uploads in progress at once on a node (429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_uploads: Option<u64>,
}

/// Every limit a namespace runs under, as the API reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimits {
    /// See [`SandboxLimits::memory_bytes`].
    pub memory_bytes: u64,
    /// See [`SandboxLimits::call_deadline`].
    pub call_deadline_ms: u64,
    /// See [`SandboxLimits::fuel_per_call`].
    pub fuel_per_call: Option<u64>,
    /// See [`SandboxLimits::max_command_bytes`].
    pub max_command_bytes: u64,
    /// See [`SandboxLimits::max_event_bytes`].
    pub max_event_bytes: u64,
    /// See [`SandboxLimits::max_events_per_command`].
    pub max_events_per_command: u64,
    /// See [`SandboxLimits::max_live_aggregates`].
    pub max_live_aggregates: u64,
    /// See [`SandboxLimits::max_pending_commands`].
    pub max_pending_commands: u64,
    /// See [`SandboxLimits::max_view_bytes`].
    pub max_view_bytes: u64,
    /// See [`SandboxLimits::max_live_streams`].
    pub max_live_streams: u64,
    /// See [`SandboxLimits::max_stored_event_bytes`].
    pub max_stored_event_bytes: u64,
    /// See [`SandboxLimits::max_stored_component_bytes`].
    pub max_stored_component_bytes: u64,
    /// See [`SandboxLimits::max_concurrent_uploads`].
    pub max_concurrent_uploads: u64,
}

fn size(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl LimitOverrides {
    /// The node's `defaults` with these overrides applied.
    pub fn apply(&self, defaults: &SandboxLimits) -> SandboxLimits {
        SandboxLimits {
            memory_bytes: self.memory_bytes.map_or(defaults.memory_bytes, size),
            call_deadline: self
                .call_deadline_ms
                .map_or(defaults.call_deadline, Duration::from_millis),
            fuel_per_call: self.fuel_per_call.or(defaults.fuel_per_call),
            max_command_bytes: self
                .max_command_bytes
                .map_or(defaults.max_command_bytes, size),
            max_event_bytes: self.max_event_bytes.map_or(defaults.max_event_bytes, size),
            max_events_per_command: self
                .max_events_per_command
                .map_or(defaults.max_events_per_command, size),
            max_live_aggregates: self
                .max_live_aggregates
                .map_or(defaults.max_live_aggregates, size),
            max_pending_commands: self
                .max_pending_commands
                .map_or(defaults.max_pending_commands, size),
            max_view_bytes: self.max_view_bytes.map_or(defaults.max_view_bytes, size),
            max_live_streams: self
                .max_live_streams
                .map_or(defaults.max_live_streams, size),
            max_stored_event_bytes: self
                .max_stored_event_bytes
                .unwrap_or(defaults.max_stored_event_bytes),
            max_stored_component_bytes: self
                .max_stored_component_bytes
                .unwrap_or(defaults.max_stored_component_bytes),
            max_concurrent_uploads: self
                .max_concurrent_uploads
                .map_or(defaults.max_concurrent_uploads, size),
        }
    }

    /// These overrides with `newer`'s fields laid over them.
    pub fn merged(&self, newer: &LimitOverrides) -> LimitOverrides {
        LimitOverrides {
            memory_bytes: newer.memory_bytes.or(self.memory_bytes),
            call_deadline_ms: newer.call_deadline_ms.or(self.call_deadline_ms),
            fuel_per_call: newer.fuel_per_call.or(self.fuel_per_call),
            max_command_bytes: newer.max_command_bytes.or(self.max_command_bytes),
            max_event_bytes: newer.max_event_bytes.or(self.max_event_bytes),
            max_events_per_command: newer.max_events_per_command.or(self.max_events_per_command),
            max_live_aggregates: newer.max_live_aggregates.or(self.max_live_aggregates),
            max_pending_commands: newer.max_pending_commands.or(self.max_pending_commands),
            max_view_bytes: newer.max_view_bytes.or(self.max_view_bytes),
            max_live_streams: newer.max_live_streams.or(self.max_live_streams),
            max_stored_event_bytes: newer.max_stored_event_bytes.or(self.max_stored_event_bytes),
            max_stored_component_bytes: newer
                .max_stored_component_bytes
                .or(self.max_stored_component_bytes),
            max_concurrent_uploads: newer.max_concurrent_uploads.or(self.max_concurrent_uploads),
        }
    }
}

impl From<&SandboxLimits> for EffectiveLimits {
    fn from(limits: &SandboxLimits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes as u64,
            call_deadline_ms: u64::try_from(limits.call_deadline.as_millis()).unwrap_or(u64::MAX),
            fuel_per_call: limits.fuel_per_call,
            max_command_bytes: limits.max_command_bytes as u64,
            max_event_bytes: limits.max_event_bytes as u64,
            max_events_per_command: limits.max_events_per_command as u64,
            max_live_aggregates: limits.max_live_aggregates as u64,
            max_pending_commands: limits.max_pending_commands as u64,
            max_view_bytes: limits.max_view_bytes as u64,
            max_live_streams: limits.max_live_streams as u64,
            max_stored_event_bytes: limits.max_stored_event_bytes,
            max_stored_component_bytes: limits.max_stored_component_bytes,
            max_concurrent_uploads: limits.max_concurrent_uploads as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_name() {
        let defaults = SandboxLimits::default();
        let overrides: LimitOverrides =
            serde_json::from_str(r#"{"call_deadline_ms": 50, "max_events_per_command": 3}"#)
                .unwrap();
        let limits = overrides.apply(&defaults);
        assert_eq!(limits.call_deadline, Duration::from_millis(50));
        assert_eq!(limits.max_events_per_command, 3);
        assert_eq!(limits.memory_bytes, defaults.memory_bytes);
        let later = overrides.merged(&LimitOverrides {
            max_events_per_command: Some(9),
            ..LimitOverrides::default()
        });
        assert_eq!(later.call_deadline_ms, Some(50));
        assert_eq!(later.max_events_per_command, Some(9));
    }

    #[test]
    fn a_misspelt_limit_is_refused() {
        let error = serde_json::from_str::<LimitOverrides>(r#"{"memory": 1}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `memory`"),
            "{error}"
        );
    }
}
