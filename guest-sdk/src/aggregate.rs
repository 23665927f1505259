//! The trait an aggregate implements, and the business rejection it returns.

use std::fmt;

use serde::{Serialize, de::DeserializeOwned};

/// The domain logic of one event-sourced entity kind.
///
/// The implementing type is the aggregate's state. It starts as
/// [`Default::default`] (version 0) and changes only through [`apply`]. The
/// SDK provides the rest: snapshots are `serde_json` of `Self`, restore is
/// the reverse, and payloads follow the [wire format](crate#wire-format).
///
/// [`apply`]: Aggregate::apply
pub trait Aggregate: Default + Serialize + DeserializeOwned + 'static {
    /// What callers ask of the aggregate: an externally tagged serde enum.
    type Command: DeserializeOwned;
    /// What happened to the aggregate: an externally tagged serde enum.
    type Event: Serialize + DeserializeOwned;

    /// Decides `command` against the current state without changing it.
    ///
    /// Returns the events to store (possibly none), or a [`Rejection`] if
    /// the command breaks a business rule. A panic is a guest bug: it traps
    /// and the host drops the instance.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Rejection>;

    /// Folds one stored event into the state.
    ///
    /// Must be deterministic and must not fail for any event [`handle`]
    /// produced, since the host replays the same events to rebuild the state.
    ///
    /// [`handle`]: Aggregate::handle
    fn apply(&mut self, event: Self::Event);

    /// The state as readers see it. Defaults to the JSON of `Self`.
    fn view(&self) -> serde_json::Value {
        // A state that cannot be turned into JSON cannot be snapshotted
        // either; show the reason rather than trapping a read.
        serde_json::to_value(self)
            .unwrap_or_else(|error| serde_json::json!({ "error": error.to_string() }))
    }
}

/// A business decision not to carry out a command. The host returns it to
/// the caller and stores nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rejection {
    /// A stable, machine-readable reason in kebab case, e.g. `insufficient-funds`.
    pub code: String,
    /// A message a person can act on, e.g. `cannot withdraw 200: the balance is 70`.
    pub message: String,
}

impl Rejection {
    /// Creates a rejection with a machine-readable `code` and a human `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_displays_code_and_message() {
        let rejection = Rejection::new(
            "insufficient-funds",
            "cannot withdraw 200: the balance is 70",
        );
        assert_eq!(
            rejection.to_string(),
            "insufficient-funds: cannot withdraw 200: the balance is 70"
        );
        assert_eq!(rejection.clone(), rejection);
    }
}
