//! Component uploads against a real `aether serve`: a namespace has at most
//! `max_concurrent_uploads` in progress on a node (each is held in memory
//! up to the component size limit while it compiles), more are refused
//! with 429 `too_many_uploads` before their bodies are read (after waiting
//! up to a second for a place, which one given back meanwhile fills), a
//! declared oversized body is refused before it is read and junk from its
//! first bytes, a finished or abandoned upload gives its place back; a
//! namespace's deploys wait their turn to compile (`compile_share_percent`)
//! while a neighbour's do not; a namespace's uploads together are read at
//! most its `upload_bytes_per_sec`. A client that sends a refused upload whole
//! before it reads reads the answer, not a reset.
//! Raw TCP for the uploads that must stay in progress.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aether_host::runtime::with_custom_section;
use serde_json::{Value, json};

use crate::connections::{connect, read_response};
use crate::support::{ADMIN, BANK, Http, NodeProcess, assert_error};

/// Starts an upload of `length` bytes to `namespace` and sends only its
/// first bytes: it stays in progress until the connection closes.
pub(crate) fn stalled_upload(
    node: &NodeProcess,
    namespace: &str,
    token: &str,
    length: usize,
) -> TcpStream {
    upload_starting_with(node, namespace, token, length, b"\0asm")
}

/// Starts an upload of `length` bytes to `namespace` and sends only
/// `first` of them.
fn upload_starting_with(
    node: &NodeProcess,
    namespace: &str,
    token: &str,
    length: usize,
    first: &[u8],
) -> TcpStream {
    let mut stream = connect(node);
    let head = format!(
        "PUT /v1/namespaces/{namespace}/aggregates/bank-account/component HTTP/1.1\r\n\
         Host: node\r\nAuthorization: Bearer {token}\r\nContent-Type: application/wasm\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first).unwrap();
    stream
}

/// An upload's answer when the node refuses it before reading its body
/// (it is never sent): the status and the JSON error.
fn refused_upload(node: &NodeProcess, namespace: &str, token: &str) -> (u16, serde_json::Value) {
    let mut upload = stalled_upload(node, namespace, token, 1 << 20);
    let answer = read_response(&mut upload);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

/// The node's `aether_component_uploads` gauge for `namespace` (0 when it
/// is not listed).
fn uploads_in_progress(node: &NodeProcess, namespace: &str) -> u64 {
    let (status, metrics) = node.client(Some(ADMIN)).get("/metrics");
    assert_eq!(status, 200);
    let line = format!("aether_component_uploads{{namespace=\"{namespace}\"}} ");
    metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.parse().unwrap())
}

fn wait_for_uploads(node: &NodeProcess, namespace: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while uploads_in_progress(node, namespace) != expected {
        assert!(
            Instant::now() < deadline,
            "{namespace} never had {expected} uploads in progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn uploads_past_the_cap_are_refused_and_an_abandoned_one_gives_its_place_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--body-read-timeout-ms",
            "60000",
            "--keep-alive-timeout-ms",
            "60000",
        ],
    );
    let admin = node.client(Some(ADMIN));
    // The default cap (2) for one namespace, an override (1) for another.
    let busy = admin.create_namespace("busy", json!({}));
    let single = admin.create_namespace("single", json!({"max_concurrent_uploads": 1}));

    let first = stalled_upload(&node, "busy", &busy, 50 << 20);
    let second = stalled_upload(&node, "busy", &busy, 50 << 20);
    wait_for_uploads(&node, "busy", 2);
    // Refused after waiting its second for a place (none comes back).
    let asked = Instant::now();
    let (status, body) = refused_upload(&node, "busy", &busy);
    assert_error(status, &body, 429, "too_many_uploads");
    assert_eq!(body["limit"], json!(2));
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );

    // The cap is per namespace: another one uploads meanwhile, up to its
    // own cap.
    let single_client = node.client(Some(&single));
    single_client.deploy("single", "bank-account", BANK);
    let held = stalled_upload(&node, "single", &single, 1 << 20);
    wait_for_uploads(&node, "single", 1);
    let (status, body) = refused_upload(&node, "single", &single);
    assert_error(status, &body, 429, "too_many_uploads");
    assert_eq!(body["limit"], json!(1));
    drop(held);

    // Abandoned uploads give their places back, and nothing of them was
    // deployed.
    drop(first);
    drop(second);
    wait_for_uploads(&node, "busy", 0);
    let busy_client = node.client(Some(&busy));
    let (_, shown) = busy_client.get("/v1/namespaces/busy");
    assert_eq!(shown["aggregate_types"], json!([]), "{shown}");
    busy_client.deploy("busy", "bank-account", BANK);
    let (status, body) = busy_client.send(
        "busy/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "U"}}),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_body_declared_over_the_component_limit_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let token = node.client(Some(ADMIN)).create_namespace("big", json!({}));
    // 1 GiB declared, nothing sent: the answer comes at once.
    let mut upload = stalled_upload(&node, "big", &token, 1 << 30);
    let answer = read_response(&mut upload);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(answer.contains("1073741824 bytes"), "{answer}");
    assert_eq!(uploads_in_progress(&node, "big"), 0);
}

/// A client that sends its whole body before it reads (as Python's
/// `http.client` does) reads the error that names its problem, not a
/// reset: the node reads on the rest of a body it answered without
/// reading, and the connection then carries the client's next request.
#[test]
fn a_client_that_sends_a_refused_upload_whole_reads_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    node.client(Some(ADMIN)).create_namespace("here", json!({}));
    let body = vec![0xA5u8; 16 << 20];
    for (namespace, token, expected) in [
        ("here", None, "401 Unauthorized"),
        ("nowhere", Some(ADMIN), "404 Not Found"),
    ] {
        let mut stream = connect(&node);
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "PUT /v1/namespaces/{namespace}/aggregates/bank-account/component HTTP/1.1\r\n\
             Host: node\r\n{auth}Content-Type: application/wasm\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream
            .write_all(&body)
            .unwrap_or_else(|e| panic!("{namespace}: sending the body: {e}"));
        let answer = read_response(&mut stream);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected}")),
            "{namespace}: {answer}"
        );
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
            .unwrap();
        let next = read_response(&mut stream);
        assert!(next.starts_with("HTTP/1.1 200"), "{namespace}: {next}");
    }
    // Reading on is bounded (64 MiB): a client that keeps sending is cut off.
    let mut stream = connect(&node);
    let head = format!(
        "PUT /v1/namespaces/nowhere/aggregates/bank-account/component HTTP/1.1\r\n\
         Host: node\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/wasm\r\n\
         Content-Length: {}\r\n\r\n",
        1u64 << 30
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut sent = 0usize;
    while stream.write_all(&body).is_ok() {
        sent += body.len();
        assert!(sent <= 128 << 20, "the node read on past 128 MiB");
    }
    assert!(sent >= 48 << 20, "cut off after {sent} bytes");
}

