// Unit tests of src/app.js under Node (no component, no host):
//   npm test        (node --test test/)
// The shared conformance scenarios run here too; `aether test` runs them
// against the built component. Expected messages are the Rust component's.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

import { handler } from '../src/app.js';

const { Aggregate } = handler;
const SCENARIOS = new URL('../../../tests/scenarios/bank-account/', import.meta.url);
const JSON_TYPE = 'application/json';
const MAX = 18446744073709551615n;
const enc = new TextEncoder();
const dec = new TextDecoder();

let version = 0n;
const event = (eventType, data, contentType = JSON_TYPE) => ({
  version: ++version,
  eventType,
  contentType,
  data: enc.encode(data),
  timestampMs: 1_700_000_000_000n,
});
const command = (commandType, data, contentType = JSON_TYPE) => ({ commandType, contentType, data: enc.encode(data) });

/** Calls `f`; a thrown `{ payload }` is the WIT `err`, anything else a bug. */
function result(f) {
  try {
    return { ok: f() };
  } catch (error) {
    if (error && Object.hasOwn(error, 'payload')) return { err: error.payload };
    throw error;
  }
}

function account(...events) {
  const a = new Aggregate('account-1');
  version = 0n;
  assert.deepEqual(result(() => a.apply(events)), { ok: undefined });
  return a;
}

const opened = () => event('Opened', '{"owner":"Ada"}');

