// The order's rules under plain Node (no Wasm, no host): `npm test`. The
// shared scenarios (tests/scenarios/order) run here and, against the built
// component, in the host's tests.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { given, givenState, testScenarios } from '@aether/guest/testing';

import { MAX_ITEMS, Order } from '../src/order.js';

const TEA = { type: 'ItemAdded', sku: 'tea', quantity: 2, unit_price: 450n };
const CUP = { type: 'ItemAdded', sku: 'cup', quantity: 1, unit_price: 1200n };
const teaLine = { sku: 'tea', quantity: 2, unit_price: 450 };

test('add items to a new order', () => {
  given(Order)
    .when({ type: 'AddItem', sku: 'tea', quantity: 2, unit_price: 450n })
    .thenEvents(TEA)
    .thenView({ status: 'draft', lines: [teaLine], total: 900 });
});

test('adding an item again adds to its quantity', () => {
  given(Order, TEA)
    .when({ type: 'AddItem', sku: 'tea', quantity: 3, unit_price: 450n })
    .thenEvents({ type: 'ItemAdded', sku: 'tea', quantity: 3, unit_price: 450n })
    .thenState({ status: 'draft', lines: [{ sku: 'tea', quantity: 5, unit_price: 450n }] });
});

test('quantities and the number of items are bounded', () => {
  given(Order).when({ type: 'AddItem', sku: 'tea', quantity: 0, unit_price: 450n }).thenRejected('invalid-quantity');
  given(Order, { ...TEA, quantity: 4294967295 })
    .when({ type: 'AddItem', sku: 'tea', quantity: 1, unit_price: 450n })
    .thenRejected('invalid-quantity', 'too many of tea in one order');
  const items = Array.from({ length: MAX_ITEMS }, (_, i) => ({ type: 'ItemAdded', sku: `sku-${i}`, quantity: 1, unit_price: 1n }));
  const full = given(Order, ...items);
  full.when({ type: 'AddItem', sku: 'one-more', quantity: 1, unit_price: 1n }).thenRejected('too-many-items');
  full.when({ type: 'AddItem', sku: 'sku-0', quantity: 1, unit_price: 1n })
    .thenEvents({ type: 'ItemAdded', sku: 'sku-0', quantity: 1, unit_price: 1n });
});

test('remove an item', () => {
  given(Order, TEA, CUP)
    .when({ type: 'RemoveItem', sku: 'tea' })
    .thenEvents({ type: 'ItemRemoved', sku: 'tea' })
    .thenState((order) => assert.deepEqual(order.lines, [{ sku: 'cup', quantity: 1, unit_price: 1200n }]));
  given(Order, TEA).when({ type: 'RemoveItem', sku: 'cup' }).thenRejected('unknown-item', 'cup is not in the order');
});

test('submit records the total, and a submitted order is frozen', () => {
  given(Order, TEA, CUP).when({ type: 'Submit' }).thenEvents({ type: 'Submitted', total: 2100n });
  given(Order, TEA, { type: 'ItemRemoved', sku: 'tea' }).when({ type: 'Submit' }).thenRejected('empty-order');
  const submitted = given(Order, TEA, { type: 'Submitted', total: 900n });
  for (const command of [{ type: 'AddItem', ...teaLine, unit_price: 450n }, { type: 'RemoveItem', sku: 'tea' }, { type: 'Submit' }]) {
    submitted.when(command).thenRejected('order-not-editable', 'the order is submitted');
  }
});

test('a total beyond 64 bits is refused, one below keeps every digit', () => {
  const max = { type: 'ItemAdded', sku: 'yacht', quantity: 1, unit_price: 18446744073709551615n };
  given(Order, max, { ...max, sku: 'boat', unit_price: 1n }).when({ type: 'Submit' }).thenRejected('total-too-large');
  given(Order, { ...max, quantity: 1, unit_price: 9007199254740993n })
    .when({ type: 'Submit' })
    .thenEvents({ type: 'Submitted', total: 9007199254740993n });
});

test('ship a submitted order; the tracking number is optional', () => {
  const submitted = given(Order, TEA, { type: 'Submitted', total: 900n });
  submitted
    .when({ type: 'Ship', carrier: 'post', tracking: 'RR123' })
    .thenEvents({ type: 'Shipped', carrier: 'post', tracking: 'RR123' })
    .thenState((order) => assert.equal(order.status, 'shipped'));
  const untracked = submitted.whenRaw('Ship', { carrier: 'post' });
  untracked.thenEvents({ type: 'Shipped', carrier: 'post', tracking: null });
  assert.equal(new TextDecoder().decode(untracked.outcome.ok[0].data), '{"carrier":"post","tracking":null}');
  given(Order, TEA).when({ type: 'Ship', carrier: 'post' }).thenRejected('not-submitted', 'a draft order cannot ship');
});

test('cancel before shipping, not after', () => {
  for (const history of [[TEA], [TEA, { type: 'Submitted', total: 900n }]]) {
    given(Order, ...history)
      .when({ type: 'Cancel', reason: 'changed my mind' })
      .thenEvents({ type: 'Cancelled', reason: 'changed my mind' })
      .thenView({ status: 'cancelled', lines: [teaLine], total: 900 });
  }
  for (const last of [{ type: 'Shipped', carrier: 'post' }, { type: 'Cancelled', reason: 'no' }]) {
    given(Order, TEA, { type: 'Submitted', total: 900n }, last).when({ type: 'Cancel', reason: 'late' }).thenRejected('not-cancellable');
  }
});

test('malformed commands are rejected', () => {
  for (const data of [
    { sku: 'tea', quantity: -1, unit_price: 1 },
    { sku: 'tea', quantity: 2 ** 32, unit_price: 1 },
    { sku: 'tea', quantity: 1.5, unit_price: 1 },
    { sku: 7, quantity: 1, unit_price: 1 },
    { sku: 'tea', quantity: 1 },
  ]) {
    given(Order).whenRaw('AddItem', data).thenRejected('malformed-command');
  }
});

test('snapshots restore', () => {
  const state = {
    status: 'submitted',
    lines: [{ sku: 'tea', quantity: 2, unit_price: 450n }, { sku: 'cup', quantity: 1, unit_price: 1200n }],
  };
  const restored = givenState(Order, state);
  assert.equal(
    new TextDecoder().decode(restored.resource.snapshot()),
    '{"status":"submitted","lines":[{"sku":"tea","quantity":2,"unit_price":450},{"sku":"cup","quantity":1,"unit_price":1200}]}',
  );
  restored.when({ type: 'Ship', carrier: 'post' }).thenEvents({ type: 'Shipped', carrier: 'post', tracking: null });
});

testScenarios(Order, new URL('../../../tests/scenarios/order/', import.meta.url));
