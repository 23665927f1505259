//! The stable error codes: one entry each, with its HTTP status and what
//! it counts as in the metrics. `docs/api.md` lists the same codes with
//! the same statuses (a test in `aether-host` compares them).

use serde::{Deserialize, Serialize};

/// What a command or request that failed counts as in
/// `aether_commands_total{outcome=…}`.
const REJECTED: &str = "rejected";
const CONFLICT: &str = "conflict";
const GUEST_FAILURE: &str = "guest_failure";
const REFUSED: &str = "refused";
const ERROR: &str = "error";

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $outcome:expr), )*) => {
        /// A stable error code: the `error` field of every error body.
        /// Change one only with a new API version.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of `docs/api.md`'s table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as the API spells it, e.g. `version_conflict`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status the API answers it with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Its outcome label in the command metrics.
            pub fn outcome(self) -> &'static str {
                match self { $(ErrorCode::$variant => $outcome,)* }
            }
        }

        impl std::str::FromStr for ErrorCode {
            type Err = UnknownCode;
            fn from_str(code: &str) -> Result<Self, UnknownCode> {
                match code {
                    $($code => Ok(ErrorCode::$variant),)*
                    _ => Err(UnknownCode(code.to_owned())),
                }
            }
        }
    };
}

error_codes! {
    /// The body, path or query is not what the endpoint expects.
    MalformedRequest = ("malformed_request", 400, ERROR),
    /// The command is empty or the component found it malformed.
    MalformedCommand = ("malformed_command", 400, ERROR),
    /// A namespace, aggregate type or id breaks the naming rules.
    InvalidName = ("invalid_name", 400, ERROR),
    /// Limits the node cannot honour.
    InvalidLimits = ("invalid_limits", 400, ERROR),
    /// No token, or one the node does not know.
    Unauthorized = ("unauthorized", 401, ERROR),
    /// The token does not reach this namespace, or it needs the admin token.
    Forbidden = ("forbidden", 403, ERROR),
    /// The namespace was never created.
    UnknownNamespace = ("unknown_namespace", 404, ERROR),
    /// No component is deployed for the type in this namespace.
    UnknownAggregateType = ("unknown_aggregate_type", 404, ERROR),
    /// No such endpoint.
    NotFound = ("not_found", 404, ERROR),
    /// Activating a digest never deployed in this namespace.
    UnknownComponent = ("unknown_component", 404, ERROR),
    /// The type has no earlier component.
    NothingToRollBack = ("nothing_to_roll_back", 409, ERROR),
    /// Two deployments of the namespace at the same moment.
    RegistryConflict = ("registry_conflict", 409, ERROR),
    /// A verified deploy's replays failed; nothing was activated.
    VerificationFailed = ("verification_failed", 422, ERROR),
    /// The endpoint does not take that method.
    MethodNotAllowed = ("method_not_allowed", 405, ERROR),
    /// `expected_version` is not the aggregate's version.
    VersionConflict = ("version_conflict", 409, CONFLICT),
    /// Creating a namespace that exists.
    NamespaceExists = ("namespace_exists", 409, ERROR),
    /// Revoking a token id the namespace does not have.
    UnknownToken = ("unknown_token", 404, ERROR),
    /// The body, a command payload or a component is too large.
    PayloadTooLarge = ("payload_too_large", 413, REFUSED),
    /// A JSON endpoint without `application/json`, a deploy without wasm.
    UnsupportedContentType = ("unsupported_content_type", 415, ERROR),
    /// The aggregate refused the command; nothing was stored.
    Rejected = ("rejected", 422, REJECTED),
    /// The aggregate decided more or larger events than the namespace allows.
    DecisionOverLimit = ("decision_over_limit", 422, REFUSED),
    /// The bytes are not a valid aggregate component, or import too much.
    InvalidComponent = ("invalid_component", 422, ERROR),
    /// The aggregate's view is larger than `max_view_bytes`.
    ViewTooLarge = ("view_too_large", 422, REFUSED),
    /// The namespace already has `max_pending_commands` commands in the node.
    QuotaExceeded = ("quota_exceeded", 429, REFUSED),
    /// The namespace already has `max_live_streams` live event streams.
    TooManyStreams = ("too_many_streams", 429, REFUSED),
    /// The namespace already has `max_concurrent_uploads` uploads.
    TooManyUploads = ("too_many_uploads", 429, REFUSED),
    /// The namespace's stored bytes would pass its quota.
    StorageQuotaExceeded = ("storage_quota_exceeded", 507, REFUSED),
    /// The aggregate's component trapped.
    ComponentTrapped = ("component_trapped", 500, GUEST_FAILURE),
    /// The guest call ran past `call_deadline_ms`.
    DeadlineExceeded = ("deadline_exceeded", 500, GUEST_FAILURE),
    /// The guest grew past `memory_bytes`.
    MemoryLimitExceeded = ("memory_limit_exceeded", 500, GUEST_FAILURE),
    /// The guest used up `fuel_per_call`.
    FuelExhausted = ("fuel_exhausted", 500, GUEST_FAILURE),
    /// The component could not apply a stored event.
    ApplyFailed = ("apply_failed", 500, GUEST_FAILURE),
    /// The component could not start.
    InstantiateFailed = ("instantiate_failed", 500, GUEST_FAILURE),
    /// The event store failed: retry later.
    StoreUnavailable = ("store_unavailable", 503, ERROR),
    /// The store (or the registry in it) is damaged: restore from a backup.
    StoreCorrupt = ("store_corrupt", 503, ERROR),
    /// The node is stopping.
    ShuttingDown = ("shutting_down", 503, ERROR),
    /// The node has `--max-connections` connections open.
    Overloaded = ("overloaded", 503, ERROR),
    /// The client has `--max-connections-per-address` connections open.
    TooManyConnections = ("too_many_connections", 429, ERROR),
    /// The request body arrived too slowly.
    RequestTimeout = ("request_timeout", 408, ERROR),
    /// Cluster: no node served the aggregate's shard in time: retry.
    ShardUnavailable = ("shard_unavailable", 503, ERROR),
    /// Cluster: the shard's owner did not answer in time.
    OwnerTimeout = ("owner_timeout", 504, ERROR),
    /// Cluster: the shard's owner sent an answer this node cannot read.
    ClusterError = ("cluster_error", 502, ERROR),
    /// `GET /v1/cluster` on a node that runs alone.
    NotClustered = ("not_clustered", 404, ERROR),
    /// `/readyz`: a cluster task of this node failed for good.
    ClusterFailed = ("cluster_failed", 503, ERROR),
}

