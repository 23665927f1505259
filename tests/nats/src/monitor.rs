//! The server's HTTP monitoring endpoints (`/healthz`, `/jsz`), read with a
//! bare HTTP/1.0 request: no client library needed for two GETs.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `path` from the monitoring port: the status code and the body.
pub(crate) fn get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    // HTTP/1.0: the server closes the connection after the body, which
    // it sends as is (no chunks).
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "a malformed HTTP response");
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(malformed)?;
    Ok((status, body.to_owned()))
}

/// `Ok` when `/healthz` answers 200: JetStream is up, in a cluster in
/// contact with a meta leader, and every stream and consumer this server
/// holds is current. Else what it said, for the panic message.
pub(crate) fn healthy(port: u16) -> Result<(), String> {
    match get(port, "/healthz") {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!("/healthz answered {status} {}", body.trim())),
        Err(e) => Err(format!("/healthz: {e}")),
    }
}

/// The JetStream meta group as `/jsz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaCluster {
    /// The meta leader's server name, empty while there is none.
    pub(crate) leader: String,
    /// How many servers the meta group has.
    pub(crate) size: u64,
}

/// The meta group's leader and size from `/jsz`.
pub(crate) fn meta_cluster(port: u16) -> Result<MetaCluster, String> {
    let body = match get(port, "/jsz") {
        Ok((200, body)) => body,
        Ok((status, body)) => return Err(format!("/jsz answered {status} {}", body.trim())),
        Err(e) => return Err(format!("/jsz: {e}")),
    };
    let jsz: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("/jsz is not JSON ({e}): {body}"))?;
    let meta = &jsz["meta_cluster"];
    Ok(MetaCluster {
        leader: meta["leader"].as_str().unwrap_or_default().to_owned(),
        size: meta["cluster_size"].as_u64().unwrap_or_default(),
    })
}

/// The streams and consumers this server holds (as `/jsz` lists them)
/// that have no leader yet: a JetStream request for one of them goes
/// unanswered until it has.
pub(crate) fn leaderless(port: u16) -> Result<Vec<String>, String> {
    let path = "/jsz?accounts=true&streams=true&consumers=true";
    let body = match get(port, path) {
        Ok((200, body)) => body,
        Ok((status, body)) => return Err(format!("{path} answered {status} {}", body.trim())),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    let jsz: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{path} is not JSON ({e}): {body}"))?;
    let has_leader = |asset: &serde_json::Value| {
        asset["cluster"]["leader"]
            .as_str()
            .is_some_and(|leader| !leader.is_empty())
    };
    let list = |value: &serde_json::Value| value.as_array().cloned().unwrap_or_default();
    let mut leaderless = Vec::new();
    for account in list(&jsz["account_details"]) {
        for stream in list(&account["stream_detail"]) {
            let name = stream["name"].as_str().unwrap_or("?");
            if !has_leader(&stream) {
                leaderless.push(format!("stream {name}"));
            }
            for consumer in list(&stream["consumer_detail"]) {
                if !has_leader(&consumer) {
                    let consumer = consumer["name"].as_str().unwrap_or("?");
                    leaderless.push(format!("consumer {name} > {consumer}"));
                }
            }
        }
    }
    Ok(leaderless)
}
