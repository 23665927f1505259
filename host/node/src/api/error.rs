//! The API's errors: [`ServiceError`]s (a stable `error` code for
//! programs, a `message` for people and details) sent as an HTTP status
//! and a JSON body. The codes, their statuses and their metrics outcomes
//! are defined once, in `aether_service::ErrorCode`, and listed in
//! `docs/api.md`; change one only with a new API version.

use std::ops::Deref;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use aether_core::namespace::InvalidName;
use aether_runtime::{CommandError, DeployError, InvalidLimits};
use aether_service::{ErrorCode, ServiceError};
use aether_store::StoreError;

use super::super::registry::RegistryError;
use super::super::tenants::TenantError;

/// An error the API returns: a [`ServiceError`] on its way out over HTTP.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl Deref for ApiError {
    type Target = ServiceError;

    fn deref(&self) -> &ServiceError {
        &self.0
    }
}

impl ApiError {
    /// An error without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ServiceError::new(code, message))
    }

    /// Adds a field for programs.
    pub fn with(self, key: &str, value: serde_json::Value) -> Self {
        Self(self.0.with(key, value))
    }

    /// `malformed_request`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self(ServiceError::malformed(message))
    }

    /// `unauthorized`.
    pub fn unauthorized() -> Self {
        Self(ServiceError::unauthorized())
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self(ServiceError::forbidden(message))
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self(ServiceError::not_found(message))
    }

    /// `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self(ServiceError::too_large(message))
    }

    /// `too_many_uploads`.
    pub fn too_many_uploads(namespace: impl std::fmt::Display, limit: usize) -> Self {
        Self(ServiceError::too_many_uploads(namespace, limit))
    }

    /// The HTTP status of its code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.http_status())
            .expect("every error code has a valid HTTP status")
    }

    /// The outcome label of this error in the metrics.
    pub fn outcome(&self) -> &'static str {
        self.0.code.outcome()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.0.body())).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self(error)
    }
}

/// The errors of the layers below, mapped once to a [`ServiceError`].
macro_rules! through_the_service {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                Self(ServiceError::from(error))
            }
        }
    )*};
}

through_the_service!(
    InvalidName,
    StoreError,
    InvalidLimits,
    DeployError,
    CommandError,
    TenantError,
    RegistryError,
);

impl From<TenantError> for ServiceError {
    fn from(error: TenantError) -> Self {
        match error {
            TenantError::UnknownNamespace(_) => {
                Self::new(ErrorCode::UnknownNamespace, error.to_string())
            }
            TenantError::Exists(_) => Self::new(ErrorCode::NamespaceExists, error.to_string()),
            TenantError::UnknownToken(..) => Self::new(
                ErrorCode::UnknownToken,
                format!("{error}: `GET /v1/namespaces/{{ns}}/tokens` lists the ids of its tokens"),
            ),
            TenantError::Io(e) => Self::new(ErrorCode::StoreUnavailable, format!("{e:#}")),
        }
    }
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        let message = error.to_string();
        match error {
            RegistryError::Deploy(deploy) => deploy.into(),
            RegistryError::UnknownComponent(_) => Self::new(ErrorCode::UnknownComponent, message),
            RegistryError::NothingToRollBack(_) => Self::new(ErrorCode::NothingToRollBack, message),
            RegistryError::Conflict(_) => Self::new(
                ErrorCode::RegistryConflict,
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
            RegistryError::Damaged(_) => Self::new(ErrorCode::StoreCorrupt, message),
            RegistryError::VerificationFailed(report) => {
                Self::new(ErrorCode::VerificationFailed, message)
                    .with("verification", json!(report))
            }
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
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert_eq!(error.details["expected"], json!(2));
        assert_eq!(error.details["actual"], json!(5));
        assert_eq!(error.outcome(), "conflict");
    }
}
