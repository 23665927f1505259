//! A real `aether serve` child process on a loopback port, and the bare
//! HTTP/1.1 client the scenario talks to it with (the workspace has no
//! HTTP client with an async API, and the attacks need raw sockets anyway:
//! half a head, a body one byte a second).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as Buffered,
};
use tokio::net::{TcpSocket, TcpStream};

/// The admin token the node runs with.
pub(crate) const ADMIN: &str = "bench-admin-token-0123456789";

/// The loopback addresses the scenario's parties connect from: tenant A
/// (and the set-up), tenant B and the anonymous clients stand for
/// different machines, and the node counts connections per client address
/// (`--max-connections-per-address`).
pub(crate) const FROM_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub(crate) const FROM_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub(crate) const FROM_ANONYMOUS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A connection to the node at `addr` from the loopback address `from`.
pub(crate) async fn dial(addr: SocketAddr, from: Ipv4Addr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// Lines of the node's stderr kept for error messages.
const LOG_LINES: usize = 40;

/// A running `aether serve`, killed on drop.
pub(crate) struct NodeProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The last lines the node wrote to stderr (drained by a thread, so
    /// the node never blocks on a full pipe).
    log: Arc<Mutex<VecDeque<String>>>,
}

impl NodeProcess {
    /// Starts `aether serve` on `data_dir` with `flags`, on a free loopback
    /// port, with the default log filter; returns once it listens.
    pub(crate) fn start(data_dir: &Path, flags: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("AETHER_ADMIN_TOKEN", ADMIN)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting aether serve")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().context("the node's stderr")?;
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let mut line = String::new();
        let stdout = child.stdout.take().context("the node's stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the node's listening line")?;
        let mut node = Self {
            child,
            addr: "127.0.0.1:0".parse()?,
            log,
        };
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            std::thread::sleep(Duration::from_millis(200));
            bail!(
                "the node printed no address ({line:?}); log:\n{}",
                node.log()
            );
        };
        node.addr = url.trim_start_matches("http://").parse()?;
        Ok(node)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the node has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            std::thread::sleep(Duration::from_millis(200));
            bail!("the node exited ({status}); log:\n{}", self.log());
        }
        Ok(())
    }

    /// The last lines the node wrote to stderr.
    pub(crate) fn log(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().map(|l| format!("  {l}\n")).collect()
    }

    /// A line of its `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
    pub(crate) fn memory(&self, field: &str) -> anyhow::Result<u64> {
        memory(self.pid(), field)
    }

    /// The CPU time the node has used (user + system, every thread, those
    /// that ended included), in seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&self.pid().to_string())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn memory(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in {path}"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    let kib: u64 = kib
        .parse()
        .with_context(|| format!("reading {field} {kib:?} in {path}"))?;
    Ok(kib * 1024)
}

/// User + system CPU time of process `pid` (`self` for this one) from
/// `/proc/<pid>/stat`, in seconds (the kernel counts in USER_HZ, 100 a
/// second).
pub(crate) fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        let field = fields
            .get(i - 3)
            .with_context(|| format!("{path}: no field {i}"))?;
        Ok(field.parse::<u64>()? as f64)
    };
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}

/// The node's resident memory (sampled) and the CPU time of the node and
/// of this process, over a phase.
pub(crate) struct Watch {
    wall: Instant,
    node_cpu: f64,
    suite_cpu: f64,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

/// What [`Watch`] saw.
pub(crate) struct Watched {
    pub(crate) node_cores: f64,
    pub(crate) suite_cores: f64,
    /// The highest `VmRSS` sampled, in bytes.
    pub(crate) rss_peak: u64,
}

impl Watch {
    pub(crate) fn start(node: &NodeProcess) -> anyhow::Result<Self> {
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let pid = node.pid();
        let sampler = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(rss) = memory(pid, "VmRSS") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Ok(Self {
            wall: Instant::now(),
            node_cpu: node.cpu_seconds()?,
            suite_cpu: cpu_seconds("self")?,
            stop,
            peak,
            sampler,
        })
    }

