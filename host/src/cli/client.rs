//! The CLI's HTTP client for a node's API (blocking; run it off the async
//! workers).

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::Agent;

/// Where the node is and which token to present.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connection {
    /// The node's address.
    #[arg(long, env = "AETHER_NODE", default_value = "http://127.0.0.1:7700")]
    node: String,
    /// The token to present (a namespace's token, or the admin token).
    #[arg(long, env = "AETHER_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The node answered with an error: its status, stable code and message.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub(crate) struct ApiFailure {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) body: Value,
}

/// Bodies larger than this wait for the node's `100 Continue` before they
/// are sent (the node answers from the head alone when it refuses one): a
/// node that closes the connection after its answer would otherwise leave
/// a client still sending with a broken pipe and no answer.
const EXPECT_CONTINUE_OVER: usize = 64 << 10;

/// How long a large body waits for the node's `100 Continue` before it is
/// sent anyway.
const AWAIT_CONTINUE: Duration = Duration::from_secs(5);

pub(crate) struct Client {
    agent: Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(connection: &Connection) -> Self {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // Longer than a node lets an upload wait for a place (1 s)
            // before it refuses it from the head alone.
            .timeout_await_100(Some(AWAIT_CONTINUE))
            .build()
            .into();
        Self {
            agent,
            base: connection.node.trim_end_matches('/').to_owned(),
            token: connection.token.clone(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// `GET path`, answering JSON.
    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        let mut request = self.agent.get(self.url(path));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        answer(request.call(), &self.base)
    }

    /// `GET path`, answering one of the API's typed answers
    /// (`aether_service`'s types, the node's own).
    pub(crate) fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let mut request = self.agent.get(self.url(path));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        typed(&answer_text(request.call(), &self.base)?)
    }

    /// `POST path` with `body` as JSON, answering a typed answer.
    pub(crate) fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body).context("encoding the request")?;
        let mut request = self.agent.post(self.url(path));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        let response = request.content_type("application/json").send(bytes);
        typed(&answer_text(response, &self.base)?)
    }

    /// `DELETE path`, answering JSON.
    pub(crate) fn delete(&self, path: &str) -> Result<Value> {
        let mut request = self.agent.delete(self.url(path));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        answer(request.call(), &self.base)
    }

    /// `method path` with a JSON body (`None`: empty body).
    pub(crate) fn send_json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send_bytes(method, path, "application/json", bytes)
    }

    /// `method path` with `bytes` of `content_type`. A large body is sent
    /// only once the node asks for it (`Expect: 100-continue`): a refusal
    /// from the request's head (a wrong token, too large, no upload place)
    /// then reaches the user instead of a broken pipe.
    pub(crate) fn send_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Value> {
        let url = self.url(path);
        let mut request = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        if bytes.len() > EXPECT_CONTINUE_OVER {
            request = request.header("Expect", "100-continue");
        }
        answer(request.content_type(content_type).send(bytes), &self.base)
    }

    /// `PUT path` with `bytes`, asking for `application/x-ndjson`: calls
    /// `each` per JSON line of the answer (progress, then the outcome).
    pub(crate) fn put_ndjson(
        &self,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let mut request = self
            .agent
            .put(self.url(path))
            .header("Accept", "application/x-ndjson");
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        if bytes.len() > EXPECT_CONTINUE_OVER {
            request = request.header("Expect", "100-continue");
        }
        let response = request
            .content_type(content_type)
            .send(bytes)
            .map_err(|e| unreachable_node(e, &self.base))?;
        if response.status().as_u16() >= 400 {
            return answer(Ok(response), &self.base).map(|_| ());
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("reading the node's answer")?;
            if line.trim().is_empty() {
                continue;
            }
            each(serde_json::from_str(&line).context("the node's answer is not JSON lines")?)?;
        }
        Ok(())
    }

    /// Streams server-sent events from `path`, calling `each(event, data)`
    /// per message until the stream ends.
    pub(crate) fn stream(
        &self,
        path: &str,
        mut each: impl FnMut(&str, &str) -> Result<()>,
    ) -> Result<()> {
        let mut request = self
            .agent
            .get(self.url(path))
            .header("Accept", "text/event-stream");
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        let response = request
            .call()
            .map_err(|e| unreachable_node(e, &self.base))?;
        if response.status().as_u16() >= 400 {
            return answer(Ok(response), &self.base).map(|_| ());
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let (mut event, mut data) = (String::from("message"), String::new());
        for line in reader.lines() {
            let line = line.context("reading the event stream")?;
            if line.is_empty() {
                if !data.is_empty() {
                    each(&event, &data)?;
                }
                (event, data) = (String::from("message"), String::new());
            } else if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(chunk) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(chunk.strip_prefix(' ').unwrap_or(chunk));
            }
        }
        Ok(())
    }
}

/// The node's error as [`ApiFailure`], from a JSON error body.
pub(crate) fn failure(status: u16, body: Value) -> ApiFailure {
    ApiFailure {
        status,
        code: body["error"].as_str().unwrap_or("unknown").to_owned(),
        message: body["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned),
        body,
    }
}

fn unreachable_node(error: ureq::Error, base: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach the node at {base}: {error} (is `aether serve` running? set --node or AETHER_NODE)"
    )
}

/// The JSON of a successful answer, or the node's error as [`ApiFailure`].
fn answer(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    base: &str,
) -> Result<Value> {
    let text = answer_text(response, base)?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The text of a successful answer, or the node's error as [`ApiFailure`].
fn answer_text(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    base: &str,
) -> Result<String> {
    let mut response = response.map_err(|e| unreachable_node(e, base))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .context("reading the node's answer")?;
    if status < 400 {
        return Ok(text);
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Err(failure(status, body).into())
}

/// A typed answer from its JSON text.
fn typed<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).with_context(|| {
        format!(
            "the node's answer is not what this CLI expects (another version?): {}",
            text.chars().take(200).collect::<String>()
        )
    })
}
