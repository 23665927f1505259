//! Aether's shared language, used by every other crate of the host: the
//! names ([`namespace`]: namespace, aggregate type, aggregate id, and how they
//! map onto files and NATS subjects), the event envelope ([`event`]: a
//! stream's name, the events an append asks for and the events the store
//! records), the `event-batch` layout a replay hands a guest ([`batch`]) and
//! the wall clock events are stamped with ([`clock`]); also how the host's
//! threads ask the scheduler for time ([`thread`]).

#![warn(missing_docs)]

pub mod batch;
pub mod clock;
pub mod event;
pub mod namespace;
pub mod thread;
