// The bank account under plain Node (no Wasm, no host): `npm test`.
// The shared conformance scenarios run here too; `aether test` runs them
// against the built component.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { U64_MAX } from '@aether/guest';
import { given, testScenarios } from '@aether/guest/testing';

import { BankAccount } from '../src/bank-account.js';

const opened = { type: 'Opened', owner: 'Ada' };
const openWith = (amount) => given(BankAccount, opened, { type: 'Deposited', amount });

test('open a new account', () => {
  given(BankAccount)
    .when({ type: 'Open', owner: 'Ada' })
    .thenEvents(opened)
    .thenView({ balance: 0, owner: 'Ada', status: 'open' });
});

test('opening an open account is rejected', () => {
  given(BankAccount, opened)
    .when({ type: 'Open', owner: 'Bob' })
    .thenRejected('already-open', 'the account is already open for Ada')
    .thenState((account) => assert.equal(account.owner, 'Ada'));
});

test('anything but Open before Open is rejected', () => {
  for (const command of [{ type: 'Deposit', amount: 1n }, { type: 'Withdraw', amount: 1n }, { type: 'Close' }]) {
    given(BankAccount).when(command).thenRejected('not-open').thenState((account) => assert.equal(account.status, 'new'));
  }
});

test('deposit and withdraw move the balance', () => {
  openWith(70n).when({ type: 'Deposit', amount: 30n }).thenEvents({ type: 'Deposited', amount: 30n })
    .thenState({ status: 'open', owner: 'Ada', balance: 100n });
  openWith(70n).when({ type: 'Withdraw', amount: 70n }).thenEvents({ type: 'Withdrawn', amount: 70n })
    .thenState((account) => assert.equal(account.balance, 0n));
});

test('zero amounts, overflows and overdrafts are rejected', () => {
  for (const type of ['Deposit', 'Withdraw']) {
    openWith(70n).when({ type, amount: 0n }).thenRejected('invalid-amount', 'the amount must be more than 0');
  }
  openWith(U64_MAX).when({ type: 'Deposit', amount: 1n }).thenRejected('invalid-amount');
  openWith(70n).when({ type: 'Withdraw', amount: 71n }).thenRejected('insufficient-funds');
  openWith(70n)
    .when({ type: 'Withdraw', amount: 200n })
    .thenRejected('insufficient-funds', 'cannot withdraw 200: the balance is 70')
    .thenState((account) => assert.equal(account.balance, 70n));
});

test('a closed account rejects everything', () => {
  openWith(70n).when({ type: 'Close' }).thenEvents({ type: 'Closed' });
  for (const command of [{ type: 'Open', owner: 'Bob' }, { type: 'Deposit', amount: 1n }, { type: 'Close' }]) {
    given(BankAccount, opened, { type: 'Closed' }).when(command).thenRejected('account-closed');
  }
});

test('replay rebuilds the state, and amounts keep every digit', () => {
  given(BankAccount, opened, { type: 'Deposited', amount: 100n }, { type: 'Withdrawn', amount: 30n })
    .when({ type: 'Withdraw', amount: 70n })
    .thenView({ balance: 0, owner: 'Ada', status: 'open' });
  given(BankAccount, opened)
    .whenRaw('Deposit', '{"amount":18446744073709551615}')
    .thenEvents({ type: 'Deposited', amount: U64_MAX })
    .thenView({ balance: U64_MAX, owner: 'Ada', status: 'open' });
});

test('data that does not fit the command is malformed', () => {
  const bad = ['{"amount":-5}', '{"amount":"lots"}', '{"amount":1.5}', '{"amount":1.0}', '{"amount":1e3}', '{}',
    '{"amount":18446744073709551616}', 'nope', '{"amount":1} x'];
  for (const data of bad) {
    given(BankAccount, opened).whenRaw('Deposit', data).thenRejected('malformed-command');
  }
  given(BankAccount, opened).whenRaw('Refund', '{}').thenRejected('malformed-command');
  given(BankAccount, opened).whenRaw('Deposit', '{"amount":1}', 'text/plain').thenRejected('unsupported-content-type');
});

test('events use the documented wire format', () => {
  assert.deepEqual(openWith(5n).when({ type: 'Withdraw', amount: 5n }).rawEvents, [
    { type: 'Withdrawn', data: { amount: 5 } },
  ]);
  assert.deepEqual(BankAccount.encodeEvents({ type: 'Opened', owner: 'Ada' }), [['Opened', '{"owner":"Ada"}']]);
  assert.deepEqual(BankAccount.encodeEvents([{ type: 'Closed' }]), [['Closed', 'null']]);
});

testScenarios(BankAccount, new URL('../../../tests/scenarios/bank-account/', import.meta.url));
