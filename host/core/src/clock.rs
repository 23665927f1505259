//! The wall clock events are stamped with.

use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that shifts this process's wall clock by a
/// signed number of milliseconds: a testing knob for a node with a clock
/// that is behind or ahead (the fault suite runs one). Ownership of shards
/// never reads the wall clock, only event timestamps do.
pub const CLOCK_SKEW_ENV: &str = "AETHER_CLOCK_SKEW_MS";

/// Milliseconds since the Unix epoch, shifted by [`CLOCK_SKEW_ENV`] if set.
pub fn now_ms() -> u64 {
    static SKEW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let skew = *SKEW.get_or_init(|| {
        std::env::var(CLOCK_SKEW_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now.saturating_add(skew).max(0) as u64
}
