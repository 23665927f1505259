//! A counter that never goes below zero: the smallest useful aggregate.
//!
//! Build the component with
//! `cargo build -p counter --target wasm32-wasip2 --release`.

use aether_guest::{Aggregate, Rejection};
use serde::{Deserialize, Serialize};

/// The counter's state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The current value, never negative.
    pub value: u64,
}

/// What callers can ask of a counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds `by` to the value.
    Increment {
        /// How much to add.
        by: u64,
    },
    /// Subtracts `by` from the value; rejected (`below-zero`) if the value is smaller.
    Decrement {
        /// How much to subtract.
        by: u64,
    },
    /// Sets the value back to zero; produces nothing if it already is.
    Reset,
}

/// What happened to a counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The value grew by `by`.
    Incremented {
        /// How much was added.
        by: u64,
    },
    /// The value shrank by `by`.
    Decremented {
        /// How much was subtracted.
        by: u64,
    },
    /// The value went back to zero.
    Reset,
}

impl Aggregate for Counter {
    type Command = Command;
    type Event = Event;

    fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Increment { by } => {
                if self.value.checked_add(by).is_none() {
                    return Err(Rejection::new(
                        "overflow",
                        format!(
                            "cannot increment {} by {by}: the counter would overflow",
                            self.value
                        ),
                    ));
                }
                Ok(vec![Event::Incremented { by }])
            }
            Command::Decrement { by } if by > self.value => Err(Rejection::new(
                "below-zero",
                format!("cannot decrement by {by}: the value is {}", self.value),
            )),
            Command::Decrement { by } => Ok(vec![Event::Decremented { by }]),
            Command::Reset if self.value == 0 => Ok(vec![]),
            Command::Reset => Ok(vec![Event::Reset]),
        }
    }

    fn apply(&mut self, event: Event) {
        // Saturating: replay must never trap, even on a stream this version
        // of the rules would not have produced.
        match event {
            Event::Incremented { by } => self.value = self.value.saturating_add(by),
            Event::Decremented { by } => self.value = self.value.saturating_sub(by),
            Event::Reset => self.value = 0,
        }
    }
}

aether_guest::export_aggregate!(Counter);
aether_guest::state_schema!("1");

#[cfg(test)]
mod tests;
