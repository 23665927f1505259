//! The application service's contract, with no transport in it.
//!
//! Everything that carries a request to the node (the HTTP API, the NATS
//! submit subject, a shard owner answering another node, the CLI) speaks
//! these types:
//!
//! - [`ErrorCode`] and [`ServiceError`]: every error the node answers, with
//!   its stable code (listed in `docs/api.md`), its HTTP status and its
//!   outcome label in the metrics, defined once here;
//! - requests ([`SendCommand`], [`EventsQuery`], [`AggregateRef`]) and
//!   answers ([`CommandAnswer`], [`StateAnswer`], [`EventsPage`],
//!   [`ActivationAnswer`]…), whose JSON is the API's JSON;
//! - [`ops`]: the operations on a runtime or a store that every path calls
//!   once the caller is authorised (the node adds principals, tenants and
//!   routing in `aether-node`).
//!
//! **Invariant:** the JSON of an answer type is the API's body for it, key
//! for key and in the same order (fields are declared in the order the
//! bodies have always had: alphabetical); `tests` below pin the bytes.

mod answers;
mod code;
mod error;
pub mod ops;
mod requests;

pub use answers::{
    Action, ActivationAnswer, AggregateTypeAnswer, AggregateTypesAnswer, Answered, CommandAnswer,
    Envelope, EventJson, EventsPage, HistoryAnswer, MetadataJson, StateAnswer,
};
pub use code::ErrorCode;
pub use error::ServiceError;
pub use requests::{
    AggregateRef, EventsQuery, MAX_ID_BYTES, MAX_PAGE, SendCommand, check_id, past_any,
};
