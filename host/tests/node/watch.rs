//! Watch mode (`aether serve --watch DIR`) and `aether dev`, against real
//! processes: files written into `DIR/<namespace>/<aggregate-type>.wasm`
//! are deployed, redeployed when they change, skipped when their bytes are
//! already active, and refused without touching what serves.
//!
//! The watcher handles files one at a time, earliest first, so writing a
//! valid component under another type name after a change and waiting for
//! that one to serve proves the change before it was handled.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aether_host::runtime::Digest;
use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, Http, NodeProcess};

const COUNTER: &str = aether_test_artifacts::COUNTER;
const HOSTILE: &str = aether_test_artifacts::HOSTILE;
const IMPORTS_UNKNOWN: &str = aether_test_artifacts::IMPORTS_UNKNOWN;

/// How long a deployment may take to show, at most (compiling a component
/// on a busy machine included).
const PATIENCE: Duration = Duration::from_secs(60);

fn digest_of(path: &str) -> String {
    Digest::of(&std::fs::read(path).unwrap()).to_hex()
}

/// A node watching `<dir>/watch` (not created beforehand), on `<dir>/data`.
fn watching_node(dir: &Path) -> (NodeProcess, PathBuf) {
    let watch = dir.join("watch");
    let node = NodeProcess::start(&dir.join("data"), &["--watch", watch.to_str().unwrap()]);
    (node, watch)
}

/// Copies the component at `from` to `<watch>/<namespace>/<aggregate_type>.wasm`.
fn put(watch: &Path, namespace: &str, aggregate_type: &str, from: &str) {
    write(
        watch,
        namespace,
        aggregate_type,
        &std::fs::read(from).unwrap(),
    );
}

fn write(watch: &Path, namespace: &str, aggregate_type: &str, bytes: &[u8]) {
    let dir = watch.join(namespace);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{aggregate_type}.wasm")), bytes).unwrap();
}

/// The digest the node serves `namespace/aggregate_type` with, if any.
fn active(client: &Http, namespace: &str, aggregate_type: &str) -> Option<String> {
    let (status, body) = client.get(&format!("/v1/namespaces/{namespace}/aggregates"));
    if status != 200 {
        return None;
    }
    body["aggregate_types"]
        .as_array()?
        .iter()
        .find(|t| t["aggregate_type"] == json!(aggregate_type))
        .and_then(|t| t["digest"].as_str().map(str::to_owned))
}

/// Waits until the node serves `namespace/aggregate_type` with `digest`.
fn wait_for(client: &Http, namespace: &str, aggregate_type: &str, digest: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = active(client, namespace, aggregate_type);
        if now.as_deref() == Some(digest) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{aggregate_type} still serves {now:?}, not {digest}, after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a valid component under a type name of its own and waits for it
/// to serve: everything written before has been handled by then.
fn barrier(client: &Http, watch: &Path, namespace: &str, name: &str) {
    put(watch, namespace, name, BANK);
    wait_for(client, namespace, name, &digest_of(BANK));
}

/// The type's deployment history: (action, digest) oldest first, and the
/// active digest.
fn history(client: &Http, namespace: &str, aggregate_type: &str) -> (Vec<(String, String)>, Value) {
    let (status, body) = client.get(&format!(
        "/v1/namespaces/{namespace}/aggregates/{aggregate_type}/components"
    ));
    assert_eq!(status, 200, "{body}");
    let entries = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (entries, body["active"].clone())
}

#[test]
fn a_component_copied_into_the_watched_directory_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (node, watch) = watching_node(dir.path());
    assert!(watch.is_dir(), "the node creates the watched directory");
    let admin = node.client(Some(ADMIN));

    put(&watch, "shop", "bank-account", BANK);
    wait_for(&admin, "shop", "bank-account", &digest_of(BANK));

    let (status, body) = admin.send(
        "shop/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "Ada"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], json!(1), "{body}");
    let (status, body) = admin.get("/v1/namespaces");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["namespaces"], json!(["shop"]));

    let (status, log) = node.terminate();
    assert!(status.success(), "{status}; log:\n{log}");
    let created: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("namespace shop created for"))
        .collect();
    assert_eq!(created.len(), 1, "the token is printed once; log:\n{log}");
    let token = created[0]
        .split("token: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in {:?}", created[0]));

    // The printed token is the namespace's: it reaches `shop`.
    let node = NodeProcess::start(&dir.path().join("data"), &[]);
    let (status, body) = node
        .client(Some(token))
        .get("/v1/namespaces/shop/aggregates/bank-account/acc-1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], json!(1), "{body}");
}

#[test]
fn overwriting_the_file_switches_the_component_and_the_same_bytes_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, watch) = watching_node(dir.path());
    let admin = node.client(Some(ADMIN));
    put(&watch, "shop", "bank-account", BANK);
    wait_for(&admin, "shop", "bank-account", &digest_of(BANK));

    // The same bytes again: skipped, no new deployment.
    put(&watch, "shop", "bank-account", BANK);
    barrier(&admin, &watch, "shop", "barrier");

    // Another component: it takes over.
    put(&watch, "shop", "bank-account", COUNTER);
    wait_for(&admin, "shop", "bank-account", &digest_of(COUNTER));
    let (status, body) = admin.send(
        "shop/bank-account/c-1",
        json!({"type": "Increment", "data": {"by": 2}}),
    );
    assert_eq!(status, 200, "the counter now decides: {body}");

    let (entries, active) = history(&admin, "shop", "bank-account");
    assert_eq!(
        entries,
        vec![
            ("deploy".to_owned(), digest_of(BANK)),
            ("deploy".to_owned(), digest_of(COUNTER)),
        ]
    );
    assert_eq!(active, json!(digest_of(COUNTER)));
}

