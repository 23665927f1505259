//! Connection hygiene against a real `aether serve`: slow heads, stalled
//! bodies and idle connections are closed after their timeouts, the
//! operations endpoints answer while every ordinary connection is taken,
//! one client cannot take every connection, and SIGTERM exits within its grace period whatever clients hold open.
//! Raw TCP, since no well-behaved client sends half a request.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::json;

use crate::support::{ADMIN, BANK, NodeProcess};

/// How long a test waits for the node to close a connection: far past
/// every timeout the tests set, so only a node that never closes fails.
const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) fn connect(node: &NodeProcess) -> TcpStream {
    let address = node.url.trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("connect to the node");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A connection from `source`, another loopback address: another client,
/// as the node counts them.
fn connect_from(node: &NodeProcess, source: Ipv4Addr) -> TcpStream {
    let address: SocketAddr = node.url.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        socket.connect(address).await.expect("connect to the node")
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until the node closes the connection; what it sent. Panics if it
/// keeps the connection open for [`PATIENCE`].
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the node kept the connection open ({e}); it sent: {}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// [`read_response`], or what was read if the node closed the connection
/// first.
fn read_response_or_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if text.contains("\r\n\r\n") {
            return text;
        }
        match stream.read(&mut buffer) {
            Ok(n) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => return text,
        }
    }
}

/// Reads one response to a request without a body: head and body (the
/// node's JSON answers carry a `content-length`).
pub(crate) fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = stream.read(&mut buffer).expect("read a response");
        assert!(n > 0, "the connection closed mid-response: {text}");
        received.extend_from_slice(&buffer[..n]);
    }
}

/// The value of the sample `name` (with its labels) in a `/metrics` answer.
fn metric(answer: &str, name: &str) -> u64 {
    answer
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
}

fn get(path: &str, token: Option<&str>, close: bool) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: node\r\n{auth}{connection}\r\n").into_bytes()
}