    pub(crate) async fn stop(self, node: &NodeProcess) -> anyhow::Result<Watched> {
        let wall = self.wall.elapsed().as_secs_f64();
        let (node_cpu, suite_cpu) = (node.cpu_seconds()?, cpu_seconds("self")?);
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.await?;
        Ok(Watched {
            node_cores: (node_cpu - self.node_cpu) / wall,
            suite_cores: (suite_cpu - self.suite_cpu) / wall,
            rss_peak: self.peak.load(Ordering::Relaxed),
        })
    }
}

/// An answer of the node.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// The node said it closes the connection after this answer.
    pub(crate) closes: bool,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into())
        })
    }

    /// `<status> <error code>` (`200` alone for a success): the outcome
    /// the attacks are tallied by.
    pub(crate) fn outcome(&self) -> String {
        match self.json()["error"].as_str() {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// The head of a request: `method path`, the bearer `token` if any, and a
/// body's content type and length if any.
pub(crate) fn head(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, usize)>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: node\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match body {
        Some((content_type, length)) => head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
        )),
        None if method != "GET" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Reads a response's status line and headers: the status, the body's
/// length (`None`: chunked) and whether the node closes the connection.
pub(crate) async fn read_head(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<(u16, Option<usize>, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not a status line: {line:?}")))?;
    let (mut length, mut closes) = (Some(0), false);
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            return Ok((status, length, closes));
        }
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value.trim().parse().ok();
        } else if header.starts_with("transfer-encoding:") && header.contains("chunked") {
            length = None;
        } else if header.starts_with("connection:") && header.contains("close") {
            closes = true;
        }
    }
}

/// Reads a whole response (a body with a length, or chunked).
pub(crate) async fn read_answer(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<Answer> {
    let (status, length, closes) = read_head(reader).await?;
    let body = match length {
        Some(length) => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await?;
            body
        }
        None => {
            let mut body = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                reader.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                let start = body.len();
                body.resize(start + size + 2, 0);
                reader.read_exact(&mut body[start..]).await?;
                body.truncate(start + size);
                if size == 0 {
                    break body;
                }
            }
        }
    };
    Ok(Answer {
        status,
        body,
        closes,
    })
}

/// One kept-alive connection to the node.
pub(crate) struct Conn {
    stream: Buffered<TcpStream>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr, from: Ipv4Addr) -> std::io::Result<Self> {
        let stream = dial(addr, from).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: Buffered::new(stream),
        })
    }

    /// Sends a request and reads the answer.
    pub(crate) async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&Value>,
    ) -> std::io::Result<Answer> {
        let body = json.map(|v| v.to_string().into_bytes()).unwrap_or_default();
        let mut request = head(
            method,
            path,
            token,
            json.map(|_| ("application/json", body.len())),
        );
        request.extend_from_slice(&body);
        self.stream.get_mut().write_all(&request).await?;
        read_answer(&mut self.stream).await
    }
}

/// The most of a body [`call_once`] hands the kernel in one `send`.
///
/// A `send` on loopback copies what fits in the socket's buffer (MiBs, as
/// it grows) and runs the receiving side's TCP work too, all in the
/// sender's system call, which this kernel (no preemption inside system
/// calls) does not interrupt: `perf sched` saw the attackers' `send`s of
/// whole 48 MB uploads hold a core for 5–67 ms at a time, at nice 19,
/// while the node's and tenant A's threads waited for it. Clients on other
/// machines, which the attackers stand for, cost the node's machine only
/// the receiving side, in pieces of a few dozen packets (a NIC's poll).
const SEND_PIECE: usize = 64 << 10;

/// Sends one request on a fresh connection and reads the answer, writing
/// the body while reading (in [`SEND_PIECE`]s), so an answer the node sends
/// before it has read the body (a refusal) is seen.
pub(crate) async fn call_once(
    (addr, from): (SocketAddr, Ipv4Addr),
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<Answer> {
    let stream = dial(addr, from).await?;
    let (reader, mut writer) = stream.into_split();
    let request = head(method, path, token, Some((content_type, body.len())));
    let write = async {
        writer.write_all(&request).await?;
        for piece in body.chunks(SEND_PIECE) {
            writer.write_all(piece).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let read = async { read_answer(&mut Buffered::new(reader)).await };
    // A refused upload may be answered and closed before all of it is
    // written: the answer counts, not the write.
    let (_, answer) = tokio::join!(write, read);
    answer
}
