//! Two ways to reach a node: a real `aether serve` process on a random
//! loopback port ([`NodeProcess`], with a blocking HTTP client), and the
//! real router in this process ([`InProcess`], without sockets, for sending
//! bytes no well-behaved client would send).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_host::namespace::Namespace;
use aether_host::namespace::layout::SYSTEM_NAMESPACE;
use aether_host::node::{Node, NodeConfig, api};
use aether_host::runtime::SandboxLimits;
use aether_host::service::{CommandAnswer, ServiceError};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The admin token every test node runs with.
pub(crate) const ADMIN: &str = "test-admin-token-0123456789";

/// The bank-account component.
pub(crate) const BANK: &str = aether_test_artifacts::BANK_ACCOUNT;
/// The hostile test guest.
pub(crate) const HOSTILE: &str = aether_test_artifacts::HOSTILE;

/// A running `aether serve`, killed on drop if still running.
pub(crate) struct NodeProcess {
    child: Child,
    pub(crate) url: String,
    /// What the node has written to stderr so far (drained by a thread, so
    /// the node never blocks on a full pipe).
    log: Arc<std::sync::Mutex<String>>,
}

impl NodeProcess {
    /// Starts a node on `data_dir` listening on a free loopback port.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> NodeProcess {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// As [`NodeProcess::start`], with extra environment variables.
    pub(crate) fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--partitions",
                "2",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("AETHER_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aether serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            // The node ended before it listened: wait for it, so its whole
            // log (why it stopped) is in the message.
            let status = child.wait();
            std::thread::sleep(std::time::Duration::from_millis(200));
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
            panic!("no address in {line:?} (the node exited: {status:?}); log:\n{log}");
        };
        let url = url.to_owned();
        NodeProcess { child, url, log }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its
    /// status and what it wrote to stderr.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the drain thread read the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log.lock().unwrap().clone())
    }

    /// The process id.
    #[allow(dead_code)] // used by the cluster tests, which share this file
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the node has written to stderr so far.
    #[allow(dead_code)] // used by the cluster tests, which share this file
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A client with `token` (or none).
    pub(crate) fn client(&self, token: Option<&str>) -> Http {
        Http::new(&self.url, token)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client for a node process.
#[derive(Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Http {
    pub(crate) fn new(base: &str, token: Option<&str>) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A refused upload is answered before its body is read, which
            // ends the connection: never reuse one.
            .max_idle_connections(0)
            .build()
            .into();
        Http {
            agent,
            base: base.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// `method path` with an optional body of `content_type`; the status
    /// and the JSON answer (or the text, as a JSON string).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let response = match (method, body) {
            (method @ ("GET" | "DELETE"), _) => {
                let mut r = match method {
                    "GET" => self.agent.get(&url),
                    _ => self.agent.delete(&url),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (method, body) => {
                let mut r = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.content_type(content_type).send(body.unwrap_or_default())
            }
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, "", None)
    }

    pub(crate) fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(
            "POST",
            path,
            "application/json",
            Some(body.to_string().into_bytes()),
        )
    }

    /// Creates `namespace` (this client must hold the admin token) and
    /// returns its token.
    pub(crate) fn create_namespace(&self, namespace: &str, limits: Value) -> String {
        let (status, body) = self.post_json(
            "/v1/namespaces",
            &json!({ "name": namespace, "limits": limits }),
        );
        assert_eq!(status, 201, "create {namespace}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Deploys the component at `path` for `aggregate_type`.
    pub(crate) fn deploy(&self, namespace: &str, aggregate_type: &str, path: &str) -> String {
        let (status, body) = self.call(
            "PUT",
            &format!("/v1/namespaces/{namespace}/aggregates/{aggregate_type}/component"),
            "application/wasm",
            Some(std::fs::read(path).unwrap()),
        );
        assert_eq!(status, 200, "deploy: {body}");
        body["digest"].as_str().unwrap().to_owned()
    }

    /// Sends a command; the status and answer. Every answer is checked to
    /// be the shared type's JSON: a [`CommandAnswer`] or an error whose code
    /// and status are an `ErrorCode`'s.
    pub(crate) fn send(&self, stream: &str, command: Value) -> (u16, Value) {
        let (ns, rest) = stream.split_once('/').unwrap();
        let (ty, id) = rest.split_once('/').unwrap();
        let (status, body) = self.post_json(
            &format!("/v1/namespaces/{ns}/aggregates/{ty}/{id}/commands"),
            &command,
        );
        if status == 200 {
            let answer: CommandAnswer = serde_json::from_value(body.clone())
                .unwrap_or_else(|e| panic!("not a command answer ({e}): {body}"));
            assert_eq!(serde_json::to_value(&answer).unwrap(), body);
        } else {
            assert_service_error(status, &body);
        }
        (status, body)
    }
}

/// A node in this process: the real router over a real node on a
/// temporary data directory, called without sockets.
pub(crate) struct InProcess {
    pub(crate) node: Arc<Node>,
    router: axum::Router,
    dir: tempfile::TempDir,
}

impl InProcess {
    /// A node with `limits` as every namespace's defaults.
    pub(crate) async fn start(limits: SandboxLimits) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        config.admin_token = Some(ADMIN.to_owned());
        config.runtime.partitions = 2;
        config.runtime.max_instances = 64;
        config.runtime.limits = limits;
        let (node, _) = Node::open(&config).await.expect("open the node");
        let router = api::router(node.clone());
        InProcess { node, router, dir }
    }

    /// The node's data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends `request` as it is; the status and the JSON answer.
    pub(crate) async fn request(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    /// Sends a request; the status and the JSON answer (every answer of
    /// the API must be JSON, so a non-JSON one fails the test).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    /// Sends a GET and returns the response with its body unread: a live
    /// event stream stays open until the response is dropped.
    pub(crate) async fn open(&self, path: &str, token: &str) -> axum::response::Response {
        let request = Request::builder()
            .method("GET")
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        self.router.clone().oneshot(request).await.unwrap()
    }

    /// Sends a component with an `Accept` header; the status and the raw
    /// text of the answer.
    pub(crate) async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/wasm")
            .header("accept", accept)
            .body(Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    pub(crate) async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        self.call(
            "POST",
            path,
            Some(token),
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(token), None, Body::empty())
            .await
    }

    pub(crate) async fn create_namespace(&self, namespace: &str, limits: Value) -> String {
        let (status, body) = self
            .post_json(
                "/v1/namespaces",
                ADMIN,
                &json!({ "name": namespace, "limits": limits }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {namespace}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn deploy(
        &self,
        namespace: &str,
        token: &str,
        aggregate_type: &str,
        path: &str,
    ) {
        let (status, body) = self
            .call(
                "PUT",
                &format!("/v1/namespaces/{namespace}/aggregates/{aggregate_type}/component"),
                Some(token),
                Some("application/wasm"),
                std::fs::read(path).unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "deploy: {body}");
    }

    pub(crate) async fn send(
        &self,
        stream: &str,
        token: &str,
        command: Value,
    ) -> (StatusCode, Value) {
        let (ns, rest) = stream.split_once('/').unwrap();
        let (ty, id) = rest.split_once('/').unwrap();
        self.post_json(
            &format!("/v1/namespaces/{ns}/aggregates/{ty}/{id}/commands"),
            token,
            &command,
        )
        .await
    }

    /// The number of events stored on the node: the heads of every
    /// namespace's log (positions are per namespace), the node's own
    /// included.
    pub(crate) async fn head(&self) -> u64 {
        let store = self.node.runtime().store();
        let system = Namespace::new(SYSTEM_NAMESPACE).unwrap();
        let mut total = store.head_position(&system).await.unwrap();
        for namespace in self.node.tenants().namespaces() {
            total += store.head_position(&namespace).await.unwrap();
        }
        total
    }
}

/// Asserts an error answer: the status, the stable code, and a message.
pub(crate) fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], json!(code), "{body}");
    assert_service_error(status, body);
    assert!(
        body["message"].as_str().is_some_and(|m| m.len() > 10),
        "an error needs a message a person can act on: {body}"
    );
}

/// Asserts that `body` is a [`ServiceError`]'s body with a code of the one
/// table (`ErrorCode`) and the status that code has everywhere.
pub(crate) fn assert_service_error(status: u16, body: &Value) {
    let error = ServiceError::from_body(body)
        .unwrap_or_else(|| panic!("not an error body with a known code: {body}"));
    assert_eq!(error.code.http_status(), status, "{body}");
    assert_eq!(&error.body(), body, "the body is the error's, key for key");
}