/// Junk, or a core module, is refused from its first bytes: the node
/// neither waits for the rest of a body that cannot be a component nor
/// holds an upload place for it.
#[test]
fn an_upload_that_cannot_be_a_component_is_refused_from_its_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // A minute to send each body's rest: an answer before is the check's.
    let node = NodeProcess::start(dir.path(), &["--body-read-timeout-ms", "60000"]);
    let token = node
        .client(Some(ADMIN))
        .create_namespace("junk", json!({"max_concurrent_uploads": 1}));
    let junk = [0xA5u8; 4096];
    for (what, first, hint) in [
        (
            "junk",
            &junk[..],
            "WebAssembly magic `\\\\0asm` (they start with a5 a5 a5 a5)",
        ),
        (
            "a core module",
            b"\0asm\x01\0\0\0\x01",
            "a core WebAssembly module",
        ),
    ] {
        let mut upload = upload_starting_with(&node, "junk", &token, 40 << 20, first);
        let answer = read_response(&mut upload);
        assert!(answer.starts_with("HTTP/1.1 422"), "{what}: {answer}");
        assert!(answer.contains("invalid_component"), "{what}: {answer}");
        assert!(answer.contains(hint), "{what}: {answer}");
    }
    // Neither kept its place: with a cap of 1, a real deploy goes through.
    wait_for_uploads(&node, "junk", 0);
    node.client(Some(&token))
        .deploy("junk", "bank-account", BANK);
}

#[test]
fn an_upload_past_the_cap_takes_a_place_given_back_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--body-read-timeout-ms", "60000"]);
    let token = node
        .client(Some(ADMIN))
        .create_namespace("queue", json!({"max_concurrent_uploads": 1}));
    let held = stalled_upload(&node, "queue", &token, 50 << 20);
    wait_for_uploads(&node, "queue", 1);

    // A real deploy while the one place is held: it waits (its body
    // unread) and goes through once the stalled upload is abandoned,
    // instead of being refused at once.
    let client = node.client(Some(&token));
    std::thread::scope(|scope| {
        let deploy = scope.spawn(|| client.deploy("queue", "bank-account", BANK));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!deploy.is_finished(), "the deploy did not wait for a place");
        drop(held);
        deploy.join().unwrap();
    });
    let (status, body) = client.send(
        "queue/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "U"}}),
    );
    assert_eq!(status, 200, "{body}");
    wait_for_uploads(&node, "queue", 0);
}

