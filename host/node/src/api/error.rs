//! The API's errors: an HTTP status, a stable `error` code for programs and
//! a `message` for people, always as a JSON body. The codes are listed in
//! `docs/api.md`; change one only with a new API version.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use aether_core::namespace::InvalidName;
use aether_runtime::{CommandError, DeployError, InvalidLimits};
use aether_service::{ErrorCode, ServiceError};
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

    /// The outcome label of this error in the metrics (its
    /// [`ErrorCode::outcome`]).
    pub fn outcome(&self) -> &'static str {
        self.code
            .parse::<ErrorCode>()
            .map_or("error", ErrorCode::outcome)
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

/// Whether `code` is one of a guest failure's codes.
pub fn guest_failure_code(code: &str) -> bool {
    code.parse::<ErrorCode>()
        .is_ok_and(ErrorCode::is_guest_failure)
}

/// The service's errors, with the status their code has everywhere.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self {
            status: StatusCode::from_u16(error.http_status())
                .expect("every error code has a valid HTTP status"),
            code: error.code.as_str(),
            message: error.message,
            details: error.details,
        }
    }
}

/// The errors of the layers below, mapped once in `aether-service`.
macro_rules! through_the_service {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                ServiceError::from(error).into()
            }
        }
    )*};
}

through_the_service!(
    InvalidName,
    StoreError,
    InvalidLimits,
    DeployError,
    CommandError
);

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

#[cfg(test)]
mod tests {
    use super::*;
    use aether_runtime::{GuestFailure, GuestFailureKind};
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
