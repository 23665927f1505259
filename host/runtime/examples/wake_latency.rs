//! How long a thread at the normal priority waits for a core when it wakes
//! beside threads that gave way, as a light tenant's command path does
//! beside compiles and busy lanes (`background.rs`, `busy.rs`).
//!
//! Two threads at the normal priority pass a message back and forth (one
//! round trip every 200 µs, 10 000 of them) while two threads work in
//! bursts (2 ms of work, 1 ms of sleep, like a compile or a busy guest,
//! which stop and start rather than spin), lowered in one of three ways:
//!
//! ```text
//! cargo run --release -p aether-runtime --example wake_latency -- none
//! cargo run --release -p aether-runtime --example wake_latency -- nice
//! cargo run --release -p aether-runtime --example wake_latency -- lowered
//! cargo run --release -p aether-runtime --example wake_latency -- lowered tcp
//! ```
//!
//! `none`: no bursty threads; `nice`: bursty threads at nice 19 only
//! (`setpriority`); `lowered`: bursty threads lowered by 19 steps the way
//! the node lowers its own ([`aether_runtime::lower_this_thread_by`]: nice
//! and a long time slice). Prints the round trip's percentiles.
//!
//! A second argument, `tcp`, makes the bursts kernel work instead of
//! spinning: each bursty thread writes 1 MiB at a time to a loopback TCP
//! connection that a thread lowered the same way reads. Part of that work
//! (the network stack's, in softirq and in the `ksoftirqd` threads) runs
//! at no thread's nice value, so lowering the threads that cause it
//! protects the round trip less than it does from spinning ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 10_000;
const SPACING: Duration = Duration::from_micros(200);
const BURSTY_THREADS: usize = 2;
const BURST: Duration = Duration::from_millis(2);
const PAUSE: Duration = Duration::from_millis(1);

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "lowered".into());
    let lower: Option<fn()> = match mode.as_str() {
        "none" => None,
        "nice" => Some(nice_only),
        "lowered" => Some(|| aether_runtime::lower_this_thread_by(19)),
        other => panic!("unknown mode {other:?}: none, nice or lowered"),
    };
    let work: &'static str = match std::env::args().nth(2).as_deref() {
        None | Some("spin") => "spin",
        Some("tcp") => "tcp",
        Some(other) => panic!("unknown work {other:?}: spin or tcp"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let bursty: Vec<_> = lower
        .iter()
        .flat_map(|&lower| std::iter::repeat_n(lower, BURSTY_THREADS))
        .map(|lower| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                lower();
                let mut tcp = (work == "tcp").then(|| loopback_sink(lower));
                let chunk = vec![7u8; 1 << 20];
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    while started.elapsed() < BURST {
                        match &mut tcp {
                            Some(stream) => std::io::Write::write_all(stream, &chunk).unwrap(),
                            None => std::hint::spin_loop(),
                        }
                    }
                    std::thread::sleep(PAUSE);
                }
            })
        })
        .collect();

    let (ping, pinged) = mpsc::channel::<Instant>();
    let (pong, ponged) = mpsc::channel::<Instant>();
    let echo = std::thread::spawn(move || {
        for sent in pinged {
            if pong.send(sent).is_err() {
                break;
            }
        }
    });
    let mut round_trips = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        std::thread::sleep(SPACING);
        ping.send(Instant::now()).unwrap();
        let sent = ponged.recv().unwrap();
        round_trips.push(sent.elapsed());
    }
    drop(ping);
    echo.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    bursty.into_iter().for_each(|t| t.join().unwrap());

    round_trips.sort();
    let at = |q: f64| round_trips[((ROUND_TRIPS as f64 * q) as usize).min(ROUND_TRIPS - 1)];
    println!(
        "{mode}, {work}: round trip p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(0.999),
        round_trips[ROUND_TRIPS - 1]
    );
}

/// A loopback TCP connection whose other end a thread lowered by `lower`
/// reads and discards.
fn loopback_sink(lower: fn()) -> std::net::TcpStream {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut accepted, _) = listener.accept().unwrap();
    std::thread::spawn(move || {
        lower();
        let mut buffer = vec![0u8; 1 << 20];
        while std::io::Read::read(&mut accepted, &mut buffer).is_ok_and(|n| n > 0) {}
    });
    stream
}

/// Raises the calling thread's nice value to 19 and nothing else.
fn nice_only() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` and `setpriority` take plain integers and touch no
    // memory; `PRIO_PROCESS` with a thread id changes only this thread.
    #[allow(unsafe_code)]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
}
