//! The CLI commands that talk to a running node: `namespace`, `deploy`,
//! `send`, `events`, `state` and `tail`. Readable output by default,
//! `--json` for scripts. Exit codes: see [`super::exit_code`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::client::{Client, Connection};
use super::time::format_timestamp;
use aether_service::{CommandAnswer, EventJson, EventsPage, SendCommand, StateAnswer};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum NamespaceCommand {
    /// Create a namespace (admin token); prints its first token once.
    Create {
        /// The namespace's name.
        name: String,
        /// Limit overrides as JSON, e.g. '{"call_deadline_ms": 200}'.
        #[arg(long)]
        limits: Option<String>,
    },
    /// Issue another token for a namespace (admin token).
    Token {
        /// The namespace's name.
        name: String,
    },
    /// List the ids of a namespace's tokens (admin token).
    Tokens {
        /// The namespace's name.
        name: String,
    },
    /// Revoke one of a namespace's tokens (admin token): it is refused
    /// from the next request on.
    RevokeToken {
        /// The namespace's name.
        name: String,
        /// The token's id (from `namespace tokens` or when it was issued),
        /// or the token itself (its id is worked out here; the token is
        /// not sent).
        token: String,
    },
    /// Replace a namespace's limit overrides (admin token).
    Limits {
        /// The namespace's name.
        name: String,
        /// The overrides as JSON; fields left out take the node's defaults.
        limits: String,
    },
    /// Show a namespace's limits and aggregate types.
    Show {
        /// The namespace's name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct NamespaceArgs {
    #[command(subcommand)]
    command: NamespaceCommand,
    #[command(flatten)]
    connection: Connection,
    /// Print the node's JSON answer.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// The namespace.
    namespace: String,
    /// The aggregate type the component serves.
    aggregate_type: String,
    /// The component (`.wasm`).
    component: PathBuf,
    /// First replay the type's existing streams through the component;
    /// activate it only if every replay succeeds.
    #[arg(long)]
    verify: bool,
    /// With --verify: replay only this many streams, spread evenly.
    #[arg(long, requires = "verify")]
    sample: Option<usize>,
    #[command(flatten)]
    connection: Connection,
    /// Print the node's JSON answer.
    #[arg(long)]
    json: bool,
}

/// What to do with an aggregate type's components.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ComponentsCommand {
    /// The deployment history, oldest first, and the active component.
    History,
    /// Activate a component deployed before, by digest.
    Activate {
        /// The component's digest (64 hex characters).
        digest: String,
    },
    /// Activate the component that was active before the current one.
    Rollback,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ComponentsArgs {
    /// The namespace.
    namespace: String,
    /// The aggregate type.
    aggregate_type: String,
    #[command(subcommand)]
    command: ComponentsCommand,
    #[command(flatten)]
    connection: Connection,
    /// Print the node's JSON answer.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    /// The namespace.
    namespace: String,
    /// The aggregate's type.
    aggregate_type: String,
    /// The aggregate's id.
    aggregate_id: String,
    /// The command's type, e.g. `Deposit`.
    command_type: String,
    /// The command's data as JSON (default: null).
    data: Option<String>,
    /// Carry the command out only if the aggregate is at this version.
    #[arg(long = "expect")]
    expected_version: Option<u64>,
    /// A command id, so that sending again is harmless.
    #[arg(long)]
    command_id: Option<String>,
    #[command(flatten)]
    connection: Connection,
    /// Print the node's JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// The namespace.
    namespace: String,
    /// Only events of this aggregate type.
    #[arg(long = "type")]
    aggregate_type: Option<String>,
    /// Only events of aggregate ids matching this pattern (`*` for any
    /// run of characters).
    #[arg(long = "id")]
    aggregate_id: Option<String>,
    /// Only these event types (comma-separated).
    #[arg(long)]
    event_types: Option<String>,
    /// Where to start: `now` (default), `beginning`, `checkpoint` (with
    /// --name) or a log position to start after.
    #[arg(long)]
    from: Option<String>,
    /// Make the subscription durable under this name: its checkpoint
    /// follows what was printed, and `--from checkpoint` resumes there.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    connection: Connection,
    /// One JSON event per line.
    #[arg(long)]
    json: bool,
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The id to revoke: `token` itself if it is an id, else the id of the
/// token (so a token can be revoked without sending it anywhere).
fn token_id(token: &str) -> String {
    if token.starts_with(aether_host::node::Token::PREFIX) {
        aether_host::node::TokenHash::of(token).id()
    } else {
        token.to_owned()
    }
}

/// `aether namespace …`
pub(crate) fn namespace(args: NamespaceArgs) -> Result<()> {
    let client = Client::new(&args.connection);
    let answer = match &args.command {
        NamespaceCommand::Create { name, limits } => {
            let limits: Value = match limits {
                Some(text) => serde_json::from_str(text).context("--limits is not JSON")?,
                None => json!({}),
            };
            client.send_json(
                "POST",
                "/v1/namespaces",
                Some(&json!({ "name": name, "limits": limits })),
            )?
        }
        NamespaceCommand::Token { name } => {
            client.send_json("POST", &format!("/v1/namespaces/{name}/tokens"), None)?
        }
        NamespaceCommand::Limits { name, limits } => {
            let limits: Value = serde_json::from_str(limits).context("the limits are not JSON")?;
            client.send_json(
                "PUT",
                &format!("/v1/namespaces/{name}/limits"),
                Some(&limits),
            )?
        }
        NamespaceCommand::Show { name } => client.get(&format!("/v1/namespaces/{name}"))?,
        NamespaceCommand::Tokens { name } => {
            client.get(&format!("/v1/namespaces/{name}/tokens"))?
        }
        NamespaceCommand::RevokeToken { name, token } => {
            let id = token_id(token);
            client.delete(&format!("/v1/namespaces/{name}/tokens/{id}"))?
        }
    };
    if args.json {
        return print_json(&answer);
    }
    match &args.command {
        NamespaceCommand::Create { name, .. } | NamespaceCommand::Token { name } => {
            println!("namespace {name}");
            println!("token: {}", answer["token"].as_str().unwrap_or("?"));
            println!("token id: {}", answer["token_id"].as_str().unwrap_or("?"));
            println!("(shown only now: keep it, e.g. export AETHER_TOKEN=…)");
        }
        NamespaceCommand::Tokens { name } => {
            println!("namespace {name}");
            for token in answer["tokens"].as_array().into_iter().flatten() {
                println!("  token id {}", token["id"].as_str().unwrap_or("?"));
            }
        }
        NamespaceCommand::RevokeToken { name, token } => {
            println!("namespace {name}: token {} revoked", token_id(token));
        }
        NamespaceCommand::Limits { name, .. } | NamespaceCommand::Show { name } => {
            println!("namespace {name}");
            if let Some(limits) = answer["limits"].as_object() {
                for (limit, value) in limits {
                    println!("  {limit:<24} {value}");
                }
            }
            if let Some(types) = answer["aggregate_types"].as_array() {
                for deployed in types {
                    println!(
                        "  aggregate type {} → component {}",
                        deployed["aggregate_type"].as_str().unwrap_or("?"),
                        deployed["digest"].as_str().unwrap_or("?")
                    );
                }
            }
        }
    }
    Ok(())
}

/// `aether deploy`
pub(crate) fn deploy(args: DeployArgs) -> Result<()> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading the component {}", args.component.display()))?;
    // What the node would refuse from its first bytes is refused here,
    // before anything is sent.
    aether_runtime::check_preamble(&bytes)
        .with_context(|| format!("{} cannot be deployed", args.component.display()))?;
    let path = format!(
        "/v1/namespaces/{}/aggregates/{}/component",
        args.namespace, args.aggregate_type
    );
    let client = Client::new(&args.connection);
    let answer = if args.verify {
        verified_deploy(&client, &path, bytes, args.sample, args.json)?
    } else {
        client.send_bytes("PUT", &path, "application/wasm", bytes)?
    };
    if args.json {
        return print_json(&answer);
    }
    if let Some(report) = answer.get("verification") {
        print_verification(report);
    }
    println!(
        "deployed {} for {} in namespace {}: component {} is active",
        args.component.display(),
        args.aggregate_type,
        args.namespace,
        answer["digest"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// A deploy with `verify`, following its progress on a bar.
fn verified_deploy(
    client: &Client,
    path: &str,
    bytes: Vec<u8>,
    sample: Option<usize>,
    quiet: bool,
) -> Result<Value> {
    let verify = sample.map_or_else(|| "all".to_owned(), |n| n.to_string());
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replaying {bar:40} {pos}/{len} streams ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut outcome = None;
    client.put_ndjson(
        &format!("{path}?verify={verify}"),
        "application/wasm",
        bytes,
        |line| {
            if let Some(progress) = line.get("progress") {
                bar.set_length(progress["total"].as_u64().unwrap_or(0));
                bar.set_position(progress["done"].as_u64().unwrap_or(0));
            } else {
                outcome = Some(line);
            }
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let outcome = outcome.context("the node ended the deploy without an outcome")?;
    if let Some(error) = outcome.get("error") {
        if !quiet && let Some(report) = error.get("verification") {
            print_verification(report);
        }
        let status = outcome["status"].as_u64().unwrap_or(500) as u16;
        return Err(super::client::failure(status, error.clone()).into());
    }
    Ok(outcome["result"].clone())
}

fn print_verification(report: &Value) {
    println!(
        "verified: replayed {} of {} streams ({} events): {} failed, {} views changed",
        report["streams_checked"],
        report["streams_total"],
        report["events_replayed"],
        report["failures"].as_array().map_or(0, Vec::len),
        report["views_changed"]
    );
    for failure in report["failures"].as_array().into_iter().flatten() {
        println!(
            "  FAILED {}: {} {}",
            failure["stream"].as_str().unwrap_or("?"),
            failure["kind"].as_str().unwrap_or("?"),
            failure["message"].as_str().unwrap_or("")
        );
    }
    for changed in report["changed_examples"].as_array().into_iter().flatten() {
        println!(
            "  changed {}: {} → {}",
            changed["stream"].as_str().unwrap_or("?"),
            changed["before"],
            changed["after"]
        );
    }
}

/// `aether components`
pub(crate) fn components(args: ComponentsArgs) -> Result<()> {
    let client = Client::new(&args.connection);
    let base = format!(
        "/v1/namespaces/{}/aggregates/{}",
        args.namespace, args.aggregate_type
    );
    let answer = match &args.command {
        ComponentsCommand::History => client.get(&format!("{base}/components"))?,
        ComponentsCommand::Activate { digest } => client.send_json(
            "POST",
            &format!("{base}/activate"),
            Some(&json!({ "digest": digest })),
        )?,
        ComponentsCommand::Rollback => {
            client.send_json("POST", &format!("{base}/rollback"), None)?
        }
    };
    if args.json {
        return print_json(&answer);
    }
    match &args.command {
        ComponentsCommand::History => {
            let active = answer["active"].as_str().unwrap_or("");
            for change in answer["history"].as_array().into_iter().flatten() {
                let digest = change["digest"].as_str().unwrap_or("?");
                println!(
                    "{}  {:<8}  {}{}",
                    format_timestamp(change["at_ms"].as_u64().unwrap_or(0)),
                    change["action"].as_str().unwrap_or("?"),
                    digest,
                    if digest == active { "  (active)" } else { "" }
                );
            }
        }
        _ => println!(
            "{} of {} in {}: component {} is active (was {})",
            answer["action"].as_str().unwrap_or("?"),
            args.aggregate_type,
            args.namespace,
            answer["digest"].as_str().unwrap_or("?"),
            answer["previous"].as_str().unwrap_or("none")
        ),
    }
    Ok(())
}

/// `aether send`
pub(crate) fn send(args: SendArgs) -> Result<()> {
    let data: Value = match &args.data {
        Some(text) => serde_json::from_str(text).context("the command data is not JSON")?,
        None => Value::Null,
    };
    let command = SendCommand {
        command_type: args.command_type.clone(),
        data,
        expected_version: args.expected_version,
        command_id: args.command_id.clone(),
        correlation_id: None,
        causation_id: None,
    };
    let path = format!(
        "/v1/namespaces/{}/aggregates/{}/{}/commands",
        args.namespace, args.aggregate_type, args.aggregate_id
    );
    let answer: CommandAnswer = Client::new(&args.connection).post_as(&path, &command)?;
    if args.json {
        return print_json(&answer);
    }
    let what = if answer.duplicate {
        "already carried out (same command id); nothing new stored"
    } else if answer.events.is_empty() {
        "accepted; no events"
    } else {
        "accepted"
    };
    println!(
        "{}: {what}; now at version {}",
        args.aggregate_id, answer.version
    );
    for event in &answer.events {
        print_event(event);
    }
    Ok(())
}

/// `aether events` against a node.
pub(crate) fn events(
    connection: &Connection,
    (namespace, aggregate_type, aggregate_id): (&str, &str, &str),
    from: u64,
    json: bool,
) -> Result<()> {
    let client = Client::new(connection);
    let (mut from, mut all) = (from.max(1), Vec::new());
    loop {
        let page: EventsPage = client.get_as(&format!(
            "/v1/namespaces/{namespace}/aggregates/{aggregate_type}/{aggregate_id}/events?from={from}"
        ))?;
        if page.events.is_empty() {
            break;
        }
        from = page.next_version;
        all.extend(page.events);
    }
    if json {
        return print_json(&all);
    }
    let stream = format!("{namespace}/{aggregate_type}/{aggregate_id}");
    if all.is_empty() {
        println!("{stream} has no events from that version");
        return Ok(());
    }
    for event in &all {
        print_event(event);
    }
    println!("{} events of {stream}", all.len());
    Ok(())
}

/// `aether state` against a node.
pub(crate) fn state(
    connection: &Connection,
    (namespace, aggregate_type, aggregate_id): (&str, &str, &str),
    json: bool,
) -> Result<()> {
    let answer: StateAnswer = Client::new(connection).get_as(&format!(
        "/v1/namespaces/{namespace}/aggregates/{aggregate_type}/{aggregate_id}"
    ))?;
    if json {
        // Through a `Value`: the view pretty-printed with the rest.
        return print_json(&serde_json::to_value(&answer)?);
    }
    println!("{} at version {}", answer.stream, answer.version);
    print_json(&answer.view().context("the node's view is not JSON")?)
}

/// `aether tail`
pub(crate) fn tail(args: TailArgs) -> Result<()> {
    let mut path = format!("/v1/namespaces/{}/events/live", args.namespace);
    let mut filters = Vec::new();
    if let Some(t) = &args.aggregate_type {
        filters.push(format!("aggregate_type={t}"));
    }
    if let Some(i) = &args.aggregate_id {
        filters.push(format!("aggregate_id={i}"));
    }
    if let Some(types) = &args.event_types {
        filters.push(format!("event_types={types}"));
    }
    if let Some(from) = &args.from {
        filters.push(format!("from={from}"));
    }
    if let Some(name) = &args.name {
        filters.push(format!("name={name}"));
    }
    if !filters.is_empty() {
        path = format!("{path}?{}", filters.join("&"));
    }
    if !args.json {
        eprintln!(
            "waiting for new events of namespace {} (Ctrl-C to stop)",
            args.namespace
        );
    }
    Client::new(&args.connection).stream(&path, |event, data| {
        match event {
            "error" => anyhow::bail!("{data}"),
            _ if args.json => println!("{data}"),
            _ => match serde_json::from_str::<EventJson>(data) {
                Ok(event) => print_event(&event),
                Err(_) => println!("{data}"),
            },
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        Ok(())
    })
}

/// One event on one line: stream, version, time, type, data.
fn print_event(event: &EventJson) {
    println!(
        "{:<32} v{:<5} {}  {:<20} {}",
        event.stream,
        event.version,
        format_timestamp(event.timestamp_ms),
        event.event_type,
        event.data
    );
}
