//! Write Aether aggregates in Rust and export them as WebAssembly components.
//!
//! An aggregate is plain Rust: a state type, a command enum and an event enum.
//! [`Aggregate::handle`] decides a command against the state (new events or a
//! [`Rejection`]); [`Aggregate::apply`] folds one event into the state. The
//! host stores the events and rebuilds the state by replaying them, so `apply`
//! must be deterministic and must never fail for an event `handle` produced.
//!
//! ```
//! use aether_guest::{Aggregate, Rejection, testing::AggregateTest};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! pub struct Light {
//!     on: bool,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! pub enum Command {
//!     Switch { on: bool },
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! pub enum Event {
//!     SwitchedOn,
//!     SwitchedOff,
//! }
//!
//! impl Aggregate for Light {
//!     type Command = Command;
//!     type Event = Event;
//!
//!     fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
//!         match command {
//!             Command::Switch { on } if on == self.on => {
//!                 Err(Rejection::new("unchanged", format!("the light is already {}", if on { "on" } else { "off" })))
//!             }
//!             Command::Switch { on: true } => Ok(vec![Event::SwitchedOn]),
//!             Command::Switch { on: false } => Ok(vec![Event::SwitchedOff]),
//!         }
//!     }
//!
//!     fn apply(&mut self, event: Event) {
//!         self.on = matches!(event, Event::SwitchedOn);
//!     }
//! }
//!
//! // In the component crate (`crate-type = ["cdylib", "rlib"]`):
//! aether_guest::export_aggregate!(Light);
//!
//! // Natively, in a unit test:
//! AggregateTest::<Light>::given(vec![Event::SwitchedOn])
//!     .when(Command::Switch { on: true })
//!     .then_rejected("unchanged");
//! ```
//!
//! Build the component with `cargo build --target wasm32-wasip2 --release`;
//! the `.wasm` file in `target/wasm32-wasip2/release/` is what the host loads.
//! [`export_aggregate!`] only emits the component exports on `wasm32`, so the
//! same crate also links natively (for tests and native benchmarks).
//!
//! # Wire format
//!
//! Commands and events cross the component boundary as a type name, a content
//! type and bytes (the WIT records `command`, `new-event` and `event`). Other
//! guest languages and the host rely on this exact mapping, implemented by
//! [`wire`]:
//!
//! - Commands and events are **externally tagged** serde enums (serde's
//!   default). `#[serde(rename)]` and `#[serde(rename_all)]` are respected;
//!   `#[serde(alias)]` is accepted when decoding. Internally, adjacently
//!   tagged and untagged enums are not supported.
//! - `command-type` / `event-type` is the (serialized) variant name, e.g.
//!   `Deposited`.
//! - `content-type` is `application/json` (see [`wire::CONTENT_TYPE`]).
//! - `data` is UTF-8 JSON of the variant's content only, with no tag. The
//!   encoder writes it compactly (no whitespace, fields in declaration order),
//!   byte for byte what `serde_json::to_vec` writes for the content:
//!
//!   | variant                       | `data`                                 |
//!   |-------------------------------|----------------------------------------|
//!   | unit `Closed`                 | `null`                                 |
//!   | newtype `Renamed(String)`     | JSON of the inner value: `"Ada"`       |
//!   | struct `Deposited { amount }` | object of the fields: `{"amount":70}`  |
//!   | tuple `Moved(i32, i32)`       | array of the fields: `[1,-2]`          |
//!
//! - The decoder reads the content as `serde_json` does (whitespace and any
//!   field order accepted, serde attributes such as `default` respected,
//!   trailing non-whitespace refused). A unit variant also accepts empty data
//!   and `{}`, which is what other languages tend to produce for an event
//!   without fields.
//!
//! Snapshots are `serde_json` of the state type (`restore` is the reverse),
//! and `view` is the JSON of [`Aggregate::view`].
//!
//! # What the SDK reports on its own
//!
//! - `handle` with a `content-type` other than `application/json` (case and
//!   parameters such as `; charset=utf-8` are ignored): rejection
//!   `unsupported-content-type`.
//! - `handle` with a command that does not decode: rejection
//!   `malformed-command`, whose message is the [`wire::WireError`], e.g.
//!   `unknown type "Foo", expected one of "Open", "Close"` or
//!   ``invalid data for "Deposit": missing field `amount` at line 1 column 2``.
//! - `apply` with an event that does not decode or is not JSON:
//!   `apply-error { version, message }` for the first such event, e.g.
//!   `cannot apply event: unknown type "Foo", expected one of ...`. The
//!   events before it in the batch are applied, none after it.
//! - `restore` with a snapshot that does not decode: the error string
//!   `cannot restore the snapshot: ...`; the state is left unchanged.
//! - A panic in the aggregate, or an event it decided that cannot be
//!   encoded, traps (a guest bug: the host drops the instance).
#![deny(missing_docs)]

mod aggregate;
mod batch;
mod export;
pub mod log;
pub mod testing;
pub mod wire;

pub use aggregate::{Aggregate, Rejection};

/// Bindings generated from `wit/` (world `aggregate-component`). Hidden: the
/// public API is [`Aggregate`] and [`export_aggregate!`]; the bindings are
/// public only because the macros expand to paths inside them.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, unsafe_code)]
pub mod bindings {
    wit_bindgen::generate!({
        // The current version only; the frozen ones under `wit/deps/`
        // are the host's business.
        path: "../wit/aggregate.wit",
        world: "aggregate-component",
        pub_export_macro: true,
        export_macro_name: "__export_aggregate_component",
    });
}

/// Items the macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::Resource;
}