/// `PUT …/component` of `bytes`: the status, the answer and how long it
/// took.
fn timed_deploy(client: &Http, namespace: &str, bytes: Vec<u8>) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = client.call(
        "PUT",
        &format!("/v1/namespaces/{namespace}/aggregates/bank-account/component"),
        "application/wasm",
        Some(bytes),
    );
    (status, body, started.elapsed())
}

/// A namespace's uploads are read at most its `upload_bytes_per_sec` all
/// together: two at once take as long as their bytes at that rate, not as
/// one of them would alone.
#[test]
fn a_namespaces_uploads_share_its_upload_rate() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let rate = 1 << 20;
    let token = node.client(Some(ADMIN)).create_namespace(
        "paced",
        json!({"max_concurrent_uploads": 2, "upload_bytes_per_sec": rate}),
    );
    // Starts like a component (read whole), then junk: refused once read.
    let mut body = std::fs::read(BANK).unwrap()[..8].to_vec();
    body.resize(rate, 0xA5);
    let started = Instant::now();
    let answers: Vec<_> = std::thread::scope(|scope| {
        let uploads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| timed_deploy(&node.client(Some(&token)), "paced", body.clone()))
            })
            .collect();
        uploads.into_iter().map(|u| u.join().unwrap()).collect()
    });
    let both = started.elapsed();
    for (status, answer, _) in &answers {
        assert_eq!(*status, 422, "{answer}");
        assert_eq!(answer["error"], "invalid_component", "{answer}");
    }
    // 2 MiB at 1 MiB/s: about 2 s (each upload paced alone: about 1 s).
    assert!(
        both >= Duration::from_millis(1_800),
        "two uploads of 1 MiB at 1 MiB/s for the namespace took {both:?}"
    );
}

#[test]
fn a_namespace_that_deploys_nonstop_waits_its_turn_and_its_neighbour_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let admin = node.client(Some(ADMIN));
    // At 4 %, a compile that took `t` is followed by a rest of 24 `t`.
    let busy = node.client(Some(
        &admin.create_namespace("busy", json!({"compile_share_percent": 4})),
    ));
    let quiet = node.client(Some(&admin.create_namespace("quiet", json!({}))));
    // Same behaviour, new digests: each one is compiled.
    let variant =
        |n: u32| with_custom_section(&std::fs::read(BANK).unwrap(), "pacing", &n.to_le_bytes());

    let (status, body, first) = timed_deploy(&busy, "busy", variant(1));
    assert_eq!(status, 200, "{body}");
    std::thread::scope(|scope| {
        let second = scope.spawn(|| timed_deploy(&busy, "busy", variant(2)));
        std::thread::sleep(Duration::from_millis(50));
        // The neighbour's deploy, sent while busy's second one waits for
        // its turn, is compiled at once.
        let (status, body, _) = timed_deploy(&quiet, "quiet", variant(3));
        assert_eq!(status, 200, "{body}");
        assert!(
            !second.is_finished(),
            "busy's second deploy did not wait for its turn"
        );
        let (status, body, second) = second.join().unwrap();
        assert_eq!(status, 200, "{body}");
        // 24 times the first compile, which took most of the first
        // deploy's time: at least 5 times that whole deploy.
        assert!(
            second >= first * 5,
            "the second deploy took {second:?}, the first {first:?}"
        );
    });
    // The second deploy is the one serving.
    let (status, body) = busy.send(
        "busy/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "U"}}),
    );
    assert_eq!(status, 200, "{body}");
}

