//! [`ServiceError`]: a code, a message for people and details for
//! programs; and how the runtime's, store's and names' errors map to it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ErrorCode;
use aether_core::namespace::InvalidName;
use aether_runtime::{CommandError, DeployError, GuestFailureKind, InvalidLimits};
use aether_store::StoreError;

/// An error the service answers: the same over HTTP (as the status of
/// [`ErrorCode::http_status`] and the body of [`ServiceError::body`]), over
/// NATS and from a shard owner to the node that forwarded the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ServiceError {
    /// The stable code, e.g. `version_conflict`.
    pub code: ErrorCode,
    /// What happened and what to do about it.
    pub message: String,
    /// More fields for programs (e.g. `expected` and `actual`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl ServiceError {
    /// An error without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a field for programs.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// The HTTP status of its code.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The JSON body: the details, `error` and `message` (keys in order).
    pub fn body(&self) -> Value {
        let mut body = self.details.clone();
        body.insert("error".into(), Value::from(self.code.as_str()));
        body.insert("message".into(), Value::from(self.message.clone()));
        Value::Object(body)
    }

    /// The error of an API error body (`error`, `message` and the rest as
    /// details); `None` if the body has no code this build knows.
    pub fn from_body(body: &Value) -> Option<Self> {
        let mut details = body.as_object()?.clone();
        let code = details.remove("error")?.as_str()?.parse().ok()?;
        let message = match details.remove("message") {
            Some(Value::String(message)) => message,
            _ => String::new(),
        };
        Some(Self {
            code,
            message,
            details,
        })
    }

    /// `malformed_request`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, message)
    }

    /// `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or unknown token: send `Authorization: Bearer <token>`",
        )
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    /// `storage_quota_exceeded`: a namespace's stored event or component
    /// bytes (`stored`) would pass its quota (`limit`) by `adding` more;
    /// nothing was stored.
    pub fn storage_quota(message: impl Into<String>, stored: u64, adding: u64, limit: u64) -> Self {
        Self::new(ErrorCode::StorageQuotaExceeded, message)
            .with("stored_bytes", json!(stored))
            .with("adding_bytes", json!(adding))
            .with("limit", json!(limit))
    }

    /// `too_many_uploads`: the namespace already has its
    /// `max_concurrent_uploads` component uploads in progress on this node.
    pub fn too_many_uploads(namespace: impl std::fmt::Display, limit: usize) -> Self {
        Self::new(
            ErrorCode::TooManyUploads,
            format!(
                "namespace `{namespace}` already has {limit} component uploads in progress on this node (max_concurrent_uploads): retry when one is done"
            ),
        )
        .with("limit", json!(limit))
    }

    /// `shutting_down`.
    pub fn shutting_down(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ShuttingDown, message)
    }
}

impl From<InvalidName> for ServiceError {
    fn from(error: InvalidName) -> Self {
        Self::new(ErrorCode::InvalidName, error.to_string())
            .with("kind", json!(error.kind().to_string()))
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        let code = match error {
            StoreError::Corrupt { .. } => ErrorCode::StoreCorrupt,
            _ => ErrorCode::StoreUnavailable,
        };
        Self::new(code, error.to_string())
    }
}

impl From<InvalidLimits> for ServiceError {
    fn from(error: InvalidLimits) -> Self {
        Self::new(ErrorCode::InvalidLimits, error.to_string())
    }
}

impl From<DeployError> for ServiceError {
    fn from(error: DeployError) -> Self {
        match error {
            DeployError::TooLarge { .. } => Self::too_large(error.to_string()),
            DeployError::Load(load) => Self::new(ErrorCode::InvalidComponent, load.to_string()),
        }
    }
}