// JSON.parse would round u64 amounts; integers of 16+ digits become tagged strings.
const exactJson = (text) => JSON.parse(text.replace(/(?<=[:,[]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '"#$1"'));
const exactText = (value) => JSON.stringify(value ?? null).replace(/"#(-?\d+)"/g, '$1');

for (const file of readdirSync(SCENARIOS).filter((f) => f.endsWith('.json')).sort()) {
  const scenario = exactJson(readFileSync(new URL(file, SCENARIOS), 'utf8'));
  test(`scenario ${file}: ${scenario.name ?? ''}`, () => {
    const a = account(...(scenario.given ?? []).map((e) => event(e.type, exactText(e.data))));
    const outcome = result(() => a.handle(command(scenario.when.type, exactText(scenario.when.data))));
    if (scenario.then.events) {
      assert.ok(outcome.ok, `expected events, got ${JSON.stringify(outcome.err)}`);
      const actual = outcome.ok.map((e) => ({ type: e.eventType, data: exactJson(dec.decode(e.data)) }));
      assert.deepEqual(actual, scenario.then.events.map((e) => ({ type: e.type, data: e.data ?? null })));
    } else {
      assert.ok(outcome.err, `expected a rejection, got ${JSON.stringify(outcome.ok?.map((e) => e.eventType))}`);
      assert.equal(outcome.err.code, scenario.then.rejection.code);
      if (scenario.then.rejection.message !== undefined) {
        assert.equal(outcome.err.message, scenario.then.rejection.message);
      }
    }
  });
}

test('events are encoded byte for byte as the Rust SDK encodes them', () => {
  const encoded = (a, type, data) => {
    const [e] = result(() => a.handle(command(type, data))).ok;
    return [e.eventType, e.contentType, dec.decode(e.data)];
  };
  assert.deepEqual(encoded(account(), 'Open', ' { "x": [1], "owner" : "Zoë \\"Q\\" \\u0001" } '), [
    'Opened', JSON_TYPE, '{"owner":"Zoë \\"Q\\" \\u0001"}',
  ]);
  assert.deepEqual(encoded(account(opened()), 'Deposit', `{"amount":${MAX}}`), [
    'Deposited', JSON_TYPE, '{"amount":18446744073709551615}',
  ]);
  assert.deepEqual(encoded(account(opened(), event('Deposited', '[9007199254740993]')), 'Withdraw', '[9007199254740993]'), [
    'Withdrawn', JSON_TYPE, '{"amount":9007199254740993}',
  ]);
  assert.deepEqual(encoded(account(opened()), 'Close', ''), ['Closed', JSON_TYPE, 'null']);
});

test('Close accepts null, nothing, whitespace and {}', () => {
  for (const data of ['null', '', ' \n', '{}', ' { } ']) {
    assert.equal(result(() => account(opened()).handle(command('Close', data))).ok?.[0].eventType, 'Closed', data);
  }
});

test('malformed commands are refused with the Rust messages', () => {
  const cases = [
    ['Teleport', '{}', 'unknown type "Teleport", expected one of "Open", "Deposit", "Withdraw", "Close"'],
    ['Open', '{}', 'invalid data for "Open": missing field `owner` at line 1 column 2'],
    ['Deposit', '{"amount":"5"}', 'invalid data for "Deposit": invalid type: string "5", expected u64 at line 1 column 13'],
    ['Deposit', '{"amount":-1}', 'invalid data for "Deposit": invalid value: integer `-1`, expected u64 at line 1 column 12'],
    ['Deposit', '{"amount":1.5}', 'invalid data for "Deposit": invalid type: floating point `1.5`, expected u64 at line 1 column 13'],
    ['Deposit', '{"amount":18446744073709551616}',
      'invalid data for "Deposit": invalid type: floating point `1.8446744073709552e+19`, expected u64 at line 1 column 30'],
    ['Deposit', '{"amount":5,"amount":6}', 'invalid data for "Deposit": duplicate field `amount` at line 1 column 20'],
    ['Close', '{"a":1}', 'invalid data for "Close": invalid length 1, expected an empty object at line 1 column 4'],
    ['Close', '[]', 'invalid data for "Close": invalid type: sequence, expected null (the variant has no content) at line 1 column 2'],
  ];
  for (const [type, data, message] of cases) {
    assert.deepEqual(result(() => account(opened()).handle(command(type, data))), {
      err: { code: 'malformed-command', message },
    });
  }
  assert.deepEqual(result(() => account(opened()).handle(command('Deposit', '{"amount":5}', 'text/plain'))), {
    err: {
      code: 'unsupported-content-type',
      message: 'cannot read a "Deposit" command with content type "text/plain": expected application/json',
    },
  });
  const charset = result(() => account(opened()).handle(command('Deposit', '{"amount":5}', 'Application/JSON; charset=utf-8')));
  assert.equal(charset.ok?.[0].eventType, 'Deposited');
});

test('apply stops at the first bad event, after applying the ones before it', () => {
  const a = new Aggregate('account-1');
  version = 0n;
  const outcome = result(() => a.apply([opened(), event('Deposited', '{"amount":5}'), event('Teleported', '{}'), event('Deposited', '{"amount":7}')]));
  assert.deepEqual(outcome, {
    err: {
      version: 3n,
      message: 'cannot apply event: unknown type "Teleported", expected one of "Opened", "Deposited", "Withdrawn", "Closed"',
    },
  });
  assert.equal(a.view(), '{"balance":5,"owner":"Ada","status":"open"}');
  const plain = result(() => account().apply([event('Deposited', '{"amount":5}', 'text/plain')]));
  assert.equal(plain.err.message, 'unsupported content type "text/plain" for event "Deposited": expected application/json');
});

test('replay saturates instead of overflowing', () => {
  const a = account(opened(), event('Deposited', `{"amount":${MAX}}`), event('Deposited', '{"amount":1}'));
  assert.equal(a.view(), `{"balance":${MAX},"owner":"Ada","status":"open"}`);
  a.apply([event('Withdrawn', `{"amount":${MAX}}`), event('Withdrawn', '{"amount":1}')]);
  assert.equal(a.view(), '{"balance":0,"owner":"Ada","status":"open"}');
});

test('view sorts keys; snapshot keeps the Rust field order; restore reverses it', () => {
  const a = new Aggregate('account-1');
  assert.equal(a.view(), '{"balance":0,"owner":"","status":"new"}');
  assert.equal(dec.decode(a.snapshot()), '{"status":"new","owner":"","balance":0}');
  const b = account(opened(), event('Deposited', '{"amount":70}'));
  const snapshot = b.snapshot();
  assert.equal(dec.decode(snapshot), '{"status":"open","owner":"Ada","balance":70}');
  const c = new Aggregate('account-2');
  assert.deepEqual(result(() => c.restore(snapshot)), { ok: undefined });
  assert.equal(c.view(), '{"balance":70,"owner":"Ada","status":"open"}');
});

test('restore refuses a bad snapshot and keeps the state', () => {
  const a = account(opened());
  for (const [bytes, message] of [
    ['xyz', 'cannot restore the snapshot: expected value at line 1 column 1'],
    ['{"status":"OPEN","owner":"Ada","balance":70}',
      'cannot restore the snapshot: unknown variant `OPEN`, expected one of `new`, `open`, `closed` at line 1 column 16'],
  ]) {
    assert.deepEqual(result(() => a.restore(enc.encode(bytes))), { err: message });
    assert.equal(a.view(), '{"balance":0,"owner":"Ada","status":"open"}');
  }
});

test('the default TextDecoder keeps a leading byte order mark (componentize-js lifts WIT strings with it)', () => {
  assert.equal(new TextDecoder().decode(Uint8Array.of(0xef, 0xbb, 0xbf, 0x41)), '\ufeffA');
  assert.equal(new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.of(0xef, 0xbb, 0xbf, 0x41)), '\ufeffA');
  const unknown = result(() => account(opened()).handle(command('\ufeffDeposit', '{"amount":5}')));
  assert.equal(unknown.err?.code, 'malformed-command');
});
