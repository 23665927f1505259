// A bank account that cannot be overdrawn: the rules of
// examples/bank-account (Rust), with the same rejection codes and messages.
//
// | command                        | rejected when                  | code                 |
// |--------------------------------|--------------------------------|----------------------|
// | any                            | the account is closed          | `account-closed`     |
// | `Open`                         | the account is already open    | `already-open`       |
// | `Deposit`, `Withdraw`, `Close` | the account was never opened   | `not-open`           |
// | `Deposit`, `Withdraw`          | the amount is 0                | `invalid-amount`     |
// | `Deposit`                      | the balance would overflow     | `invalid-amount`     |
// | `Withdraw`                     | the amount exceeds the balance | `insufficient-funds` |
//
// Money is a u64, held as a BigInt: every digit up to 2^64 - 1 is kept.

import { Rejection, U64_MAX, defineAggregate, exportAggregate, oneOf, string, u64 } from '@aether/guest';

const VERBS = { Open: 'open', Deposit: 'deposit', Withdraw: 'withdraw', Close: 'close' };

export const BankAccount = defineAggregate({
  name: 'BankAccount',
  state: { status: oneOf('new', 'open', 'closed'), owner: string, balance: u64 },
  initial: () => ({ status: 'new', owner: '', balance: 0n }),

  commands: {
    Open: { owner: string },
    Deposit: { amount: u64 },
    Withdraw: { amount: u64 },
    Close: null,
  },
  events: {
    Opened: { owner: string },
    Deposited: { amount: u64 },
    Withdrawn: { amount: u64 },
    Closed: null,
  },

  handle(account, command) {
    if (account.status === 'closed') {
      throw new Rejection('account-closed', 'the account is closed and accepts no more commands');
    }
    if (command.type === 'Open') {
      if (account.status === 'open') {
        throw new Rejection('already-open', `the account is already open for ${account.owner}`);
      }
      return [{ type: 'Opened', owner: command.owner }];
    }
    if (account.status === 'new') {
      throw new Rejection('not-open', `cannot ${VERBS[command.type]}: the account is not open yet`);
    }
    switch (command.type) {
      case 'Deposit':
        checkAmount(command.amount);
        if (account.balance + command.amount > U64_MAX) {
          throw new Rejection('invalid-amount', `cannot deposit ${command.amount}: the balance would overflow`);
        }
        return [{ type: 'Deposited', amount: command.amount }];
      case 'Withdraw':
        checkAmount(command.amount);
        if (command.amount > account.balance) {
          throw new Rejection(
            'insufficient-funds',
            `cannot withdraw ${command.amount}: the balance is ${account.balance}`,
          );
        }
        return [{ type: 'Withdrawn', amount: command.amount }];
      case 'Close':
        return [{ type: 'Closed' }];
    }
  },

  // Saturating: replay must never fail, even on a stream these rules
  // would not have produced.
  apply(account, event) {
    switch (event.type) {
      case 'Opened':
        account.status = 'open';
        account.owner = event.owner;
        break;
      case 'Deposited': {
        const sum = account.balance + event.amount;
        account.balance = sum > U64_MAX ? U64_MAX : sum;
        break;
      }
      case 'Withdrawn':
        account.balance = event.amount > account.balance ? 0n : account.balance - event.amount;
        break;
      case 'Closed':
        account.status = 'closed';
        break;
    }
  },
});

function checkAmount(amount) {
  if (amount === 0n) throw new Rejection('invalid-amount', 'the amount must be more than 0');
}

/** The exported interface `aether:aggregate/handler@0.4.0`. */
export const handler = exportAggregate(BankAccount);