/// A deploy whose client leaves while it waits for its namespace's turn
/// to compile leaves with it: it is never compiled or activated, so a
/// tenant that sends deploys and hangs up cannot queue compiles that run
/// after it is gone.
#[test]
fn a_deploy_whose_client_left_while_it_waited_its_turn_is_never_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let admin = node.client(Some(ADMIN));
    let token = admin.create_namespace("busy", json!({"compile_share_percent": 4}));
    let busy = node.client(Some(&token));
    let variant =
        |n: u32| with_custom_section(&std::fs::read(BANK).unwrap(), "left", &n.to_le_bytes());

    let (status, body, _) = timed_deploy(&busy, "busy", variant(1));
    assert_eq!(status, 200, "{body}");
    // The second deploy is sent whole, waits out the first one's rest
    // (24 times its compile), and its client leaves meanwhile.
    let left = variant(2);
    let mut upload = stalled_upload(&node, "busy", &token, left.len());
    upload.write_all(&left[4..]).unwrap();
    wait_for_uploads(&node, "busy", 1);
    std::thread::sleep(Duration::from_millis(200));
    drop(upload);
    wait_for_uploads(&node, "busy", 0);
    // The next deploy waits for the first one's rest only, and is the one
    // activated after the first.
    let (status, body, _) = timed_deploy(&busy, "busy", variant(3));
    assert_eq!(status, 200, "{body}");
    let (status, history) = busy.get("/v1/namespaces/busy/aggregates/bank-account/components");
    assert_eq!(status, 200, "{history}");
    let deployed = history["history"].as_array().unwrap();
    assert_eq!(deployed.len(), 2, "{history}");
    assert_eq!(deployed[1]["digest"], body["digest"], "{history}");
}

/// The compile cache on disk (`<data dir>/compiled`, shared by every
/// tenant) stays within `--compile-cache-mib`: a tenant deploying version
/// after version pushes out the entries used longest ago instead of
/// filling the disk (0.75 MiB per version of this component, unbounded
/// before), and every version still serves. Activating versions that were
/// pushed out compiles them again, at the namespace's compile pace like a
/// deploy (activations were not paced before).
#[test]
fn deploying_version_after_version_keeps_the_compile_cache_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--compile-cache-mib", "2"]);
    let admin = node.client(Some(ADMIN));
    let churn = node.client(Some(
        &admin.create_namespace("churn", json!({"compile_share_percent": 100})),
    ));
    let cache = dir.path().join("compiled");
    let held = || -> (usize, u64) {
        std::fs::read_dir(&cache)
            .unwrap()
            .fold((0, 0), |(n, bytes), e| {
                (n + 1, bytes + e.unwrap().metadata().unwrap().len())
            })
    };
    let variant =
        |n: u32| with_custom_section(&std::fs::read(BANK).unwrap(), "churn", &n.to_le_bytes());
    let mut digests = Vec::new();
    for n in 0..6 {
        let (status, body, _) = timed_deploy(&churn, "churn", variant(n));
        assert_eq!(status, 200, "{body}");
        digests.push(body["digest"].as_str().unwrap().to_string());
        let (entries, bytes) = held();
        assert!(
            bytes <= 2 << 20,
            "after deploy {n}: {entries} entries, {bytes} bytes (bound 2 MiB)"
        );
        assert!(entries >= 1, "the version just compiled is kept");
    }
    // Operators see what it holds.
    let (status, metrics) = admin.get("/metrics");
    assert_eq!(status, 200);
    let gauge = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("aether_compile_cache_bytes "))
        .expect("the compile cache gauge");
    assert_eq!(gauge.parse::<u64>().unwrap(), held().1);
    // The version deployed last serves commands.
    let (status, body) = churn.send(
        "churn/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "U"}}),
    );
    assert_eq!(status, 200, "{body}");

    // Back to the first two versions, whose entries were pushed out: each
    // is compiled again from the stored component. At 20 %, a compile
    // that took `t` is followed by a rest of 4 `t`, so the second
    // activation waits out the first one's rest.
    let (status, body) = admin.call(
        "PUT",
        "/v1/namespaces/churn/limits",
        "application/json",
        Some(serde_json::to_vec(&json!({"compile_share_percent": 20})).unwrap()),
    );
    assert_eq!(status, 200, "{body}");
    let activate = |digest: &str| {
        let started = Instant::now();
        let (status, body) = churn.post_json(
            "/v1/namespaces/churn/aggregates/bank-account/activate",
            &json!({ "digest": digest }),
        );
        assert_eq!(status, 200, "{body}");
        started.elapsed()
    };
    let first = activate(&digests[0]);
    let second = activate(&digests[1]);
    assert!(
        second >= first * 5 / 2,
        "the second activation took {second:?}, the first {first:?}"
    );
    let (status, body) = churn.send(
        "churn/bank-account/acc-1",
        json!({"type": "Deposit", "data": {"amount": 5}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["events"][0]["metadata"]["component_digest"],
        json!(digests[1])
    );
    assert!(held().1 <= 2 << 20);
}
