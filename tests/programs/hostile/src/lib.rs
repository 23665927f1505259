//! A hostile aggregate for the host's sandbox tests.
//!
//! Each command makes the guest misbehave in one way, so a test can show
//! that the host contains it: a trap, an endless loop, unbounded memory
//! growth, and attempts to reach a file or the network at run time (which
//! must fail inside the guest). `Observe` records the wall clock, the
//! monotonic clock and a random number in an event, for the determinism
//! tests. `Record` is an ordinary, well-behaved command; `RecordMany`
//! decides one event per note (for the events-per-command limit) and
//! `Spin` does a fixed amount of work before deciding (a slow but
//! well-behaved command, for the shutdown tests). `InflateView` makes the
//! aggregate's view that many bytes larger (for the view size limit).

use aether_guest::{Aggregate, Rejection, export_aggregate};
use serde::{Deserialize, Serialize};

/// The state: what the guest has recorded and observed so far.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Hostile {
    notes: Vec<String>,
    observations: Vec<Observation>,
    /// Bytes of padding the view carries (`InflateView`).
    #[serde(default, skip_serializing_if = "is_zero")]
    view_padding: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the guest saw of the outside world when it decided a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// `wasi:clocks/wall-clock` in nanoseconds since the Unix epoch.
    pub wall_clock_ns: u128,
    /// `wasi:clocks/monotonic-clock` in nanoseconds.
    pub monotonic_ns: u64,
    /// `wasi:random/random`.
    pub random: u64,
    /// `wasi:random/insecure`.
    pub insecure_random: u64,
}

/// Commands, each a way to misbehave (but `Record` and `Observe`).
#[derive(Debug, Deserialize)]
pub enum Command {
    Record {
        note: String,
    },
    RecordMany {
        notes: Vec<String>,
    },
    Spin {
        iterations: u64,
    },
    Observe,
    Trap,
    Loop,
    GrowMemory,
    ReadFile {
        path: String,
    },
    OpenSocket {
        address: String,
    },
    Log {
        message: String,
        repeat: u32,
    },
    InflateView {
        bytes: u64,
    },
    /// Decides an event it cannot read back (a bug a guest can have).
    DecideUnreadable,
}

/// Events.
#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    Recorded {
        note: String,
    },
    Observed(Observation),
    FileRead {
        bytes: usize,
    },
    SocketOpened,
    ViewInflated {
        bytes: u64,
    },
    /// Written, never read back: applying it fails, when decided and in
    /// every replay.
    #[serde(skip_deserializing)]
    Unreadable,
}

impl Aggregate for Hostile {
    type Command = Command;
    type Event = Event;

    fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Record { note } => Ok(vec![Event::Recorded { note }]),
            Command::RecordMany { notes } => Ok(notes
                .into_iter()
                .map(|note| Event::Recorded { note })
                .collect()),
            Command::Spin { iterations } => {
                let mut spins = 0u64;
                for _ in 0..iterations {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
                Ok(vec![Event::Recorded {
                    note: format!("spun {spins} times"),
                }])
            }
            Command::Observe => Ok(vec![Event::Observed(observe())]),
            Command::Trap => panic!("deliberate trap"),
            Command::Loop => {
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            Command::GrowMemory => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            Command::ReadFile { path } => match std::fs::read(&path) {
                Ok(bytes) => Ok(vec![Event::FileRead { bytes: bytes.len() }]),
                Err(e) => Err(Rejection::new(
                    "file-denied",
                    format!("reading {path}: {e}"),
                )),
            },
            Command::OpenSocket { address } => match open_socket(&address) {
                Ok(()) => Ok(vec![Event::SocketOpened]),
                Err(e) => Err(Rejection::new("socket-denied", e)),
            },
            Command::Log { message, repeat } => {
                for _ in 0..repeat {
                    println!("{message}");
                    aether_guest::log::info(&message);
                }
                Ok(vec![Event::Recorded { note: message }])
            }
            Command::InflateView { bytes } => Ok(vec![Event::ViewInflated { bytes }]),
            Command::DecideUnreadable => Ok(vec![Event::Unreadable]),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Recorded { note } => self.notes.push(note),
            Event::Observed(observation) => self.observations.push(observation),
            Event::FileRead { .. } | Event::SocketOpened => {}
            Event::ViewInflated { bytes } => self.view_padding = bytes,
            Event::Unreadable => unreachable!("never decoded"),
        }
    }

    fn view(&self) -> serde_json::Value {
        let mut view = serde_json::json!({
            "notes": self.notes,
            "observations": self.observations,
        });
        if self.view_padding > 0 {
            let padding = usize::try_from(self.view_padding).unwrap_or(usize::MAX);
            view["padding"] = serde_json::Value::String("x".repeat(padding));
        }
        view
    }
}

fn observe() -> Observation {
    let wall = wasi::clocks::wall_clock::now();
    Observation {
        wall_clock_ns: u128::from(wall.seconds) * 1_000_000_000 + u128::from(wall.nanoseconds),
        monotonic_ns: wasi::clocks::monotonic_clock::now(),
        random: wasi::random::random::get_random_u64(),
        insecure_random: wasi::random::insecure::get_insecure_random_u64(),
    }
}

/// Tries to open a TCP connection through `wasi:sockets`, the way any
/// language runtime would.
fn open_socket(address: &str) -> Result<(), String> {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let addr: std::net::SocketAddrV4 = address
        .parse()
        .map_err(|e| format!("bad address {address}: {e}"))?;
    let network = wasi::sockets::instance_network::instance_network();
    let socket = wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create-tcp-socket: {e:?}"))?;
    let [a, b, c, d] = addr.ip().octets();
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: addr.port(),
        address: (a, b, c, d),
    });
    socket
        .start_connect(&network, remote)
        .map_err(|e| format!("start-connect: {e:?}"))?;
    socket.subscribe().block();
    socket
        .finish_connect()
        .map(|_| ())
        .map_err(|e| format!("finish-connect: {e:?}"))?;
    Ok(())
}

export_aggregate!(Hostile);
