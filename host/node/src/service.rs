//! The node's application service: every operation on aggregates and
//! components, typed, for a caller whose [`Principal`] is known.
//!
//! The HTTP handlers (`api/`) read and check the transport's part (the
//! path, the body's size and content type), then call these and write the
//! answer; a shard owner (`cluster.rs`) and the NATS submit subject call
//! them too. Answers are `aether_service`'s types, errors its
//! [`ServiceError`]: no JSON is built and no HTTP status chosen here.
//!
//! **Invariant:** every operation that takes a namespace checks that the
//! principal may use it ([`Node::namespace_for`]) before it reads or
//! writes anything of it; a tenant on another namespace gets `forbidden`
//! whether that namespace exists or not.

use std::time::Instant;

use aether_core::namespace::{AggregateType, Namespace};
use aether_runtime::CommandRequest;
use aether_service::{
    ActivationAnswer, AggregateRef, AggregateTypeAnswer, AggregateTypesAnswer, Answered,
    CommandAnswer, ErrorCode, EventsPage, EventsQuery, HistoryAnswer, SendCommand, ServiceError,
    StateAnswer, ops,
};
use aether_store::StreamId;

use super::registry::Activation;
use super::verify::VerifyReport;
use super::{Node, Principal, TenantError};

/// Which deploy: at once, or after replaying the type's streams (all of
/// them, or a sample of n) through the new component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Activate at once.
    No,
    /// Replay every stream of the type first.
    All,
    /// Replay a sample of this many streams first.
    Sample(usize),
}

