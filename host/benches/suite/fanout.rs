//! `bus_fanout`: publish-to-delivery latency of the in-process bus with 10
//! subscribers, each a task on the async runtime, as a command's publish
//! would reach them. Events are published in bursts of one command's worth
//! (1 event) at a steady pace; every subscriber must receive every event,
//! in order. (The NATS bus for cross-node fan-out is not built yet.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_host::bus::{Filter, LocalBus, Scope};
use aether_host::namespace::Namespace;
use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, MemoryStore, NewEvent, RecordedEvent,
};
use anyhow::ensure;
use tokio::task::JoinSet;

use super::fixture::{self, Ctx};
use super::report::{Metric, Report, percentile};

const SUBSCRIBERS: usize = 10;
const EVENTS: u64 = 20_000;
/// Events published between pauses, and the pause: about 50 000 events/s.
const BURST: u64 = 50;
const PAUSE: Duration = Duration::from_millis(1);

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let count = ctx.size(EVENTS, 1_000);
    let bus = Arc::new(LocalBus::default());
    let namespace = Namespace::new(fixture::NAMESPACE)?;
    let events = recorded_events(count).await?;
    let started = Instant::now();
    let published: Arc<Vec<std::sync::OnceLock<Duration>>> =
        Arc::new((0..=count).map(|_| std::sync::OnceLock::new()).collect());

    let mut subscribers = JoinSet::new();
    for _ in 0..SUBSCRIBERS {
        let mut subscriber = bus.subscribe(Scope::Namespace(namespace.clone()), Filter::default());
        let published = published.clone();
        subscribers.spawn(async move {
            let mut latencies = Vec::with_capacity(count as usize);
            for expected in 1..=count {
                let event = subscriber.recv().await?;
                let arrived = started.elapsed();
                ensure!(
                    event.position == expected,
                    "got {} for {expected}",
                    event.position
                );
                let sent = published[expected as usize]
                    .get()
                    .copied()
                    .unwrap_or(arrived);
                latencies.push((arrived.saturating_sub(sent)).as_secs_f64() * 1e6);
            }
            anyhow::Ok(latencies)
        });
    }
    for (event, position) in events.iter().zip(1..) {
        let _ = published[position as usize].set(started.elapsed());
        bus.publish(std::slice::from_ref(event));
        if position % BURST == 0 {
            tokio::time::sleep(PAUSE).await;
        }
    }
    let mut all = Vec::new();
    while let Some(done) = subscribers.join_next().await {
        all.extend(done??);
    }
    ensure!(
        all.len() == SUBSCRIBERS * count as usize,
        "every subscriber got every event"
    );
    let params = |m: Metric| {
        m.param("subscribers", SUBSCRIBERS as u64)
            .param("events", count)
            .param("bus", "LocalBus (in-process)")
            .param("pace", "50 events per 1 ms pause")
    };
    report.push(params(Metric::new(
        "bus_fanout_p50",
        percentile(&mut all, 50.0),
        "µs",
    )));
    report.push(params(Metric::new(
        "bus_fanout_p99",
        percentile(&mut all, 99.0),
        "µs",
    )));
    report.push(params(Metric::new(
        "bus_fanout_cut_off",
        bus.cut_off_subscribers() as f64,
        "subscribers",
    )));
    Ok(())
}

/// `count` stored events of one account, positions 1… (from a memory
/// store, so they are exactly what a command publishes).
async fn recorded_events(count: u64) -> anyhow::Result<Vec<RecordedEvent>> {
    let store = MemoryStore::new();
    let stream = fixture::stream(fixture::ACCOUNT, "fanout")?;
    let mut events = Vec::with_capacity(count as usize);
    for version in 0..count {
        let outcome = store
            .append(AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Exact(version),
                events: vec![NewEvent::json("Deposited", br#"{"amount":1}"#.to_vec())],
                metadata: EventMetadata::default(),
                timestamp_ms: 0,
            })
            .await?;
        events.extend(outcome.events);
    }
    Ok(events)
}