#[test]
fn a_refused_file_leaves_the_active_component_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (node, watch) = watching_node(dir.path());
    let admin = node.client(Some(ADMIN));
    put(&watch, "shop", "bank-account", BANK);
    wait_for(&admin, "shop", "bank-account", &digest_of(BANK));
    let bank = digest_of(BANK);

    // Not WebAssembly at all.
    write(&watch, "shop", "bank-account", b"not a component");
    barrier(&admin, &watch, "shop", "barrier-1");
    assert_eq!(active(&admin, "shop", "bank-account"), Some(bank.clone()));

    // A component importing what the sandbox does not grant.
    put(&watch, "shop", "bank-account", IMPORTS_UNKNOWN);
    // Names that are not a namespace or an aggregate type, the reserved
    // namespace, and a new namespace whose only component is refused.
    put(&watch, "Shop", "bank-account", BANK);
    put(&watch, "shop", "Bank Account", BANK);
    put(&watch, "aether-system", "registry", BANK);
    write(&watch, "junk", "thing", b"\0asm junk");
    barrier(&admin, &watch, "shop", "barrier-2");

    assert_eq!(active(&admin, "shop", "bank-account"), Some(bank.clone()));
    let (entries, _) = history(&admin, "shop", "bank-account");
    assert_eq!(entries, vec![("deploy".to_owned(), bank)]);
    let (status, body) = admin.send(
        "shop/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "Ada"}}),
    );
    assert_eq!(status, 200, "the bank account still serves: {body}");
    let (status, body) = admin.get("/v1/namespaces");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["namespaces"],
        json!(["shop"]),
        "no namespace is made for a refused or misnamed file"
    );

    let (status, log) = node.terminate();
    assert!(status.success(), "{status}; log:\n{log}");
    let warned = |file: &str, reason: &str| {
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(file) && l.contains(reason))
    };
    for (file, reason) in [
        (
            "shop/bank-account.wasm",
            "not a valid WebAssembly component",
        ),
        ("shop/bank-account.wasm", "may not use"),
        ("Shop/bank-account.wasm", "not a namespace name"),
        ("shop/Bank Account.wasm", "not an aggregate type name"),
        ("aether-system/registry.wasm", "reserved"),
        ("junk/thing.wasm", "refused"),
    ] {
        assert!(
            warned(file, reason),
            "no warning naming {file} and {reason:?}; log:\n{log}"
        );
    }
}

#[test]
fn files_present_at_start_are_deployed_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let watch = dir.path().join("watch");
    put(&watch, "shop", "bank-account", BANK);
    put(&watch, "shop", "counter", COUNTER);

    let (node, _) = watching_node(dir.path());
    let admin = node.client(Some(ADMIN));
    wait_for(&admin, "shop", "bank-account", &digest_of(BANK));
    wait_for(&admin, "shop", "counter", &digest_of(COUNTER));
    let (status, log) = node.terminate();
    assert!(status.success(), "{status}; log:\n{log}");

    // A restart looks at every file again and finds them all active.
    let (node, _) = watching_node(dir.path());
    let admin = node.client(Some(ADMIN));
    put(&watch, "shop", "hostile", HOSTILE);
    wait_for(&admin, "shop", "hostile", &digest_of(HOSTILE));
    for (aggregate_type, component) in [("bank-account", BANK), ("counter", COUNTER)] {
        let (entries, active) = history(&admin, "shop", aggregate_type);
        assert_eq!(
            entries,
            vec![("deploy".to_owned(), digest_of(component))],
            "{aggregate_type} was deployed once"
        );
        assert_eq!(active, json!(digest_of(component)));
    }
    let (status, log) = node.terminate();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(
        !log.contains("namespace shop created"),
        "the namespace existed already; log:\n{log}"
    );
}

/// `aether dev`, killed (SIGKILL) on drop if still running.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn aether_dev_builds_deploys_and_serves_a_guest_crate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev-data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args([
            "dev",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/counter"),
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("AETHER_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start aether dev");
    let (lines, received) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    let mut dev = Dev(child);

    // The first build may compile the guest's dependencies for wasm32.
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut url, mut token, mut output) = (None, None, String::new());
    while url.is_none() || token.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no listening line and token ({e}); output:\n{output}"));
        output.push_str(&line);
        output.push('\n');
        if line.contains("listening on") {
            url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_owned);
        }
        if line.contains("namespace dev created for") {
            token = line.split("token: ").nth(1).map(str::to_owned);
        }
    }
    let (url, token) = (url.unwrap(), token.unwrap());
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");

    // It serves what it built, copied into the watched directory.
    let copied = data.join("watch/dev/counter.wasm");
    let digest = digest_of(copied.to_str().unwrap());
    wait_for(&Http::new(&url, Some(ADMIN)), "dev", "counter", &digest);
    let (status, body) = Http::new(&url, Some(&token)).send(
        "dev/counter/c-1",
        json!({"type": "Increment", "data": {"by": 3}}),
    );
    assert_eq!(status, 200, "the printed token reaches `dev`: {body}");

    // SIGTERM stops the node and the source watcher with it.
    let pid = dev.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = dev.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "aether dev did not stop within {PATIENCE:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = received.try_recv() {
        output.push_str(&line);
        output.push('\n');
    }
    assert!(status.success(), "{status}; output:\n{output}");
}