impl Node {
    /// The principal behind a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<Principal, ServiceError> {
        self.tenants()
            .authenticate(token)
            .ok_or_else(ServiceError::unauthorized)
    }

    /// The namespace `name`, once `principal` may use it and it exists.
    pub fn namespace_for(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Namespace, ServiceError> {
        let namespace = Namespace::new(name)?;
        self.may_use(principal, &namespace)?;
        Ok(namespace)
    }

    /// Requires `principal` to be allowed `namespace`, and the namespace to
    /// exist.
    pub fn may_use(
        &self,
        principal: &Principal,
        namespace: &Namespace,
    ) -> Result<(), ServiceError> {
        if !principal.may_use(namespace) {
            return Err(ServiceError::forbidden(format!(
                "this token does not give access to namespace `{namespace}`"
            )));
        }
        if !self.tenants().exists(namespace) {
            return Err(TenantError::UnknownNamespace(namespace.clone()).into());
        }
        Ok(())
    }

    /// The aggregate `aggregate` names, once `principal` may use its
    /// namespace.
    pub fn stream_for(
        &self,
        principal: &Principal,
        aggregate: &AggregateRef,
    ) -> Result<StreamId, ServiceError> {
        let namespace = self.namespace_for(principal, &aggregate.namespace)?;
        aggregate.stream_in(namespace)
    }

    /// Carries out `command` on `aggregate` (in a cluster, on the node that
    /// owns its shard).
    pub async fn send(
        &self,
        principal: &Principal,
        aggregate: &AggregateRef,
        command: SendCommand,
    ) -> Result<CommandAnswer, ServiceError> {
        let started = Instant::now();
        let namespace = self.namespace_for(principal, &aggregate.namespace)?;
        let request = aggregate
            .stream_in(namespace.clone())
            .and_then(|stream| command.into_request(stream));
        match request {
            Ok(request) => self.send_request(request).await,
            Err(error) => {
                // Counted here: it never reaches a runtime.
                self.metrics()
                    .command(&namespace, error.code.outcome(), None, started.elapsed());
                Err(error)
            }
        }
    }

    /// Carries out a checked command (in a cluster, on the node that owns
    /// its shard).
    pub async fn send_request(
        &self,
        command: CommandRequest,
    ) -> Result<CommandAnswer, ServiceError> {
        let Some(cluster) = self.cluster() else {
            return self.run_command(command).await;
        };
        match cluster
            .route(aether_cluster::Routed::Command(command))
            .await?
        {
            Answered::Command(answer) => Ok(answer),
            Answered::State(_) => Err(mismatched("a command", "a state")),
        }
    }

    /// The aggregate's state (its component's view) and version (in a
    /// cluster, from the node that owns its shard).
    pub async fn state(
        &self,
        principal: &Principal,
        aggregate: &AggregateRef,
    ) -> Result<StateAnswer, ServiceError> {
        let stream = self.stream_for(principal, aggregate)?;
        let Some(cluster) = self.cluster() else {
            return self.read_state(&stream).await;
        };
        match cluster
            .route(aether_cluster::Routed::State { stream })
            .await?
        {
            Answered::State(answer) => Ok(answer),
            Answered::Command(_) => Err(mismatched("a state read", "a command")),
        }
    }

    /// A page of the aggregate's events, from the store (any node).
    pub async fn events(
        &self,
        principal: &Principal,
        aggregate: &AggregateRef,
        query: &EventsQuery,
    ) -> Result<EventsPage, ServiceError> {
        let stream = self.stream_for(principal, aggregate)?;
        ops::events(&**self.runtime().store(), &stream, query).await
    }

    /// The aggregate types deployed in `namespace`, with their digests.
    pub fn aggregate_types(
        &self,
        principal: &Principal,
        namespace: &Namespace,
    ) -> Result<AggregateTypesAnswer, ServiceError> {
        self.may_use(principal, namespace)?;
        Ok(self.deployed(namespace))
    }

    /// The aggregate types deployed in `namespace` (already authorised).
    pub(crate) fn deployed(&self, namespace: &Namespace) -> AggregateTypesAnswer {
        AggregateTypesAnswer {
            aggregate_types: self
                .runtime()
                .deployments()
                .into_iter()
                .filter(|(ns, _, _)| ns == namespace)
                .map(|(_, ty, digest)| AggregateTypeAnswer {
                    aggregate_type: ty.to_string(),
                    digest: digest.to_hex(),
                })
                .collect(),
        }
    }

    /// Deploys `bytes` as the component of `aggregate_type` (after the
    /// replays `verify` asks for; `progress(done, total)` follows them).
    pub async fn deploy_component(
        &self,
        principal: &Principal,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        bytes: Vec<u8>,
        verify: Verify,
        progress: impl Fn(usize, usize) + Send + Sync,
    ) -> Result<ActivationAnswer, ServiceError> {
        self.may_use(principal, namespace)?;
        let sample = match verify {
            Verify::No => {
                let activation = self.deploy(namespace, aggregate_type, bytes).await?;
                return Ok(activation_answer(namespace, &activation, None));
            }
            Verify::All => None,
            Verify::Sample(n) => Some(n),
        };
        let (activation, report) = self
            .deploy_verified(namespace, aggregate_type, bytes, sample, progress)
            .await?;
        Ok(activation_answer(namespace, &activation, Some(&report)))
    }

    /// The type's deployment history, oldest first, and its active digest.
    pub async fn history(
        &self,
        principal: &Principal,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<HistoryAnswer, ServiceError> {
        self.may_use(principal, namespace)?;
        let history = self.component_history(namespace, aggregate_type).await?;
        let active = self
            .runtime()
            .active_component(namespace, aggregate_type)
            .map(|c| c.digest().to_hex());
        Ok(HistoryAnswer {
            active,
            aggregate_type: aggregate_type.to_string(),
            history: history
                .iter()
                .map(|a| activation_answer(namespace, a, None))
                .collect(),
        })
    }

    /// Activates the component `digest`, deployed earlier in the namespace.
    pub async fn activate_component(
        &self,
        principal: &Principal,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        digest: &str,
    ) -> Result<ActivationAnswer, ServiceError> {
        self.may_use(principal, namespace)?;
        let activation = self.activate(namespace, aggregate_type, digest).await?;
        Ok(activation_answer(namespace, &activation, None))
    }

    /// Activates the component that was active before the current one.
    pub async fn roll_back(
        &self,
        principal: &Principal,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<ActivationAnswer, ServiceError> {
        self.may_use(principal, namespace)?;
        let activation = self.rollback(namespace, aggregate_type).await?;
        Ok(activation_answer(namespace, &activation, None))
    }

    /// Carries out a command on this node's runtime and counts it in the
    /// metrics (a shard owner's part of [`Node::send`]).
    pub(crate) async fn run_command(
        &self,
        command: CommandRequest,
    ) -> Result<CommandAnswer, ServiceError> {
        let started = Instant::now();
        let namespace = command.stream.namespace.clone();
        let result = match self.follow_if_unknown(&command.stream).await {
            Ok(()) => ops::execute(self.runtime(), command).await,
            Err(error) => Err(error),
        };
        let (outcome, failure) = match &result {
            Ok(answer) if answer.duplicate => ("duplicate", None),
            Ok(_) => ("ok", None),
            Err(error) => (
                error.code.outcome(),
                error.code.is_guest_failure().then_some(error.code.as_str()),
            ),
        };
        self.metrics()
            .command(&namespace, outcome, failure, started.elapsed());
        result
    }

    /// The aggregate's state from this node's runtime (a shard owner's
    /// part of [`Node::state`]).
    pub(crate) async fn read_state(&self, stream: &StreamId) -> Result<StateAnswer, ServiceError> {
        self.follow_if_unknown(stream).await?;
        ops::state(self.runtime(), stream).await
    }

    /// With shared components, when this node has no component for the
    /// stream's aggregate type: follows the shared registry first (the type
    /// may have been deployed through another node moments ago), so that
    /// `unknown_aggregate_type` is only answered when the registry agrees.
    /// A registry this node cannot read or follow now gives a retryable
    /// error instead: it cannot know whether the type is deployed.
    async fn follow_if_unknown(&self, stream: &StreamId) -> Result<(), ServiceError> {
        if self.shared_components().is_none()
            || self
                .runtime()
                .active_component(&stream.namespace, &stream.aggregate_type)
                .is_some()
        {
            return Ok(());
        }
        self.follow_registry(&stream.namespace)
            .await
            .map_err(|error| {
                ServiceError::new(
                    ErrorCode::StoreUnavailable,
                    format!(
                        "namespace `{}`'s shared registry cannot be followed here now ({error:#}): retry",
                        stream.namespace
                    ),
                )
            })
    }
}

/// The answer for a change of the active component.
fn activation_answer(
    namespace: &Namespace,
    activation: &Activation,
    report: Option<&VerifyReport>,
) -> ActivationAnswer {
    ActivationAnswer {
        action: activation.action,
        aggregate_type: activation.aggregate_type.to_string(),
        at_ms: activation.at_ms,
        digest: activation.digest.clone(),
        namespace: namespace.to_string(),
        previous: activation.previous.clone(),
        size: activation.size,
        state_schema: activation.state_schema.clone(),
        unconfirmed_nodes: activation.unconfirmed.clone(),
        verification: report.map(|r| serde_json::to_value(r).expect("a report encodes")),
    }
}

/// A shard owner answered one kind of request with another's answer.
fn mismatched(asked: &str, answered: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::ClusterError,
        format!("the shard's owner answered {asked} with {answered}"),
    )
}
