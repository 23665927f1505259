//! The bridge between an [`Aggregate`] and the WIT `aggregate` resource.
//!
//! Lifecycle: the host calls the constructor once per aggregate id it
//! activates, then `restore` (if it has a snapshot) and `apply` with the
//! stored events in batches (one buffer each, read in place by
//! [`crate::batch`]), then `execute` per command: the aggregate decides
//! it, and the events it decided are encoded into a batch, read back and
//! applied as a replay would apply them (so the live state is the replayed
//! state), and the batch is handed back.
//! Dropping the resource passivates the aggregate.
//!
//! Failure modes: a payload the aggregate cannot decode is a value (an
//! `apply-error` or a `malformed-command` rejection); a panic in the
//! aggregate, or an event it produced that cannot be encoded, is a guest bug
//! and traps, which makes the host drop the whole instance.

use std::cell::RefCell;

use crate::bindings::aether::aggregate::types::{Rejection, Unapplied};
use crate::bindings::exports::aether::aggregate::handler as wit;
use crate::{Aggregate, batch, wire};

/// One live aggregate inside the component: the state of `A`, kept in guest
/// memory between calls. The WIT methods take `&self`, hence the `RefCell`;
/// calls into one component instance never overlap, so borrows never clash.
pub struct Resource<A: Aggregate> {
    state: RefCell<A>,
}

impl<A: Aggregate> wit::GuestAggregate for Resource<A> {
    /// The id is the host's business (it names the stream); the state does
    /// not depend on it, which keeps replay a pure function of the events.
    fn new(_id: String) -> Self {
        Self {
            state: RefCell::new(A::default()),
        }
    }

    fn apply(&self, events: Vec<u8>) -> Result<(), wit::ApplyError> {
        let mut state = self.state.borrow_mut();
        let mut last_version = 0;
        for event in batch::events(&events) {
            let event = event.map_err(|malformed| wit::ApplyError {
                version: last_version + 1,
                message: format!(
                    "the host sent a malformed batch (byte {}): {}",
                    malformed.offset, malformed.reason
                ),
            })?;
            last_version = event.version;
            let failed = |message: String| wit::ApplyError {
                version: event.version,
                message,
            };
            let json = event.content_type == wire::CONTENT_TYPE.as_bytes()
                || std::str::from_utf8(event.content_type).is_ok_and(wire::is_json);
            if !json {
                return Err(failed(format!(
                    "unsupported content type \"{}\" for event \"{}\": expected {}",
                    String::from_utf8_lossy(event.content_type),
                    String::from_utf8_lossy(event.event_type),
                    wire::CONTENT_TYPE
                )));
            }
            apply_one(&mut *state, event.event_type, event.data).map_err(failed)?;
        }
        Ok(())
    }

    fn execute(
        &self,
        command_type: String,
        content_type: String,
        data: Vec<u8>,
        first_version: u64,
        timestamp_ms: u64,
    ) -> wit::Decision {
        let command = (command_type.as_str(), content_type.as_str(), &data[..]);
        self.decide(command, first_version, timestamp_ms)
            .unwrap_or_else(wit::Decision::Rejected)
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.state.borrow())
            .unwrap_or_else(|error| panic!("cannot snapshot the aggregate state: {error}"))
    }

    fn restore(&self, state: Vec<u8>) -> Result<(), String> {
        let restored = serde_json::from_slice::<A>(&state)
            .map_err(|error| format!("cannot restore the snapshot: {error}"))?;
        *self.state.borrow_mut() = restored;
        Ok(())
    }

    fn view(&self) -> String {
        self.state.borrow().view().to_string()
    }
}

