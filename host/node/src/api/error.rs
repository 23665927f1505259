//! The API's errors: an HTTP status, a stable `error` code for programs and
//! a `message` for people, always as a JSON body. The codes are listed in
//! `docs/api.md`; change one only with a new API version.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use aether_core::namespace::InvalidName;
use aether_runtime::{CommandError, DeployError, GuestFailureKind, InvalidLimits};
use aether_store::StoreError;

use super::super::registry::RegistryError;
use super::super::tenants::TenantError;

/// An error the API returns.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code, e.g. `version_conflict`.
    pub code: &'static str,
    /// What happened and what to do about it.
    pub message: String,
    /// More fields for programs (e.g. `expected` and `actual`).
    pub details: Map<String, Value>,
}

impl ApiError {
    /// An error without details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
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

    /// 400 `malformed_request`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown token: send `Authorization: Bearer <token>`",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 507 `storage_quota_exceeded`: a namespace's stored event or
    /// component bytes (`stored`) would pass its quota (`limit`) by
    /// `adding` more; nothing was stored.
    pub fn storage_quota(message: impl Into<String>, stored: u64, adding: u64, limit: u64) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_quota_exceeded",
            message,
        )
        .with("stored_bytes", json!(stored))
        .with("adding_bytes", json!(adding))
        .with("limit", json!(limit))
    }

    /// 429 `too_many_uploads`: the namespace already has its
    /// `max_concurrent_uploads` component uploads in progress on this node.
    pub fn too_many_uploads(namespace: impl std::fmt::Display, limit: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            format!(
                "namespace `{namespace}` already has {limit} component uploads in progress on this node (max_concurrent_uploads): retry when one is done"
            ),
        )
        .with("limit", json!(limit))
    }

    /// The outcome label of this error in the metrics.
    pub fn outcome(&self) -> &'static str {
        match self.code {
            "rejected" => "rejected",
            "version_conflict" => "conflict",
            code if guest_failure_code(code) => "guest_failure",
            "quota_exceeded"
            | "payload_too_large"
            | "decision_over_limit"
            | "view_too_large"
            | "storage_quota_exceeded"
            | "too_many_uploads"
            | "too_many_streams" => "refused",
            _ => "error",
        }
    }
}

impl ApiError {
    /// The JSON body: the details, `error` and `message`.
    pub fn body(&self) -> Value {
        let mut body = self.details.clone();
        body.insert("error".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message.clone()));
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

const GUEST_FAILURE_CODES: [&str; 6] = [
    "component_trapped",
    "deadline_exceeded",
    "memory_limit_exceeded",
    "fuel_exhausted",
    "apply_failed",
    "instantiate_failed",
];

/// Whether `code` is one of a guest failure's codes.
pub fn guest_failure_code(code: &str) -> bool {
    GUEST_FAILURE_CODES.contains(&code)
}

impl From<InvalidName> for ApiError {
    fn from(error: InvalidName) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_name", error.to_string())
            .with("kind", json!(error.kind().to_string()))
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let code = match error {
            StoreError::Corrupt { .. } => "store_corrupt",
            _ => "store_unavailable",
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, error.to_string())
    }
}

impl From<TenantError> for ApiError {
    fn from(error: TenantError) -> Self {
        match error {
            TenantError::UnknownNamespace(_) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_namespace",
                error.to_string(),
            ),
            TenantError::Exists(_) => {
                Self::new(StatusCode::CONFLICT, "namespace_exists", error.to_string())
            }
            TenantError::UnknownToken(..) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_token",
                format!("{error}: `GET /v1/namespaces/{{ns}}/tokens` lists the ids of its tokens"),
            ),
            TenantError::Io(e) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{e:#}"),
            ),
        }
    }
}

impl From<InvalidLimits> for ApiError {
    fn from(error: InvalidLimits) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_limits", error.to_string())
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        match error {
            DeployError::TooLarge { .. } => Self::too_large(error.to_string()),
            DeployError::Load(load) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_component",
                load.to_string(),
            ),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let message = error.to_string();
        match error {
            RegistryError::Deploy(deploy) => deploy.into(),
            RegistryError::UnknownComponent(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_component", message)
            }
            RegistryError::NothingToRollBack(_) => {
                Self::new(StatusCode::CONFLICT, "nothing_to_roll_back", message)
            }
            RegistryError::Conflict(_) => Self::new(
                StatusCode::CONFLICT,
                "registry_conflict",
                format!(
                    "{message}: another deployment changed the registry at the same time; look and try again"
                ),
            ),
            RegistryError::Store(store) => store.into(),
            RegistryError::StorageQuota {
                stored,
                adding,
                limit,
            } => Self::storage_quota(message, stored, adding, limit),
            RegistryError::Damaged(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_corrupt", message)
            }
            RegistryError::VerificationFailed(report) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "verification_failed",
                message,
            )
            .with("verification", json!(report)),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let message = error.to_string();
        match error {
            CommandError::UnknownAggregateType { aggregate_type, .. } => {
                Self::new(StatusCode::NOT_FOUND, "unknown_aggregate_type", message)
                    .with("aggregate_type", json!(aggregate_type.as_str()))
            }
            CommandError::InvalidName(name) => name.into(),
            CommandError::Malformed(_) => {
                Self::new(StatusCode::BAD_REQUEST, "malformed_command", message)
            }
            CommandError::CommandTooLarge { size, limit } => Self::too_large(message)
                .with("size", json!(size))
                .with("limit", json!(limit)),
            CommandError::DecisionTooLarge(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "decision_over_limit",
                message,
            ),
            CommandError::ViewTooLarge { size, limit } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "view_too_large", message)
                    .with("size", json!(size))
                    .with("limit", json!(limit))
            }
            CommandError::QuotaExceeded { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
            }
            CommandError::StorageQuotaExceeded {
                stored,
                adding,
                limit,
                ..
            } => Self::storage_quota(message, stored, adding, limit),
            CommandError::Rejected(rejection) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message)
                    .with("rejection", json!(rejection))
            }
            CommandError::Conflict(conflict) => {
                Self::new(StatusCode::CONFLICT, "version_conflict", message)
                    .with("expected", json!(conflict.expected))
                    .with("actual", json!(conflict.actual))
            }
            CommandError::Guest(failure) => {
                let code = match failure.kind {
                    GuestFailureKind::DeadlineExceeded => "deadline_exceeded",
                    GuestFailureKind::MemoryLimit => "memory_limit_exceeded",
                    GuestFailureKind::FuelExhausted => "fuel_exhausted",
                    GuestFailureKind::ApplyFailed => "apply_failed",
                    GuestFailureKind::Instantiate => "instantiate_failed",
                    _ => "component_trapped",
                };
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
            }
            CommandError::Store(store) => store.into(),
            CommandError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
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
    fn every_guest_failure_code_counts_as_a_guest_failure() {
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
            let error = ApiError::from(CommandError::Guest(failure));
            assert_eq!(error.outcome(), "guest_failure", "{kind:?}");
        }
    }

    #[test]
    fn a_conflict_carries_both_versions() {
        let conflict = VersionConflict {
            stream: aether_core::namespace::layout::parse_stream_key("a/b/c").unwrap(),
            expected: 2,
            actual: 5,
        };
        let error = ApiError::from(CommandError::Conflict(conflict));
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.details["expected"], json!(2));
        assert_eq!(error.details["actual"], json!(5));
        assert_eq!(error.outcome(), "conflict");
    }
}