#[test]
fn a_head_sent_too_slowly_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--header-read-timeout-ms",
            "300",
            "--keep-alive-timeout-ms",
            "60000",
        ],
    );
    let mut slow = connect(&node);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n")
        .unwrap();
    let answer = read_until_closed(&mut slow);
    assert!(!answer.contains("200 OK"), "{answer}");
    // The node itself is fine.
    let (status, _) = node.client(None).get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_body_that_stops_arriving_is_answered_408_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--body-read-timeout-ms",
            "300",
            "--keep-alive-timeout-ms",
            "60000",
        ],
    );
    let mut stalled = connect(&node);
    let head = format!(
        "POST /v1/namespaces HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    stalled.write_all(head.as_bytes()).unwrap();
    let answer = read_until_closed(&mut stalled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let (_, listed) = node.client(Some(ADMIN)).get("/v1/namespaces");
    assert_eq!(listed["namespaces"], json!([]));
}

/// An idle kept-alive connection is closed, but a live event stream that
/// is quiet for longer than the keep-alive timeout is a request in flight
/// and stays open.
#[test]
fn idle_connections_are_closed_but_quiet_streams_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--keep-alive-timeout-ms",
            "300",
            "--header-read-timeout-ms",
            "60000",
        ],
    );
    let mut idle = connect(&node);
    idle.write_all(&get("/healthz", None, false)).unwrap();
    assert!(read_response(&mut idle).starts_with("HTTP/1.1 200"));
    assert_eq!(read_until_closed(&mut idle), "", "closed without a word");

    let admin = node.client(Some(ADMIN));
    let token = admin.create_namespace("bank", json!({}));
    let bank = node.client(Some(&token));
    bank.deploy("bank", "bank-account", BANK);
    let mut stream = connect(&node);
    stream
        .write_all(&get("/v1/namespaces/bank/events/live", Some(&token), false))
        .unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains("\r\n\r\n") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    std::thread::sleep(Duration::from_millis(1_000));
    let (status, _) = bank.send(
        "bank/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "Ada"}}),
    );
    assert_eq!(status, 200);
    while !seen.contains("event: event") {
        let n = stream
            .read(&mut buffer)
            .expect("the quiet stream is still open");
        assert!(n > 0, "the quiet stream was closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}

/// With every ordinary connection taken, a connection from the reserve
/// still gets `/healthz` and `/metrics`, and anything else is a clear 503.
#[test]
fn operations_endpoints_answer_while_every_connection_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--max-connections",
            "2",
            "--ops-reserve",
            "1",
            "--keep-alive-timeout-ms",
            "60000",
        ],
    );
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut held = connect(&node);
            held.write_all(&get("/healthz", None, false)).unwrap();
            assert!(read_response(&mut held).starts_with("HTTP/1.1 200"));
            held
        })
        .collect();

    // The reserve's one slot frees when the previous connection's task
    // ends, just after the client sees it close: try again until it has.
    let on_reserve = |request: Vec<u8>| -> String {
        for _ in 0..100 {
            let mut stream = connect(&node);
            stream.write_all(&request).unwrap();
            let answer = read_until_closed(&mut stream);
            if !answer.is_empty() {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no reserve connection was served");
    };
    let refused = on_reserve(get("/v1/namespaces", Some(ADMIN), true));
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("\"overloaded\""), "{refused}");
    let health = on_reserve(get("/healthz", None, true));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = on_reserve(get("/metrics", Some(ADMIN), true));
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let full = "aether_connections_refused_total{reason=\"full\"}";
    let refused_before = metric(&metrics, full);

    // With the reserve taken too, the next connection is closed at once,
    // and counted.
    let mut reserve_held = None;
    for _ in 0..100 {
        let mut stream = connect(&node);
        stream.write_all(&get("/healthz", None, false)).unwrap();
        if read_response_or_closed(&mut stream).starts_with("HTTP/1.1 200") {
            reserve_held = Some(stream);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let reserve_held = reserve_held.expect("the reserve's slot came back");
    let mut beyond = connect(&node);
    let _ = beyond.write_all(&get("/healthz", None, true));
    assert_eq!(
        read_until_closed(&mut beyond),
        "",
        "closed without an answer"
    );
    drop(reserve_held);
    let metrics = on_reserve(get("/metrics", Some(ADMIN), true));
    assert!(
        metric(&metrics, full) > refused_before,
        "the connection closed at once is counted: {metrics}"
    );

    drop(held);
    let admin = node.client(Some(ADMIN));
    for attempt in 0.. {
        let (status, _) = admin.get("/v1/namespaces");
        if status == 200 {
            break;
        }
        assert!(attempt < 100, "ordinary slots never came back: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client over `--max-connections-per-address` is answered 429
/// `too_many_connections` (naming it) and closed, while another client is
/// served as before; a connection it closes gives it its place back.
#[test]
fn one_client_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--max-connections-per-address",
            "3",
            "--keep-alive-timeout-ms",
            "60000",
        ],
    );
    let (greedy, other) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut held = connect_from(&node, greedy);
            held.write_all(&get("/healthz", None, false)).unwrap();
            assert!(read_response(&mut held).starts_with("HTTP/1.1 200"));
            held
        })
        .collect();

    for path in ["/v1/namespaces", "/healthz"] {
        let mut over = connect_from(&node, greedy);
        over.write_all(&get(path, Some(ADMIN), false)).unwrap();
        let refused = read_until_closed(&mut over);
        assert!(refused.starts_with("HTTP/1.1 429"), "{path}: {refused}");
        assert!(refused.contains("\"too_many_connections\""), "{refused}");
        assert!(refused.contains("this client (127.0.0.2)"), "{refused}");
    }
    let mut served = connect_from(&node, other);
    served
        .write_all(&get("/v1/namespaces", Some(ADMIN), false))
        .unwrap();
    let answer = read_response(&mut served);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    served
        .write_all(&get("/metrics", Some(ADMIN), true))
        .unwrap();
    let metrics = read_until_closed(&mut served);
    let refused = "aether_connections_refused_total{reason=\"client_cap\"}";
    assert_eq!(metric(&metrics, refused), 2, "{metrics}");
    let open = metric(&metrics, "aether_connections_open");
    assert!(open >= 4, "the three held and this one are open: {open}");

    // Its place frees when the closed connection's task ends, just after
    // the client sees it close: try again until it has.
    held.pop();
    for attempt in 0.. {
        let mut again = connect_from(&node, greedy);
        again
            .write_all(&get("/v1/namespaces", Some(ADMIN), true))
            .unwrap();
        let answer = read_until_closed(&mut again);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            attempt < 100,
            "the closed connection's place never came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Half a head and half a body, with timeouts far away, do not keep a
/// SIGTERM'd node alive: after the grace period it drops them and exits 0.
#[test]
fn sigterm_exits_after_the_grace_period_whatever_clients_hold_open() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--shutdown-grace-ms",
            "1000",
            "--header-read-timeout-ms",
            "600000",
            "--body-read-timeout-ms",
            "600000",
            "--keep-alive-timeout-ms",
            "600000",
        ],
    );
    let mut half_head = connect(&node);
    half_head
        .write_all(b"POST /v1/namespaces HTTP/1.1\r\nHost: node\r\n")
        .unwrap();
    let mut half_body = connect(&node);
    let head = format!(
        "POST /v1/namespaces HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    half_body.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // `terminate` fails the test if the node is still running after 60 s.
    let (status, log) = node.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains("dropping the connections still open"),
        "the grace period, not the clients, ended it: {log}"
    );
    assert_eq!(read_until_closed(&mut half_head), "");
    let answer = read_until_closed(&mut half_body);
    assert!(!answer.contains("201"), "{answer}");
}