impl<A: Aggregate> Resource<A> {
    /// `execute`, with a rejection as the error: decodes the command, lets
    /// the aggregate decide, writes the events it decided as a batch
    /// stamped as the host will store them, and applies them from those
    /// bytes, as a replay will apply them (so the live state is the
    /// replayed state).
    fn decide(
        &self,
        (command_type, content_type, data): (&str, &str, &[u8]),
        first_version: u64,
        timestamp_ms: u64,
    ) -> Result<wit::Decision, Rejection> {
        if !wire::is_json(content_type) {
            return Err(rejection(
                "unsupported-content-type",
                format!(
                    "cannot read a \"{command_type}\" command with content type \"{content_type}\": \
                     expected {}",
                    wire::CONTENT_TYPE
                ),
            ));
        }
        let decoded = wire::decode::<A::Command>(command_type, data)
            .map_err(|error| rejection("malformed-command", error.to_string()))?;
        let mut state = self.state.borrow_mut();
        let decided = state
            .handle(decoded)
            .map_err(|r| rejection(r.code, r.message))?;
        let mut events = Vec::new();
        for (version, event) in (first_version..).zip(&decided) {
            // Failing here is a bug in the event type (not input from
            // outside), so it traps.
            let (event_type, data) = wire::encode(event).unwrap_or_else(|error| {
                panic!("cannot encode an event the aggregate decided: {error}")
            });
            let event = batch::BatchEvent {
                version,
                event_type: event_type.as_bytes(),
                content_type: wire::CONTENT_TYPE.as_bytes(),
                data: &data,
            };
            batch::push(&mut events, event, timestamp_ms);
        }
        let unapplied = batch::events(&events).find_map(|event| {
            let event = event.expect("a batch this SDK has just written");
            apply_one(&mut *state, event.event_type, event.data)
                .err()
                .map(|message| wit::ApplyError {
                    version: event.version,
                    message,
                })
        });
        Ok(match unapplied {
            None => wit::Decision::Events(events),
            Some(error) => wit::Decision::Unapplied(Unapplied { events, error }),
        })
    }
}

/// Decodes one JSON event and folds it into the state; the error says why
/// it could not be decoded.
fn apply_one<A: Aggregate>(state: &mut A, event_type: &[u8], data: &[u8]) -> Result<(), String> {
    let decoded = wire::decode_event::<A::Event>(event_type, data)
        .map_err(|error| format!("cannot apply event: {error}"))?;
    state.apply(decoded);
    Ok(())
}

fn rejection(code: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection {
        code: code.into(),
        message: message.into(),
    }
}

/// Exports an [`Aggregate`] as the component's `aether:aggregate/handler`
/// interface.
///
/// Invoke it once, at the root of a `cdylib` crate built for
/// `wasm32-wasip2`:
///
/// ```
/// # use aether_guest::{Aggregate, Rejection};
/// # #[derive(Default, serde::Serialize, serde::Deserialize)]
/// # pub struct BankAccount;
/// # impl Aggregate for BankAccount {
/// #     type Command = ();
/// #     type Event = ();
/// #     fn handle(&self, _: ()) -> Result<Vec<()>, Rejection> { Ok(vec![]) }
/// #     fn apply(&mut self, _: ()) {}
/// # }
/// aether_guest::export_aggregate!(BankAccount);
/// ```
///
/// The type must be a plain path to a type implementing [`Aggregate`]. On
/// other targets the macro only checks that the type can be exported, so the
/// crate can also be an `rlib` linked natively (several aggregates in one
/// native binary do not clash).
#[macro_export]
macro_rules! export_aggregate {
    ($aggregate:ty) => {
        const _: () = {
            struct AetherAggregateExport;

            impl $crate::bindings::exports::aether::aggregate::handler::Guest
                for AetherAggregateExport
            {
                type Aggregate = $crate::__private::Resource<$aggregate>;
            }

            #[cfg(target_arch = "wasm32")]
            $crate::bindings::__export_aggregate_component!(
                AetherAggregateExport with_types_in $crate::bindings
            );
        };
    };
}

#[cfg(test)]
mod tests;

/// Declares the version of the aggregate's state schema: the format its
/// snapshots are written in. A new build of the component that declares the
/// same version keeps using the snapshots an older build made (a hot reload
/// does not replay whole histories); one that declares another version, or
/// none, replays from the events. Bump it whenever the state's serialised
/// form changes.
///
/// The version is 1–64 printable ASCII characters, written into the
/// component's `aether:state-schema` custom section.
///
/// ```ignore
/// aether_guest::state_schema!("2");
/// ```
#[macro_export]
macro_rules! state_schema {
    ($version:literal) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            const VERSION: &str = $version;
            #[allow(unsafe_code)]
            #[unsafe(link_section = "aether:state-schema")]
            #[used]
            static AETHER_STATE_SCHEMA: [u8; VERSION.len()] = {
                let bytes = VERSION.as_bytes();
                let mut out = [0u8; VERSION.len()];
                let mut i = 0;
                while i < out.len() {
                    out[i] = bytes[i];
                    i += 1;
                }
                out
            };
        };
    };
}
