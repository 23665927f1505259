//! Sandbox limits as the node's API and state file spell them: whole
//! numbers with their unit in the name, every field optional so that a
//! namespace overrides only what it names. Both types are made, with the
//! runtime's [`aether_runtime::SandboxLimits`], from the one definition of
//! each limit in the runtime (`limits.rs`).

pub use aether_runtime::{EffectiveLimits, LimitOverrides};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use aether_runtime::SandboxLimits;

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
