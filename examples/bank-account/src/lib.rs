//! A bank account that cannot be overdrawn.
//!
//! Rules, each with the rejection code it produces:
//!
//! | command                | rejected when                       | code                 |
//! |------------------------|-------------------------------------|----------------------|
//! | any                    | the account is closed               | `account-closed`     |
//! | `Open`                 | the account is already open         | `already-open`       |
//! | `Deposit`, `Withdraw`, `Close` | the account was never opened | `not-open`           |
//! | `Deposit`, `Withdraw`  | the amount is 0                     | `invalid-amount`     |
//! | `Deposit`              | the balance would overflow          | `invalid-amount`     |
//! | `Withdraw`             | the amount exceeds the balance      | `insufficient-funds` |
//!
//! Build the component with
//! `cargo build -p bank-account --target wasm32-wasip2 --release`.

use aether_guest::{Aggregate, Rejection};
use serde::{Deserialize, Serialize};

/// Where an account is in its life.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not opened yet: the state before any event.
    #[default]
    New,
    /// Open: accepts deposits and withdrawals.
    Open,
    /// Closed for good: rejects every command.
    Closed,
}

/// The account's state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    /// Where the account is in its life.
    pub status: Status,
    /// Who opened the account; empty before it is opened.
    pub owner: String,
    /// The money in the account, in the smallest unit of its currency.
    pub balance: u64,
}

/// What callers can ask of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Opens the account for `owner`.
    Open {
        /// Who the account belongs to.
        owner: String,
    },
    /// Puts money in.
    Deposit {
        /// How much, more than 0.
        amount: u64,
    },
    /// Takes money out, at most the balance.
    Withdraw {
        /// How much, more than 0.
        amount: u64,
    },
    /// Closes the account for good.
    Close,
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The account was opened.
    Opened {
        /// Who the account belongs to.
        owner: String,
    },
    /// Money was put in.
    Deposited {
        /// How much.
        amount: u64,
    },
    /// Money was taken out.
    Withdrawn {
        /// How much.
        amount: u64,
    },
    /// The account was closed.
    Closed,
}

impl Aggregate for BankAccount {
    type Command = Command;
    type Event = Event;

    fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
        match (self.status, command) {
            (Status::Closed, _) => Err(Rejection::new(
                "account-closed",
                "the account is closed and accepts no more commands",
            )),
            (Status::New, Command::Open { owner }) => Ok(vec![Event::Opened { owner }]),
            (Status::Open, Command::Open { .. }) => Err(Rejection::new(
                "already-open",
                format!("the account is already open for {}", self.owner),
            )),
            (Status::New, command) => Err(Rejection::new(
                "not-open",
                format!("cannot {}: the account is not open yet", verb(&command)),
            )),
            (Status::Open, Command::Deposit { amount }) => {
                check_amount(amount)?;
                if self.balance.checked_add(amount).is_none() {
                    return Err(Rejection::new(
                        "invalid-amount",
                        format!("cannot deposit {amount}: the balance would overflow"),
                    ));
                }
                Ok(vec![Event::Deposited { amount }])
            }
            (Status::Open, Command::Withdraw { amount }) => {
                check_amount(amount)?;
                if amount > self.balance {
                    return Err(Rejection::new(
                        "insufficient-funds",
                        format!("cannot withdraw {amount}: the balance is {}", self.balance),
                    ));
                }
                Ok(vec![Event::Withdrawn { amount }])
            }
            (Status::Open, Command::Close) => Ok(vec![Event::Closed]),
        }
    }

    fn apply(&mut self, event: Event) {
        // Saturating: replay must never trap, even on a stream this version
        // of the rules would not have produced.
        match event {
            Event::Opened { owner } => {
                self.status = Status::Open;
                self.owner = owner;
            }
            Event::Deposited { amount } => self.balance = self.balance.saturating_add(amount),
            Event::Withdrawn { amount } => self.balance = self.balance.saturating_sub(amount),
            Event::Closed => self.status = Status::Closed,
        }
    }
}

fn check_amount(amount: u64) -> Result<(), Rejection> {
    if amount == 0 {
        return Err(Rejection::new(
            "invalid-amount",
            "the amount must be more than 0",
        ));
    }
    Ok(())
}

fn verb(command: &Command) -> &'static str {
    match command {
        Command::Open { .. } => "open",
        Command::Deposit { .. } => "deposit",
        Command::Withdraw { .. } => "withdraw",
        Command::Close => "close",
    }
}

aether_guest::export_aggregate!(BankAccount);

#[cfg(test)]
mod tests;
