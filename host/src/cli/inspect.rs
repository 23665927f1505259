//! `aether events` and `aether state`: read a data directory directly,
//! without a running node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use serde_json::{Value, json};

use aether_host::runtime::{Runtime, RuntimeConfig, stream_id};
use aether_host::service::{EventsQuery, ops};
use aether_host::store::{EmbeddedStore, EventStore, StreamId};

use super::client::Connection;
use super::remote;
use super::time::format_timestamp;

/// Which aggregate, on which node or in which data directory.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// Read this (stopped) node's data directory instead of asking a node.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
    /// The aggregate's namespace.
    namespace: String,
    /// The aggregate's type.
    aggregate_type: String,
    /// The aggregate's id.
    aggregate_id: String,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    target: Target,
    /// The first version to print.
    #[arg(long, default_value_t = 1)]
    from: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StateArgs {
    #[command(flatten)]
    target: Target,
    /// The aggregate's component, used to replay a data directory's events
    /// (with --data-dir).
    #[arg(long, requires = "data_dir")]
    component: Option<PathBuf>,
}

/// Events read per round trip to the store (a page of the API's).
const PAGE: usize = aether_host::service::MAX_PAGE;
/// Replays longer than this many events show a progress bar.
const PROGRESS_AFTER: u64 = 20_000;

pub(crate) async fn events(args: EventsArgs) -> Result<()> {
    if args.target.data_dir.is_none() {
        return super::blocking(move || {
            let t = &args.target;
            let names = (
                t.namespace.as_str(),
                t.aggregate_type.as_str(),
                t.aggregate_id.as_str(),
            );
            remote::events(&t.connection, names, args.from, t.json)
        })
        .await;
    }
    let (store, stream) = open(&args.target)?;
    let mut from = args.from.max(1);
    let mut count = 0u64;
    let mut all = Vec::new();
    loop {
        // The service's read, as a node's `GET …/events` makes it.
        let query = EventsQuery {
            from: Some(from),
            limit: Some(PAGE),
        };
        let page = ops::events(&*store, &stream, &query).await?;
        if page.events.is_empty() {
            break;
        }
        from = page.next_version;
        count += page.events.len() as u64;
        if args.target.json {
            all.extend(page.events);
            continue;
        }
        if count == page.events.len() as u64 {
            println!(
                "{:>6}  {:>8}  {:<24}  {:<20}  data",
                "version", "position", "recorded", "type"
            );
        }
        for event in &page.events {
            println!(
                "{:>6}  {:>8}  {:<24}  {:<20}  {}",
                event.version,
                event.position,
                format_timestamp(event.timestamp_ms),
                event.event_type,
                event.data
            );
        }
    }
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if count == 0 {
        println!("{stream} has no events from version {}", args.from.max(1));
    } else {
        println!("{count} events of {stream}");
    }
    Ok(())
}

pub(crate) async fn state(args: StateArgs) -> Result<()> {
    let Some(component) = args.component.clone() else {
        if args.target.data_dir.is_some() {
            bail!("reading state from a data directory needs the aggregate's --component");
        }
        return super::blocking(move || {
            let t = &args.target;
            let names = (
                t.namespace.as_str(),
                t.aggregate_type.as_str(),
                t.aggregate_id.as_str(),
            );
            remote::state(&t.connection, names, t.json)
        })
        .await;
    };
    let (store, stream) = open(&args.target)?;
    let bytes = std::fs::read(&component)
        .with_context(|| format!("reading the component {}", component.display()))?;
    let config = RuntimeConfig {
        partitions: 1,
        compile_cache: args.target.data_dir.as_ref().map(|d| d.join("compiled")),
        // The node that owns the directory keeps it within its own bound
        // (`--compile-cache-mib`); inspecting must not prune it to another.
        compile_cache_max_bytes: u64::MAX,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(store.clone(), config)?;
    let component = runtime.load_component(bytes).await?;
    runtime.activate(&stream.namespace, &stream.aggregate_type, component.clone());
    // The service's state read, as a node makes it: the runtime activates
    // the aggregate (from its snapshot for this component, if one is
    // valid, then the events after it) and asks the component for its view.
    let head = store.stream_version(&stream).await?;
    let progress = replaying(head);
    let answer = ops::state(&runtime, &stream).await?;
    progress.finish_and_clear();
    let view: Value = answer.view().context("the component's view is not JSON")?;
    if args.target.json {
        let out = json!({
            "stream": answer.stream,
            "version": answer.version,
            "component": component.digest().to_hex(),
            "view": view,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{stream} at version {} (component {})",
            answer.version,
            component.digest().short()
        );
        println!("{}", serde_json::to_string_pretty(&view)?);
    }
    Ok(())
}

/// Opens an existing data directory: inspection never creates one.
fn open(target: &Target) -> Result<(Arc<dyn EventStore>, StreamId)> {
    let stream = stream_id(
        &target.namespace,
        &target.aggregate_type,
        &target.aggregate_id,
    )?;
    let dir = target
        .data_dir
        .as_deref()
        .context("reading a data directory needs --data-dir")?;
    Ok((open_existing(dir)?, stream))
}

pub(crate) fn open_existing(dir: &Path) -> Result<Arc<dyn EventStore>> {
    if !dir.is_dir() {
        bail!(
            "no data directory at {}: pass the node's --data-dir",
            dir.display()
        );
    }
    let store = EmbeddedStore::open(dir)
        .with_context(|| format!("opening the data directory {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// A spinner while a stream of `events` events is replayed, if it is long.
fn replaying(events: u64) -> ProgressBar {
    if events < PROGRESS_AFTER {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("replaying {events} events"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}
