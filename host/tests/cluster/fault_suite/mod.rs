//! The fault suite: faults under a mixed client load, each followed by a
//! check of the whole client history against the store.
//!
//! The [`workload`] records every attempt (invocation and completion
//! instants, node, command, outcome) in a [`history`]; after the fault and
//! the recovery, the suite reads every account's events and every node's
//! answer for its state, and the [`checker`] counts anomalies (lost or
//! duplicated commands, gaps, stale reads, decisions on stale state,
//! conflicts for stored commands, states that are not the replay of the
//! events, timestamps going backwards), each of which must be 0. The
//! [`scenarios`] print, per fault, the unavailability window and the
//! counts; `AETHER_FAULTS_SCALE=large` runs longer and repeats each fault
//! (see [`run::Scale`]).

mod checker;
mod history;
mod run;
mod scenarios;
mod workload;
