// A bank account that cannot be overdrawn: the rules of
// examples/bank-account/src/lib.rs, with the same rejection codes and messages.
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
// Money is a u64 held as a BigInt: every digit up to 2^64 - 1 is kept.

import { U64_MAX, string, struct, u64, unitEnum, variants } from './wire.js';

/** What callers can ask of an account (declaration order matters for the array form). */
export const Command = variants([
  ['Open', struct('struct variant Command::Open', [['owner', string]])],
  ['Deposit', struct('struct variant Command::Deposit', [['amount', u64]])],
  ['Withdraw', struct('struct variant Command::Withdraw', [['amount', u64]])],
  ['Close', null],
]);

/** What happened to an account. */
export const Event = variants([
  ['Opened', struct('struct variant Event::Opened', [['owner', string]])],
  ['Deposited', struct('struct variant Event::Deposited', [['amount', u64]])],
  ['Withdrawn', struct('struct variant Event::Withdrawn', [['amount', u64]])],
  ['Closed', null],
]);

/**
 * The account's state, in the Rust struct's field order (the snapshot is
 * byte for byte what serde_json writes for `BankAccount`).
 */
export const State = struct('struct BankAccount', [
  ['status', unitEnum(['new', 'open', 'closed'])],
  ['owner', string],
  ['balance', u64],
]);

/** The state before any event. */
export function initial() {
  return { status: 'new', owner: '', balance: 0n };
}

/** A business rejection, returned to the caller as the WIT `rejection`. */
export class Rejection {
  constructor(code, message) {
    this.code = code;
    this.message = message;
  }
}

const VERBS = { Open: 'open', Deposit: 'deposit', Withdraw: 'withdraw', Close: 'close' };

/** Decides `command` against `state` without changing it: the new events, or a thrown `Rejection`. */
export function decide(state, command) {
  if (state.status === 'closed') {
    throw new Rejection('account-closed', 'the account is closed and accepts no more commands');
  }
  if (command.type === 'Open') {
    if (state.status === 'open') {
      throw new Rejection('already-open', `the account is already open for ${state.owner}`);
    }
    return [{ type: 'Opened', owner: command.owner }];
  }
  if (state.status === 'new') {
    throw new Rejection('not-open', `cannot ${VERBS[command.type]}: the account is not open yet`);
  }
  switch (command.type) {
    case 'Deposit':
      checkAmount(command.amount);
      if (state.balance + command.amount > U64_MAX) {
        throw new Rejection(
          'invalid-amount',
          `cannot deposit ${command.amount}: the balance would overflow`,
        );
      }
      return [{ type: 'Deposited', amount: command.amount }];
    case 'Withdraw':
      checkAmount(command.amount);
      if (command.amount > state.balance) {
        throw new Rejection(
          'insufficient-funds',
          `cannot withdraw ${command.amount}: the balance is ${state.balance}`,
        );
      }
      return [{ type: 'Withdrawn', amount: command.amount }];
    case 'Close':
      return [{ type: 'Closed' }];
    default:
      throw new Error(`unhandled command ${command.type}`);
  }
}

/**
 * Folds one event into `state`. Saturating, like the Rust version: replay
 * must never fail, even on a stream these rules would not have produced.
 */
export function evolve(state, event) {
  switch (event.type) {
    case 'Opened':
      state.status = 'open';
      state.owner = event.owner;
      break;
    case 'Deposited': {
      const sum = state.balance + event.amount;
      state.balance = sum > U64_MAX ? U64_MAX : sum;
      break;
    }
    case 'Withdrawn':
      state.balance = event.amount > state.balance ? 0n : state.balance - event.amount;
      break;
    case 'Closed':
      state.status = 'closed';
      break;
    default:
      throw new Error(`unhandled event ${event.type}`);
  }
}

function checkAmount(amount) {
  if (amount === 0n) {
    throw new Rejection('invalid-amount', 'the amount must be more than 0');
  }
}

/** The state as readers see it: JSON with sorted keys, as serde_json's `Value` writes it. */
export function view(state) {
  return `{"balance":${state.balance},"owner":${string.encode(state.owner)},"status":${JSON.stringify(state.status)}}`;
}
