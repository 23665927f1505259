//! The requests: what a caller asks, before the service has checked it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ServiceError;
use aether_core::namespace::{AggregateId, AggregateType, Namespace};
use aether_runtime::{CommandRequest, JSON};
use aether_store::StreamId;

/// Events a page of an aggregate's events holds at most.
pub const MAX_PAGE: usize = 10_000;

/// The longest command, correlation or causation id accepted.
pub const MAX_ID_BYTES: usize = 128;

/// An aggregate as a caller names it (a URL path, CLI arguments), before
/// its names are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRef {
    /// The namespace.
    pub namespace: String,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub id: String,
}

impl AggregateRef {
    /// The aggregate in `namespace` (already checked).
    pub fn stream_in(&self, namespace: Namespace) -> Result<StreamId, ServiceError> {
        Ok(StreamId::new(
            namespace,
            AggregateType::new(self.aggregate_type.clone())?,
            AggregateId::new(self.id.clone())?,
        ))
    }
}

/// A command to send: the body of `POST …/commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCommand {
    /// The command's type, e.g. `Deposit`.
    #[serde(rename = "type")]
    pub command_type: String,
    /// The command's JSON payload (default `null`).
    #[serde(default)]
    pub data: Value,
    /// Carry the command out only at this version (else `version_conflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Makes retries idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Groups everything that follows from one original request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The id of the message that caused this command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

impl SendCommand {
    /// The runtime's request for `stream`, once the ids are checked.
    pub fn into_request(self, stream: StreamId) -> Result<CommandRequest, ServiceError> {
        check_id("command_id", &self.command_id)?;
        check_id("correlation_id", &self.correlation_id)?;
        check_id("causation_id", &self.causation_id)?;
        let data = serde_json::to_vec(&self.data).map_err(|e| {
            ServiceError::malformed(format!("the command data cannot be encoded: {e}"))
        })?;
        Ok(CommandRequest {
            stream,
            command_type: self.command_type,
            content_type: JSON.to_owned(),
            data,
            expected_version: self.expected_version,
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        })
    }
}

/// Refuses an id (`field`) that is empty, longer than [`MAX_ID_BYTES`] or
/// has control characters.
pub fn check_id(field: &str, id: &Option<String>) -> Result<(), ServiceError> {
    let Some(id) = id else { return Ok(()) };
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(ServiceError::malformed(format!(
            "`{field}` must be 1 to {MAX_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// Which of an aggregate's events to read: the query of `GET …/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The first version to return (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// At most this many events (default and maximum [`MAX_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl EventsQuery {
    /// The first version and the page size, or `malformed_request`.
    pub fn checked(&self) -> Result<(u64, usize), ServiceError> {
        let from = self.from.unwrap_or(1);
        if from == u64::MAX {
            return Err(past_any("`from`", from));
        }
        let limit = self.limit.unwrap_or(MAX_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ServiceError::malformed(format!(
                "`limit` must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok((from.max(1), limit))
    }
}

/// The `malformed_request` for a start point (`parameter`) of `u64::MAX`:
/// no event can come after it and "the next one" would not fit.
pub fn past_any(parameter: &str, value: u64) -> ServiceError {
    ServiceError::malformed(format!(
        "{parameter} is {value}, past any version or log position: it must be at most {}",
        u64::MAX - 1
    ))
}
