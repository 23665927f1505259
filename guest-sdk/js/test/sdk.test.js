// The SDK under plain Node: `node --test test/` in guest-sdk/js.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Rejection,
  WireError,
  defineAggregate,
  exportAggregate,
  list,
  map,
  number,
  oneOf,
  optional,
  parseLossless,
  string,
  stringify,
  u8,
  u32,
  u64,
  i64,
  any,
} from '../src/index.js';
import { withCustomSection } from '../src/build.js';
import { definitionOf } from '../src/component.js';
import { given, givenRaw, givenState, readBatch, writeBatch } from '../src/testing.js';

const Counter = defineAggregate({
  name: 'Counter',
  initial: { value: 0n, tags: [] },
  state: { value: u64, tags: list(string) },
  commands: { Add: { amount: u64, tag: optional(string) }, Reset: null },
  events: { Added: { amount: u64, tag: optional(string) }, Reset: null },
  handle(state, command) {
    if (command.type === 'Reset') return { type: 'Reset' };
    if (command.amount === 0n) return new Rejection('invalid-amount', 'add more than 0');
    return [{ type: 'Added', amount: command.amount, tag: command.tag }];
  },
  apply(state, event) {
    if (event.type === 'Reset') return { value: 0n, tags: [] };
    state.value += event.amount;
    if (event.tag !== null) state.tags.push(event.tag);
  },
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

test('commands and events cross the wire as { type, ...fields } with exact u64', () => {
  given(Counter, { type: 'Added', amount: 2n ** 63n })
    .when({ type: 'Add', amount: 5n, tag: 'x' })
    .thenEvents({ type: 'Added', amount: 5n, tag: 'x' })
    .thenState({ value: 2n ** 63n + 5n, tags: ['x'] })
    .thenView({ tags: ['x'], value: 2n ** 63n + 5n });
});

test('a returned or thrown Rejection is the WIT rejection', () => {
  given(Counter).when({ type: 'Add', amount: 0n }).thenRejected('invalid-amount', 'add more than 0');
  const Thrower = defineAggregate({
    initial: {},
    commands: { Go: null },
    events: { Went: null },
    handle() {
      throw new Rejection('nope', 'not today');
    },
    apply() {},
  });
  given(Thrower).when({ type: 'Go' }).thenRejected('nope', 'not today');
});

test('apply may return the new state; one event may be returned without an array', () => {
  given(Counter, { type: 'Added', amount: 3n, tag: 'a' })
    .when({ type: 'Reset' })
    .thenEvents({ type: 'Reset' })
    .thenState({ value: 0n, tags: [] });
});

test('a variant without fields is null on the wire and also reads {} and empty data', () => {
  const resource = new (exportAggregate(Counter).Aggregate)('c');
  for (const data of ['null', '{}', '', ' ']) {
    resource.apply(writeBatch([{ version: 1n, eventType: 'Reset', contentType: 'application/json', data: encoder.encode(data) }]));
  }
  assert.deepEqual(Counter.encodeEvents({ type: 'Reset' }), [['Reset', 'null']]);
  assert.throws(() => givenRaw(Counter, [['Reset', '[1]']]), /do not apply/);
});

test('malformed commands say what is wrong', () => {
  const cases = [
    ['{"amount":-1}', /field `amount`: expected an unsigned integer up to 18446744073709551615, got -1/],
    ['{"amount":18446744073709551616}', /got 18446744073709551616/],
    ['{"amount":1.0}', /expected an unsigned integer.*got 1\.0/],
    ['{"amount":2e3}', /got 2e3/],
    ['{"amount":"1"}', /got "1"/],
    ['{"tag":"x"}', /missing field `amount`/],
    ['{"amount":1,"tag":5}', /field `tag`: expected a string, got 5/],
    ['[1]', /expected an object with the fields of command Add/],
    ['{"amount":1', /invalid JSON/],
  ];
  for (const [data, message] of cases) {
    const outcome = given(Counter).whenRaw('Add', data).thenRejected('malformed-command').outcome;
    assert.match(outcome.err.message, message, data);
  }
  const unknown = given(Counter).whenRaw('Sub', '{}').thenRejected('malformed-command').outcome;
  assert.match(unknown.err.message, /unknown type "Sub", expected one of "Add", "Reset"/);
  given(Counter).whenRaw('Add', '{"amount":1}', 'application/JSON; charset=utf-8').thenEvents({ type: 'Added', amount: 1n, tag: null });
  given(Counter).whenRaw('Add', '{"amount":1}', 'text/json').thenRejected('unsupported-content-type');
  given(Counter).whenRaw('Add', new Uint8Array([0x7b, 0xff, 0x7d])).thenRejected('malformed-command');
});

test('unknown members are ignored, and a string that looks like a number stays a string', () => {
  given(Counter)
    .whenRaw('Add', '{"tag":"1.5e3 9007199254740993","amount":9007199254740993,"extra":[1.5,{"a":null}]}')
    .thenEvents({ type: 'Added', amount: 9007199254740993n, tag: '1.5e3 9007199254740993' });
});

test('an event that does not read is an apply-error naming its version; the events before it stay applied', () => {
  const resource = new (exportAggregate(Counter).Aggregate)('c');
  const event = (version, eventType, data, contentType = 'application/json') => ({
    version, eventType, contentType, data: encoder.encode(data), timestampMs: 0n,
  });
  for (const [bad, message] of [
    [event(2n, 'Added', '{"amount":"x"}'), /cannot apply event: invalid data for "Added": field `amount`/],
    [event(2n, 'Subtracted', '{}'), /cannot apply event: unknown type "Subtracted"/],
    [event(2n, 'Added', '{"amount":1}', 'text/plain'), /unsupported content type "text\/plain"/],
  ]) {
    resource.state = Counter.initial();
    try {
      resource.apply(writeBatch([event(1n, 'Added', '{"amount":7}'), bad, event(3n, 'Added', '{"amount":1}')]));
      assert.fail('apply accepted a bad event');
    } catch (error) {
      assert.equal(error.payload.version, 2n);
      assert.match(error.payload.message, message);
    }
    assert.equal(resource.state.value, 7n);
  }
});

test('apply reads a batch in place: any offset in its buffer, u64 versions, names matched as bytes', () => {
  const resource = new (exportAggregate(Counter).Aggregate)('c');
  const events = [
    { version: 2n ** 60n, eventType: 'Added', data: encoder.encode('{"amount":18446744073709551615}') },
    { version: 2n ** 60n + 1n, eventType: 'Reset', contentType: 'application/json', data: new Uint8Array() },
    { version: 2n ** 60n + 2n, eventType: 'Added', contentType: 'Application/JSON; charset=utf-8', data: encoder.encode('{"amount":3,"tag":"é"}') },
  ];
  const batch = writeBatch(events);
  // The batch as a view into the middle of a larger buffer.
  const padded = new Uint8Array(batch.length + 7);
  padded.set(batch, 5);
  resource.apply(padded.subarray(5, 5 + batch.length));
  assert.deepEqual(resource.state, { value: 3n, tags: ['é'] });
  resource.apply(writeBatch(events.slice(0, 1)));
  assert.equal(resource.state.value, 18446744073709551618n);
  // An empty batch (the host never sends one) applies nothing.
  resource.apply(new Uint8Array());
  assert.equal(resource.state.value, 18446744073709551618n);
  // A name that only shares the length or a suffix of a known one is unknown.
  for (const eventType of ['Adder', 'Xdded', 'Added\0']) {
    resource.state = Counter.initial();
    const bad = writeBatch([{ version: 9n, eventType, data: encoder.encode('{"amount":1}') }]);
    const outcome = (() => { try { resource.apply(bad); } catch (error) { return error.payload; } })();
    assert.equal(outcome.version, 9n);
    assert.match(outcome.message, /unknown type/);
  }
});

test('a malformed batch is an apply-error after the last event read, not a crash', () => {
  const resource = new (exportAggregate(Counter).Aggregate)('c');
  const good = (version) => ({ version, eventType: 'Added', data: encoder.encode('{"amount":1}') });
  const two = writeBatch([good(41n), good(42n)]);
  const first = two.length / 2;
  const lengthAt = (batch, at, value) => {
    const copy = batch.slice();
    new DataView(copy.buffer).setUint32(at, value, true);
    return copy;
  };
  const notUtf8 = writeBatch([good(41n), good(42n)]);
  notUtf8[first + 28] = 0xff;
  for (const [batch, offset, reason] of [
    [two.subarray(0, first + 27), first, 'an event header is cut short'],
    [two.subarray(0, two.length - 1), first, "an event's lengths run past the end of the batch"],
    [lengthAt(two, first + 24, 0xffffffff), first, "an event's lengths run past the end of the batch"],
    [lengthAt(two, first + 16, 0xfffffff0), first, "an event's lengths run past the end of the batch"],
    [notUtf8, first, 'a type name is not UTF-8'],
  ]) {
    resource.state = Counter.initial();
    try {
      resource.apply(batch);
      assert.fail('apply accepted a malformed batch');
    } catch (error) {
      assert.deepEqual(error.payload, {
        version: 42n,
        message: `the host sent a malformed batch (byte ${offset}): ${reason}`,
      });
    }
    assert.equal(resource.state.value, 1n, 'the event before it stays applied');
  }
  // Cut short at the very first event: the version after none read is 1.
  resource.state = Counter.initial();
  try {
    resource.apply(two.subarray(0, 10));
    assert.fail('apply accepted a malformed batch');
  } catch (error) {
    assert.deepEqual(error.payload, {
      version: 1n,
      message: 'the host sent a malformed batch (byte 0): an event header is cut short',
    });
  }
  assert.equal(resource.state.value, 0n);
});

test('a bug in the aggregate traps instead of becoming a value', () => {
  const Buggy = defineAggregate({
    initial: {},
    commands: { Go: null },
    events: { Went: null },
    handle: () => [{ type: 'Gone' }],
    apply() {},
  });
  const resource = new (exportAggregate(Buggy).Aggregate)('b');
  assert.throws(
    () => resource.execute('Go', 'application/json', encoder.encode('null'), 1n, 0n),
    (error) => error instanceof TypeError && !Object.hasOwn(error, 'payload'),
  );
});

test('handle must not change the state (the test helpers check)', () => {
  const Sneaky = defineAggregate({
    initial: { n: 0 },
    state: { n: number },
    commands: { Go: null },
    events: { Went: null },
    handle(state) {
      state.n += 1;
      return [];
    },
    apply() {},
  });
  assert.throws(() => given(Sneaky).when({ type: 'Go' }), /handle changed the state/);
});

test('snapshots are the state in field order and restore exactly; a bad one is refused', () => {
  const state = { value: 18446744073709551615n, tags: ['a', 'é"'] };
  const restored = givenState(Counter, state);
  assert.equal(decoder.decode(restored.resource.snapshot()), '{"value":18446744073709551615,"tags":["a","é\\""]}');
  assert.deepEqual(restored.resource.state, state);
  for (const bad of ['{"value":-1,"tags":[]}', '{"tags":[]}', 'nope']) {
    assert.throws(
      () => restored.resource.restore(encoder.encode(bad)),
      (error) => /^cannot restore the snapshot: /.test(error.payload),
    );
  }
});

test('the state schema is derived from the state types, or declared', () => {
  assert.match(Counter.stateSchema, /^js-[0-9a-f]{16}$/);
  const same = defineAggregate({ ...optionsOf(), state: { value: u64, tags: list(string) } });
  const other = defineAggregate({ ...optionsOf(), state: { value: i64, tags: list(string) } });
  const derived = defineAggregate({ ...optionsOf(), state: undefined });
  assert.equal(same.stateSchema, Counter.stateSchema);
  assert.notEqual(other.stateSchema, Counter.stateSchema);
  // `initial` alone gives u64 for a non-negative BigInt, list<any> for an empty array.
  assert.match(derived.stateSchema, /^js-/);
  assert.notEqual(derived.stateSchema, Counter.stateSchema);
  assert.equal(defineAggregate({ ...optionsOf(), stateSchema: '2' }).stateSchema, '2');
  assert.throws(() => defineAggregate({ ...optionsOf(), stateSchema: 'has space' }), /printable ASCII/);
});

function optionsOf() {
  return {
    initial: () => ({ value: 0n, tags: [] }),
    commands: { Add: { amount: u64 } },
    events: { Added: { amount: u64 } },
    handle: () => [],
    apply() {},
  };
}

test('definitions are checked when defined', () => {
  assert.throws(() => defineAggregate({ ...optionsOf(), handle: undefined }), /`handle` must be a function/);
  assert.throws(() => defineAggregate({ ...optionsOf(), events: {} }), /has no events/);
  assert.throws(() => defineAggregate({ ...optionsOf(), events: { A: { type: string } } }), /cannot be named `type`/);
  assert.throws(() => defineAggregate({ ...optionsOf(), events: { A: { x: 'string' } } }), /not a field type/);
  assert.throws(() => defineAggregate({ ...optionsOf(), initial: () => ({ f: () => 1 }) }), /cannot be written as JSON/);
  assert.throws(() => exportAggregate({}), /defineAggregate/);
  assert.equal(definitionOf(exportAggregate(Counter)), Counter);
});

test('field types read and write what they say', () => {
  const Shape = defineAggregate({
    initial: {},
    commands: {
      All: { small: u8, big: u32, ratio: number, kind: oneOf('a', 'b'), counts: map(u64), anything: any, nested: list({ x: u8 }) },
    },
    events: { E: null },
    handle: (_, command) => {
      assert.deepEqual(command, {
        type: 'All', small: 255, big: 4294967295, ratio: 0.5, kind: 'b', counts: { a: 18446744073709551615n },
        anything: { n: 9007199254740993n, f: 1.5, s: 'x' }, nested: [{ x: 1 }],
      });
      return [];
    },
    apply() {},
  });
  given(Shape)
    .whenRaw('All', '{"small":255,"big":4294967295,"ratio":0.5,"kind":"b","counts":{"a":18446744073709551615},"anything":{"n":9007199254740993,"f":1.5,"s":"x"},"nested":[{"x":1}]}')
    .thenEvents();
  for (const bad of ['"small":256', '"big":-1', '"kind":"c"', '"counts":{"a":-1}', '"nested":[{"x":"1"}]', '"ratio":"x"']) {
    const data = `{"small":1,"big":1,"ratio":1,"kind":"a","counts":{},"anything":null,"nested":[],${bad}}`;
    given(Shape).whenRaw('All', data).thenRejected('malformed-command');
  }
});

test('the lossless JSON helpers keep big integers and write BigInts as numbers', () => {
  assert.deepEqual(parseLossless('{"a":[18446744073709551615,1.5,"9007199254740993",-3]}'), {
    a: [18446744073709551615n, 1.5, '9007199254740993', -3],
  });
  assert.equal(stringify({ b: 1n, a: [null, true, 'x'] }, true), '{"a":[null,true,"x"],"b":1}');
  assert.throws(() => stringify({ f() {} }), TypeError);
  assert.ok(new WireError('x') instanceof Error);
});

test('the state schema goes into a custom section at the end of the component', () => {
  const out = withCustomSection(new Uint8Array([1, 2]), 'aether:state-schema', 'js-1');
  assert.deepEqual([...out], [1, 2, 0, 24, 19, ...encoder.encode('aether:state-schema'), ...encoder.encode('js-1')]);
});

test('the generated fast reader agrees with the checked reader, and defers to it on anything odd', () => {
  const Mixed = defineAggregate({
    initial: {},
    commands: { C: null },
    events: { E: { s: string, n: u32, b: u64, o: optional(string), k: oneOf('x', 'y'), toString: optional(u8) } },
    handle: () => [],
    apply() {},
  });
  const variant = Mixed.events.get('E');
  assert.equal(typeof variant.fast, 'function');
  const good = [
    { s: 'a', n: 0, b: 0, k: 'x' },
    { s: 'é', n: 4294967295, b: 9007199254740991, o: null, k: 'y', toString: 255, extra: 1 },
  ];
  for (const value of good) {
    assert.deepEqual(variant.fast(value), variant.type.read(value, { type: 'E' }));
  }
  const odd = [
    [], null, 'x', { s: 1, n: 0, b: 0, k: 'x' }, { s: 'a', n: -1, b: 0, k: 'x' }, { s: 'a', n: 0.5, b: 0, k: 'x' },
    { s: 'a', n: 0, b: 2 ** 53, k: 'x' }, { s: 'a', n: 0, b: -1, k: 'x' }, { s: 'a', n: 0, b: 0, k: 'z' },
    { s: 'a', n: 0, b: 0, k: 'x', toString: 256 }, { n: 0, b: 0, k: 'x' },
  ];
  for (const value of odd) assert.equal(variant.fast(value), undefined, JSON.stringify(value));
  // The generated writer writes what the checked writer writes, and leaves anything else to it.
  assert.equal(typeof variant.fastWrite, 'function');
  for (const value of [
    { s: 'a"\n\u0001é', n: 7, b: 18446744073709551615n, o: 'x', k: 'y', toString: 3 },
    { s: '', n: 0, b: 0n, k: 'x' },
  ]) {
    assert.equal(variant.fastWrite(value), variant.type.write(value));
  }
  assert.equal(variant.fastWrite({ s: 'a', n: 0, b: 5, k: 'x' }), undefined);
  assert.equal(variant.write({ s: 'a', n: 0, b: 5, k: 'x' }), '{"s":"a","n":0,"b":5,"o":null,"k":"x","toString":null}');
  for (const bad of [{ s: 'a', n: -1, b: 0n, k: 'x' }, { s: 'a', n: 0, b: -1n, k: 'x' }, { s: 'a', n: 0, b: 0n, k: 'q' }, {}]) {
    assert.equal(variant.fastWrite(bad), undefined);
    assert.throws(() => variant.write(bad), TypeError);
  }
  // A big integer the fast reader refuses is read exactly by the checked path.
  const [[, text]] = Mixed.encodeEvents({ type: 'E', s: 'a', n: 1, b: 2n ** 64n - 1n, k: 'x' });
  assert.equal(variant.decode(encoder.encode(text), false).b, 2n ** 64n - 1n);
  // Events are read without the fraction check (the SDK never writes one); commands with it.
  assert.equal(variant.decode(encoder.encode('{"s":"a","n":1.0,"b":1,"k":"x"}'), false).n, 1);
  assert.throws(() => variant.decode(encoder.encode('{"s":"a","n":1.0,"b":1,"k":"x"}'), true), WireError);
});

// The canonical readers (canonical.js) against the general path.
const Canon = defineAggregate({
  name: 'Canon',
  initial: () => ({ seen: [] }),
  state: { seen: list(any) },
  commands: { Paid: { amount: u64 }, Noted: { text: string, count: u64, small: u8, big: i64 } },
  events: {
    Paid: { amount: u64 },
    Noted: { text: string, count: u64, small: u8, big: i64 },
    'Pa\u00efd': { amount: u32 },
    Ping: null,
    Tagged: { amount: u64, tag: optional(string) },
  },
  handle: () => [],
  apply(state, event) {
    state.seen.push(event);
  },
});

const AMOUNTS = [
  '{"amount":0}', '{"amount":7}', '{"amount":123456789012345}', '{"amount":1234567890123456}',
  '{"amount":9007199254740993}', '{"amount":18446744073709551615}', '{"amount":18446744073709551616}',
  '{"amount":4294967295}', '{"amount":4294967296}',
  '{"amount":00}', '{"amount":01}', '{"amount":-1}', '{"amount":-0}', '{"amount":+1}', '{"amount":1.0}',
  '{"amount":1e3}', '{"amount": 1}', '{"amount":1 }', '{"amount":}', '{"amount":"1"}', '{"amount":1}x',
  '{"amount":1} ', '{"amount":1,"more":2}', '{"amount":1}}', '{"amount":1', '{"amount"', '{"Amount":1}',
  '{}', '', 'null', '{"amount":1,"tag":null}', '{"amount":1,"tag":"x"}',
];
const NOTED = [
  '{"text":"Ada","count":7,"small":255,"big":3}', '{"text":"","count":0,"small":0,"big":0}',
  '{"text":"A\\"b","count":1,"small":1,"big":1}', '{"text":"\u00e9t\u00e9","count":1,"small":1,"big":1}',
  '{"text":"x","count":1,"small":256,"big":1}', '{"text":"x","count":1,"small":1,"big":-5}',
  '{"text":"x","count":1,"small":1,"big":9223372036854775807}', '{"text":"x\u0001","count":1,"small":1,"big":1}',
  '{"text":"x","count":1,"small":1}', '{"count":1,"text":"x","small":1,"big":1}', '{"text":"x,"count":1,"small":1,"big":1}',
  '{"text":"x","count":1,"small":1,"big":1,"more":[1]}', '{"text":"x}","count":1,"small":1,"big":1}',
];
const PINGS = ['null', '', '{}', ' null', 'nul', 'nulll', '[]', 'null ', 'NULL'];

test('the canonical readers agree with the general path, event by event and in a batch', () => {
  const resource = new (exportAggregate(Canon).Aggregate)('c');
  for (const [eventType, cases] of [['Paid', AMOUNTS], ['Pa\u00efd', AMOUNTS], ['Tagged', AMOUNTS], ['Noted', NOTED], ['Ping', PINGS]]) {
    const variant = Canon.events.get(eventType);
    for (const text of cases) {
      const data = encoder.encode(text);
      let expected;
      try {
        expected = variant.decode(data, false);
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
      }
      if (variant.canonical !== undefined) {
        const read = variant.canonical(data);
        if (read !== undefined) assert.deepEqual(read, expected, `${eventType} ${text}`);
      }
      resource.state = Canon.initial();
      let error;
      try {
        resource.apply(writeBatch([{ version: 4n, eventType, contentType: 'application/json', data }]));
      } catch (thrown) {
        error = thrown;
      }
      if (expected === undefined) {
        assert.equal(error?.payload?.version, 4n, `${eventType} ${text} applied`);
        assert.deepEqual(resource.state.seen, []);
      } else {
        assert.equal(error, undefined, `${eventType} ${text}: ${error?.payload?.message}`);
        assert.deepEqual(resource.state.seen, [expected], `${eventType} ${text}`);
      }
    }
  }
  // The canonical paths are taken for what the SDK writes.
  assert.deepEqual(Canon.events.get('Paid').canonical(encoder.encode('{"amount":42}')), { type: 'Paid', amount: 42n });
  assert.deepEqual(Canon.events.get('Ping').canonical(encoder.encode('null')), { type: 'Ping' });
  assert.equal(Canon.events.get('Tagged').canonical, undefined);
});

test('commands in the canonical form decode as the general path decodes them, strictly', () => {
  for (const [commandType, cases] of [['Paid', AMOUNTS], ['Noted', NOTED]]) {
    for (const text of cases) {
      const data = encoder.encode(text);
      let expected;
      try {
        expected = Canon.commands.get(commandType).decode(data, true);
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
      }
      let actual;
      try {
        actual = Canon.decodeCommand(commandType, 'application/json', data);
      } catch (error) {
        if (!(error instanceof Rejection)) throw error;
        assert.equal(error.code, 'malformed-command');
      }
      assert.deepEqual(actual, expected, `${commandType} ${text}`);
    }
  }
});

test('an event that ends where the next one starts is not read past its end', () => {
  const resource = new (exportAggregate(Canon).Aggregate)('c');
  // `{"amount":1` followed by an event whose first bytes would complete it.
  const batch = writeBatch([
    { version: 1n, eventType: 'Paid', data: encoder.encode('{"amount":1') },
    { version: 125n, eventType: 'Paid', data: encoder.encode('{"amount":2}') },
  ]);
  assert.throws(() => resource.apply(batch), (error) => error.payload.version === 1n);
  assert.deepEqual(resource.state.seen, []);
});

// `execute` (aether:aggregate@0.4.0): decide, write the batch, read back and fold in one call.

/** An aggregate whose `handle` returns what `decide(state, command)` returns (set per test). */
function echo(events, decide) {
  return defineAggregate({
    name: 'Echo',
    initial: () => ({ seen: [] }),
    state: { seen: list(any) },
    commands: { Go: { n: u64 } },
    events,
    handle: (state, command) => decide(state, command),
    apply(state, event) {
      state.seen.push(event);
    },
  });
}

/** `execute`'s command arguments for `Go`. */
const GO = ['Go', 'application/json', encoder.encode('{"n":1}')];
const TIME = 1_700_000_000_123n;

/** `f()`'s WIT error payload; fails if it returns. */
function errorOf(f) {
  try {
    f();
  } catch (error) {
    if (Object.hasOwn(error, 'payload')) return error.payload;
    throw error;
  }
  return assert.fail('expected a WIT error');
}

/** The rejection of a decision; fails if it is not one. */
function rejectionOf(decision) {
  assert.equal(decision.tag, 'rejected', `expected a rejection, got ${decision.tag}`);
  return decision.val;
}

test('execute returns the events handle decided as the batch the host stores, and leaves the state a replay gives', () => {
  const decisions = [
    [{ type: 'Paid', amount: 7n }],
    { type: 'Paid', amount: 18446744073709551615n },
    [{ type: 'Noted', text: 'Ada', count: 1n, small: 2, big: -3n }, { type: 'Noted', text: 'été "x"', count: 0n, small: 0, big: 0n }],
    [{ type: 'Pa\u00efd', amount: 4294967295 }, { type: 'Ping' }, { type: 'Tagged', amount: 1n, tag: null }],
    [{ type: 'Tagged', amount: 2n, tag: 'é' }, { type: 'Tagged', amount: 3n }, { type: 'Paid', amount: 123456789012345n }],
    [{ type: 'Tagged', amount: 1n, tag: 'a\ud800' }, { type: 'Noted', text: '\udc00\n', count: 1n, small: 1, big: 1n }],
    // Values the writer takes but the reader gives otherwise.
    [{ type: 'Tagged', amount: 5, extra: 'x' }, { type: 'Paid', amount: 6 }],
  ];
  const events = {
    Paid: { amount: u64 },
    Noted: { text: string, count: u64, small: u8, big: i64 },
    'Pa\u00efd': { amount: u32 },
    Ping: null,
    Tagged: { amount: u64, tag: optional(string) },
  };
  for (const decided of decisions) {
    const Echo = echo(events, () => decided);
    const Resource = exportAggregate(Echo).Aggregate;
    const given = writeBatch([
      { version: 1n, eventType: 'Paid', data: encoder.encode('{"amount":1}') },
      { version: 2n, eventType: 'Ping', data: encoder.encode('null') },
    ]);
    const live = new Resource('e');
    live.apply(given);
    const decision = live.execute(...GO, 3n, TIME);
    // Byte for byte what 0.2.0's `handle` returned, as the batch the host
    // stores: versions from 3, every one stamped with the command's time.
    const expected = Echo.encodeEvents(decided).map(([eventType, text], index) => ({
      version: 3n + BigInt(index), timestampMs: TIME, eventType, contentType: 'application/json', data: encoder.encode(text),
    }));
    assert.deepEqual(decision, { tag: 'events', val: writeBatch(expected) });
    assert.deepEqual(readBatch(decision.val), expected);
    // The state a replay of the stored events gives.
    const replayed = new Resource('e');
    replayed.apply(given);
    replayed.apply(decision.val);
    assert.deepEqual(live.state, replayed.state);
    assert.equal(live.state.seen.length, 2 + expected.length);
  }
  // Read back from the bytes, not taken from handle's values.
  const Echo = echo(events, () => [{ type: 'Tagged', amount: 5, extra: 'x' }, { type: 'Pa\u00efd', amount: 1 }]);
  const resource = new (exportAggregate(Echo).Aggregate)('e');
  resource.execute(...GO, 1n, TIME);
  assert.deepEqual(resource.state.seen, [{ type: 'Tagged', amount: 5n, tag: null }, { type: 'Pa\u00efd', amount: 1 }]);
});

test('a rejected command leaves the state as it was', () => {
  const resource = new (exportAggregate(Counter).Aggregate)('c');
  resource.apply(writeBatch([{ version: 1n, eventType: 'Added', data: encoder.encode('{"amount":5,"tag":"x"}') }]));
  const before = structuredClone(resource.state);
  for (const [command, code] of [
    [['Add', 'application/json', encoder.encode('{"amount":0}')], 'invalid-amount'],
    [['Add', 'application/json', encoder.encode('{"amount":-1}')], 'malformed-command'],
    [['Add', 'text/plain', encoder.encode('{"amount":1}')], 'unsupported-content-type'],
  ]) {
    assert.equal(rejectionOf(resource.execute(...command, 2n, TIME)).code, code);
    assert.deepEqual(resource.state, before);
  }
  assert.deepEqual(rejectionOf(resource.execute('Add', 'application/json', encoder.encode('{"amount":0}'), 2n, TIME)), {
    code: 'invalid-amount',
    message: 'add more than 0',
  });
});

test('an event that does not read back makes the decision unapplied, the error at its version; the events before it stay applied', () => {
  // A field type whose writer writes what its reader refuses: an odd number.
  const even = {
    describe: 'even',
    read(value) {
      if (typeof value !== 'number' || value % 2 !== 0) throw new WireError(`expected an even number, got ${value}`);
      return value;
    },
    write: (value) => JSON.stringify(value),
  };
  const Odd = echo({ Counted: { n: even }, Paid: { amount: u64 } }, () => [
    { type: 'Paid', amount: 1n },
    { type: 'Counted', n: 2 },
    { type: 'Counted', n: 3 },
    { type: 'Paid', amount: 4n },
  ]);
  const Resource = exportAggregate(Odd).Aggregate;
  const resource = new Resource('o');
  const decision = resource.execute(...GO, 10n, TIME);
  assert.equal(decision.tag, 'unapplied');
  assert.deepEqual(
    readBatch(decision.val.events).map((event) => [event.version, event.eventType, decoder.decode(event.data)]),
    [[10n, 'Paid', '{"amount":1}'], [11n, 'Counted', '{"n":2}'], [12n, 'Counted', '{"n":3}'], [13n, 'Paid', '{"amount":4}']],
  );
  assert.deepEqual(decision.val.error, {
    version: 12n,
    message: 'cannot apply event: invalid data for "Counted": field `n`: expected an even number, got 3',
  });
  assert.deepEqual(resource.state.seen, [{ type: 'Paid', amount: 1n }, { type: 'Counted', n: 2 }]);
  // The same error and state as a replay of the stored events.
  const replayed = new Resource('o');
  const replayError = errorOf(() => replayed.apply(decision.val.events));
  assert.deepEqual(replayError, decision.val.error);
  assert.deepEqual(replayed.state, resource.state);
  // The test helpers refuse such a decision.
  assert.throws(() => given(Odd).when({ type: 'Go', n: 1n }), /the decided events do not apply/);
});

test('a command that decides nothing returns no events and leaves the state', () => {
  for (const nothing of [[], undefined, null]) {
    const resource = new (exportAggregate(echo({ Paid: { amount: u64 } }, () => nothing)).Aggregate)('z');
    resource.apply(writeBatch([{ version: 1n, eventType: 'Paid', data: encoder.encode('{"amount":1}') }]));
    assert.deepEqual(resource.execute(...GO, 2n, TIME), { tag: 'events', val: new Uint8Array(0) });
    assert.deepEqual(resource.state.seen, [{ type: 'Paid', amount: 1n }]);
  }
});

test('when goes through execute, at the next version, and checks the state against a replay', () => {
  const seen = [];
  const Versions = echo({ Paid: { amount: u64 } }, () => [{ type: 'Paid', amount: 1n }, { type: 'Paid', amount: 2n }]);
  const twoPaid = given(Versions, { type: 'Paid', amount: 5n }, { type: 'Paid', amount: 6n });
  const Resource = twoPaid.resource.constructor;
  const original = Resource.prototype.execute;
  Resource.prototype.execute = function (commandType, contentType, data, firstVersion, timestampMs) {
    seen.push([firstVersion, timestampMs]);
    return original.call(this, commandType, contentType, data, firstVersion, timestampMs);
  };
  try {
    const then = twoPaid.when({ type: 'Go', n: 1n });
    then.thenEvents({ type: 'Paid', amount: 1n }, { type: 'Paid', amount: 2n });
    assert.equal(then.decision.tag, 'events');
    assert.equal(then.resource.version, 4n);
    assert.equal(then.resource.state.seen.length, 4);
  } finally {
    Resource.prototype.execute = original;
  }
  assert.deepEqual(seen, [[3n, 1_700_000_000_000n]]);
  // A fold that depends on more than the events is not a replay.
  let calls = 0;
  const Impure = defineAggregate({
    initial: { n: 0 },
    state: { n: number },
    commands: { Go: null },
    events: { Went: null },
    handle: () => [{ type: 'Went' }],
    apply(state) {
      state.n = ++calls;
    },
  });
  assert.throws(() => given(Impure).when({ type: 'Go' }), /apply is not deterministic/);
});
