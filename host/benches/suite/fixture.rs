//! What every scenario starts from: the bank-account component, its events
//! in the guest SDK's wire format, runtimes on a store, and names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::runtime::{CommandRequest, JSON, Runtime, RuntimeConfig};
use aether_host::store::{EventMetadata, EventStore, RecordedEvent, StreamId};
use anyhow::Context;
use bank_account::Event;
use uuid::Uuid;

/// What the scenarios share.
pub(crate) struct Ctx {
    /// The bank-account component (`bank_account.wasm`).
    pub(crate) component: Vec<u8>,
    /// Where durable stores get their temporary directories: on the same
    /// disk as `target/`, because `/tmp` may be a tmpfs, where fsync is free.
    pub(crate) scratch: PathBuf,
    /// Where the Python and JavaScript bank-account components are
    /// (`--guests`), for the `languages` scenario.
    pub(crate) guests: Option<PathBuf>,
    /// Smoke run (`--smoke`, and the test that runs every scenario inside
    /// `cargo test`): tiny sizes and short phases, every state check kept.
    /// The numbers mean nothing; the point is that each scenario's code
    /// path still works.
    pub(crate) smoke: bool,
    /// A compile cache for components compiled again on every run (the
    /// Python and JavaScript guests), so repeated smoke runs skip it.
    pub(crate) compile_cache: Option<PathBuf>,
}

impl Ctx {
    pub(crate) fn new(component: &Path, scratch: PathBuf) -> anyhow::Result<Self> {
        let bytes = std::fs::read(component).with_context(|| {
            format!(
                "reading the component {}: build it with `cargo xtask bench`",
                component.display()
            )
        })?;
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        Ok(Self {
            component: bytes,
            scratch,
            guests: None,
            smoke: false,
            compile_cache: None,
        })
    }

    /// `full` in a measuring run, `smoke` in a smoke run.
    pub(crate) fn size<T>(&self, full: T, smoke: T) -> T {
        if self.smoke { smoke } else { full }
    }

    /// A fresh temporary directory for a durable store; removed on drop.
    pub(crate) fn tempdir(&self) -> anyhow::Result<tempfile::TempDir> {
        tempfile::tempdir_in(&self.scratch)
            .with_context(|| format!("creating a directory in {}", self.scratch.display()))
    }
}

/// The namespace every scenario works in.
pub(crate) const NAMESPACE: &str = "bench";
/// The aggregate type the bank-account component is deployed as.
pub(crate) const ACCOUNT: &str = "bank-account";

/// [`NAMESPACE`], validated.
pub(crate) fn namespace() -> anyhow::Result<Namespace> {
    Ok(Namespace::new(NAMESPACE)?)
}

/// The stream of aggregate `id` of `aggregate_type` in [`NAMESPACE`].
pub(crate) fn stream(aggregate_type: &str, id: &str) -> anyhow::Result<StreamId> {
    Ok(StreamId::new(
        Namespace::new(NAMESPACE)?,
        AggregateType::new(aggregate_type)?,
        AggregateId::new(id)?,
    ))
}

/// The durable store the durable scenarios run on, in `dir`.
pub(crate) fn durable_store(dir: &Path) -> anyhow::Result<Arc<dyn EventStore>> {
    let store = aether_host::store::EmbeddedStore::open(dir)
        .with_context(|| format!("opening the embedded store in {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// The name of the durable backend, for the metrics' params.
pub(crate) const DURABLE_BACKEND: &str = "EmbeddedStore (redb, fsync'd group commit)";

/// A runtime on `store` with the bank-account component deployed as
/// `aggregate_types`.
pub(crate) async fn runtime_with_accounts(
    ctx: &Ctx,
    store: Arc<dyn EventStore>,
    config: RuntimeConfig,
    aggregate_types: &[&str],
) -> anyhow::Result<Runtime> {
    let runtime = Runtime::new(store, config)?;
    for aggregate_type in aggregate_types {
        runtime
            .deploy(
                &Namespace::new(NAMESPACE)?,
                &AggregateType::new(*aggregate_type)?,
                ctx.component.clone(),
            )
            .await?;
    }
    Ok(runtime)
}

/// The `Open` command for an account.
pub(crate) fn open(stream: &StreamId) -> CommandRequest {
    CommandRequest::json(
        stream.clone(),
        "Open",
        &serde_json::json!({ "owner": "Ada" }),
    )
}

/// The `Deposit` command of 1 unit.
pub(crate) fn deposit(stream: &StreamId) -> CommandRequest {
    CommandRequest::json(
        stream.clone(),
        "Deposit",
        &serde_json::json!({ "amount": 1 }),
    )
}

/// The `(type, data)` pairs of an account's history of `len` events:
/// `Opened` and then `Deposited { amount: 1 }`, encoded exactly as the guest
/// SDK encodes events (`aether_guest::wire`). The balance it leaves is
/// `len - 1`.
pub(crate) fn account_history(len: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let opened = aether_guest::wire::encode(&Event::Opened {
        owner: "Ada".into(),
    })?;
    let deposited = aether_guest::wire::encode(&Event::Deposited { amount: 1 })?;
    Ok((0..len)
        .map(|i| {
            if i == 0 {
                opened.clone()
            } else {
                deposited.clone()
            }
        })
        .collect())
}

/// Versions `first`…`first + len - 1` of [`account_history`] as recorded
/// events of `stream`, as the store would hand them to replay (positions
/// equal to versions).
pub(crate) fn recorded_history(
    stream: &StreamId,
    first: u64,
    len: usize,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let metadata = EventMetadata {
        component_digest: Some("0".repeat(64)),
        ..EventMetadata::default()
    };
    let opened = aether_guest::wire::encode(&Event::Opened {
        owner: "Ada".into(),
    })?;
    let deposited = aether_guest::wire::encode(&Event::Deposited { amount: 1 })?;
    let events = (first..first + len as u64)
        .map(|version| {
            let (event_type, data) = if version == 1 { &opened } else { &deposited };
            RecordedEvent {
                id: Uuid::now_v7(),
                stream: stream.clone(),
                version,
                position: version,
                event_type: event_type.clone(),
                content_type: JSON.to_owned(),
                data: data.clone(),
                metadata: metadata.clone(),
                timestamp_ms: 1_700_000_000_000,
            }
        })
        .collect();
    Ok(events)
}

/// The balance in a bank account's JSON view.
pub(crate) fn balance(view: &serde_json::Value) -> anyhow::Result<u64> {
    view["balance"]
        .as_u64()
        .with_context(|| format!("no balance in the view {view}"))
}