impl From<CommandError> for ServiceError {
    fn from(error: CommandError) -> Self {
        let message = error.to_string();
        match error {
            CommandError::UnknownAggregateType { aggregate_type, .. } => {
                Self::new(ErrorCode::UnknownAggregateType, message)
                    .with("aggregate_type", json!(aggregate_type.as_str()))
            }
            CommandError::InvalidName(name) => name.into(),
            CommandError::Malformed(_) => Self::new(ErrorCode::MalformedCommand, message),
            CommandError::CommandTooLarge { size, limit } => Self::too_large(message)
                .with("size", json!(size))
                .with("limit", json!(limit)),
            CommandError::DecisionTooLarge(_) => Self::new(ErrorCode::DecisionOverLimit, message),
            CommandError::ViewTooLarge { size, limit } => {
                Self::new(ErrorCode::ViewTooLarge, message)
                    .with("size", json!(size))
                    .with("limit", json!(limit))
            }
            CommandError::QuotaExceeded { .. } => Self::new(ErrorCode::QuotaExceeded, message),
            CommandError::StorageQuotaExceeded {
                stored,
                adding,
                limit,
                ..
            } => Self::storage_quota(message, stored, adding, limit),
            CommandError::Rejected(rejection) => {
                Self::new(ErrorCode::Rejected, message).with("rejection", json!(rejection))
            }
            CommandError::Conflict(conflict) => Self::new(ErrorCode::VersionConflict, message)
                .with("expected", json!(conflict.expected))
                .with("actual", json!(conflict.actual)),
            CommandError::Guest(failure) => {
                let code = match failure.kind {
                    GuestFailureKind::DeadlineExceeded => ErrorCode::DeadlineExceeded,
                    GuestFailureKind::MemoryLimit => ErrorCode::MemoryLimitExceeded,
                    GuestFailureKind::FuelExhausted => ErrorCode::FuelExhausted,
                    GuestFailureKind::ApplyFailed => ErrorCode::ApplyFailed,
                    GuestFailureKind::Instantiate => ErrorCode::InstantiateFailed,
                    _ => ErrorCode::ComponentTrapped,
                };
                Self::new(code, message)
            }
            CommandError::Store(store) => store.into(),
            CommandError::Stopped => Self::shutting_down(
                "the node is shutting down: retry on another node or after it restarts",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_runtime::GuestFailure;
    use aether_store::VersionConflict;

    #[test]
    fn every_guest_failure_counts_as_a_guest_failure() {
        for kind in [
            GuestFailureKind::Trap,
            GuestFailureKind::DeadlineExceeded,
            GuestFailureKind::MemoryLimit,
            GuestFailureKind::FuelExhausted,
            GuestFailureKind::ApplyFailed,
            GuestFailureKind::Instantiate,
        ] {
            let failure = GuestFailure {
                kind,
                message: "x".into(),
            };
            let error = ServiceError::from(CommandError::Guest(failure));
            assert!(error.code.is_guest_failure(), "{kind:?}");
            assert_eq!(error.code.outcome(), "guest_failure", "{kind:?}");
            assert_eq!(error.http_status(), 500);
        }
    }

    #[test]
    fn a_conflict_carries_both_versions_and_its_body_is_the_apis() {
        let conflict = VersionConflict {
            stream: aether_core::namespace::layout::parse_stream_key("a/b/c").unwrap(),
            expected: 2,
            actual: 5,
        };
        let error = ServiceError::from(CommandError::Conflict(conflict));
        assert_eq!(error.http_status(), 409);
        assert_eq!(error.code.outcome(), "conflict");
        let body = serde_json::to_string(&error.body()).unwrap();
        assert_eq!(
            body,
            format!(
                r#"{{"actual":5,"error":"version_conflict","expected":2,"message":{}}}"#,
                serde_json::to_string(&error.message).unwrap()
            )
        );
        assert_eq!(ServiceError::from_body(&error.body()), Some(error));
    }

    #[test]
    fn an_error_crosses_the_wire_unchanged() {
        let error = ServiceError::storage_quota("full", 1, 2, 3);
        let bytes = serde_json::to_vec(&error).unwrap();
        assert_eq!(
            serde_json::from_slice::<ServiceError>(&bytes).unwrap(),
            error
        );
    }
}