impl ErrorCode {
    /// Whether it is one of a guest failure's codes (the component, not
    /// the caller or the node, failed).
    pub fn is_guest_failure(self) -> bool {
        self.outcome() == GUEST_FAILURE
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this build does not know (a newer node's?).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code `{0}`")]
pub struct UnknownCode(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_spelled_the_same_in_json_and_as_str() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::json!(code.as_str()));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        assert!("no_such_code".parse::<ErrorCode>().is_err());
    }

    /// The codes and statuses of `docs/api.md`'s error table.
    fn documented() -> Vec<(u16, String)> {
        let docs = include_str!("../../../docs/api.md");
        let table = &docs[docs
            .find("\n## Errors")
            .expect("docs/api.md has an Errors section")..];
        let table = &table[..table[1..].find("\n## ").map_or(table.len(), |end| end + 1)];
        let mut rows = Vec::new();
        for line in table.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(status) = cells.get(1).and_then(|c| c.parse::<u16>().ok()) else {
                continue;
            };
            for code in cells[2].split(',') {
                rows.push((status, code.trim().trim_matches('`').to_owned()));
            }
        }
        rows
    }

    #[test]
    fn docs_api_md_lists_every_code_with_its_status() {
        let documented = documented();
        assert!(documented.len() > 30, "{documented:?}");
        for code in ErrorCode::ALL {
            assert!(
                documented.contains(&(code.http_status(), code.as_str().to_owned())),
                "docs/api.md's error table lacks `{code}` with {}",
                code.http_status()
            );
        }
        for (status, code) in &documented {
            let known: ErrorCode = code
                .parse()
                .unwrap_or_else(|_| panic!("docs/api.md lists `{code}`, which is no ErrorCode"));
            assert_eq!(known.http_status(), *status, "{code}");
        }
    }
}
