//! The cluster with real processes: 3 `nats-server`s and 3–4 `aether serve
//! --cluster` nodes. Election, placement, routing, hand-off, and five
//! faults under a steady command load, after each of which every
//! acknowledged command's event is stored exactly once and versions are
//! gapless; a paused owner that resumes gives no stale answer; a node that
//! disagrees on the cluster's settings is refused; a panic in the
//! coordinator stops the node serving; commands and answers larger than a
//! NATS message are routed; tenants made on one node hold on all; and
//! the fault suite
//! (`fault_suite`), which checks a whole client history against the store
//! after each of six faults. The tests run one at a time (each starts ~7
//! processes).

mod election;
mod fault_suite;
mod faults;
mod handoff;
mod harness;
mod large;
mod load;
mod pause;
mod routing;
mod settings;
mod supervision;
#[path = "../node/support.rs"]
#[allow(dead_code)]
mod support;
mod tenants;

use std::sync::{Mutex, MutexGuard};

/// One cluster at a time: the machine has few cores.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
