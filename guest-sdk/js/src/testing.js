// Given/when/then tests for aggregates under plain Node (no Wasm), for
// `node:test` (or any runner: failures are `node:assert` errors).
//
//     import { given } from '@aether/guest/testing';
//
//     test('withdraw within the balance', () => {
//       given(BankAccount, { type: 'Opened', owner: 'Ada' }, { type: 'Deposited', amount: 100n })
//         .when({ type: 'Withdraw', amount: 30n })
//         .thenEvents({ type: 'Withdrawn', amount: 30n })
//         .thenView({ balance: 70, owner: 'Ada', status: 'open' });
//     });
//
// Everything crosses the code the component runs (the resource class of
// component.js) and the wire, as the host calls it: given events are
// written as JSON bytes and applied as one batch (`apply`), the command is
// written as JSON bytes and carried out by `execute`, which decides it,
// hands the decided events back as a batch and applies them in the same
// call. Each `when` then reads that batch back as the host does (its
// layout, versions and timestamps checked), checks that the state equals a
// replay of the given and the decided events (through `apply`, on a fresh
// resource), and that a rejection left the state as it was.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';

import { CONTENT_TYPE } from './aggregate.js';
import { readBatch, writeBatch } from './batch.js';
import { definitionOf, resourceClass } from './component.js';
import { parseLossless, stringify } from './json.js';

export { readBatch, writeBatch };

const TIMESTAMP_MS = 1_700_000_000_000n;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RESOURCES = new WeakMap();

function definitionFrom(aggregate) {
  const definition = definitionOf(aggregate) ?? aggregate;
  if (typeof definition?.decodeCommand !== 'function') {
    throw new TypeError('given(...) takes what defineAggregate (or exportAggregate) returned');
  }
  return definition;
}

function resourceOf(definition) {
  let Resource = RESOURCES.get(definition);
  if (Resource === undefined) {
    Resource = resourceClass(definition);
    RESOURCES.set(definition, Resource);
  }
  return Resource;
}

/** Calls a resource method: `{ ok }`, or `{ err }` for a WIT error; anything else thrown is a trap. */
function call(f) {
  try {
    return { ok: f() };
  } catch (error) {
    if (error !== null && typeof error === 'object' && Object.hasOwn(error, 'payload')) return { err: error.payload };
    throw error;
  }
}

function bytes(data) {
  if (data instanceof Uint8Array) return data;
  return encoder.encode(typeof data === 'string' ? data : stringify(data ?? null));
}

/**
 * An aggregate after its given events (or state), ready for commands:
 * each `when` runs on a fresh copy, so one `given` serves several.
 */
export class Given {
  constructor(definition, setUp) {
    this.definition = definition;
    // Brings a new resource to the given point.
    this.setUp = setUp;
    this.resource = this.fresh();
  }

  /** A new resource at the given point. */
  fresh() {
    const resource = new (resourceOf(this.definition))('test');
    resource.version = 0n;
    this.setUp(resource);
    return resource;
  }

  /** Decides `command` (`{ type, ...fields }`), written to JSON and read back as the host would send it. */
  when(command) {
    return this.whenRaw(command.type, this.definition.encodeCommand(command));
  }

  /** Decides a command given as its type and data (text, bytes or a plain value, BigInts allowed). */
  whenRaw(commandType, data, contentType = CONTENT_TYPE) {
    const resource = this.fresh();
    const before = this.definition.snapshot(resource.state);
    // As the host calls it: the first new event is the next version.
    const firstVersion = resource.version + 1n;
    const decision = resource.execute(commandType, contentType, bytes(data), firstVersion, TIMESTAMP_MS);
    if (decision.tag === 'rejected') {
      assert.equal(
        this.definition.snapshot(resource.state),
        before,
        `handle changed the state (${commandType}, rejected): only apply may`,
      );
      return new Then(this.definition, resource, { err: decision.val }, undefined);
    }
    assert.notEqual(
      decision.tag,
      'unapplied',
      `the decided events do not apply: ${stringify(decision.val?.error ?? null)}`,
    );
    assert.equal(decision.tag, 'events', `execute returned ${stringify(decision)}`);
    // What the host checks before it stores the batch.
    const stored = readBatch(decision.val);
    stored.forEach((event, index) => {
      assert.equal(event.version, firstVersion + BigInt(index), `the version of decided event ${index}`);
      assert.equal(event.timestampMs, TIMESTAMP_MS, `the timestamp of decided event ${index}`);
    });
    const decided = stored.map(({ eventType, contentType, data }) => ({ eventType, contentType, data }));
    const events = decided.map((e) => [e.eventType, e.data, e.contentType]);
    // The state execute left equals the state a replay of the stored events gives.
    const replayed = this.fresh();
    if (events.length > 0) {
      assert.deepEqual(applyRaw(replayed, events), { ok: undefined }, 'the decided events do not replay');
    }
    assert.deepEqual(
      resource.state,
      replayed.state,
      `handle changed the state, or apply is not deterministic (${commandType}): ` +
        'the state after execute differs from a replay of its events',
    );
    resource.version += BigInt(events.length);
    return new Then(this.definition, resource, { ok: decided }, decision);
  }
}

/** Applies stored events given as `[eventType, data, contentType?]` to `resource`, as one batch: `{ ok }` or `{ err }`. */
function applyRaw(resource, events) {
  const batch = writeBatch(
    events.map(([eventType, data, contentType = CONTENT_TYPE]) => ({
      version: ++resource.version,
      eventType,
      contentType,
      data: bytes(data),
      timestampMs: TIMESTAMP_MS,
    })),
  );
  return call(() => resource.apply(batch));
}

/** The outcome of one command (`execute` has applied its events). */
export class Then {
  constructor(definition, resource, outcome, decision) {
    this.definition = definition;
    this.resource = resource;
    /** `{ ok: the new events }` or `{ err: the rejection }`. */
    this.outcome = outcome;
    /** What `execute` returned when it decided events, `{ tag: 'events', val: batch }`; undefined on a rejection. */
    this.decision = decision;
  }

  #expectEvents() {
    if (this.outcome.ok === undefined) {
      assert.fail(`expected events, got the rejection ${stringify(this.outcome.err)}`);
    }
  }

  /** The decided events, each as `{ type, data }` with the data parsed losslessly. */
  get rawEvents() {
    this.#expectEvents();
    return this.outcome.ok.map((event) => ({
      type: event.eventType,
      data: parseLossless(decoder.decode(event.data)),
    }));
  }

  /** Asserts the command decided exactly these events (`{ type, ...fields }`). */
  thenEvents(...expected) {
    this.#expectEvents();
    const actual = this.outcome.ok.map((event) => {
      assert.equal(event.contentType, CONTENT_TYPE);
      const decoded = this.definition.decodeEvent(event.eventType, event.contentType, event.data);
      assert.ok(decoded, `the decided ${event.eventType} does not read back`);
      return decoded;
    });
    assert.deepEqual(actual, expected.map((event) => normalise(this.definition, event)));
    return this;
  }

  /** Asserts the command was rejected with `code` (and `message`, if given). */
  thenRejected(code, message) {
    if (this.outcome.err === undefined) {
      assert.fail(`expected the rejection ${code}, got the events ${stringify(this.rawEvents)}`);
    }
    assert.equal(this.outcome.err.code, code, `rejected with ${stringify(this.outcome.err)}`);
    if (message !== undefined) assert.equal(this.outcome.err.message, message);
    return this;
  }

  /** Asserts the state after the decided events were applied: equal to `expected`, or `expected(state)` holds. */
  thenState(expected) {
    const state = this.resource.state;
    if (typeof expected === 'function') assert.ok(expected(state) !== false, 'the state check failed');
    else assert.deepEqual(state, expected);
    return this;
  }

  /** Asserts the view (parsed losslessly) after the decided events were applied. */
  thenView(expected) {
    assert.deepEqual(parseLossless(this.resource.view()), expected);
    return this;
  }
}

/** An event or command as it reads back from the wire (optional fields present, numbers in their types). */
function normalise(definition, value) {
  const variant = definition.events.get(value?.type);
  if (variant === undefined) return value;
  return variant.decode(encoder.encode(variant.write(value)));
}

/** An aggregate after `events` (each `{ type, ...fields }`), applied through the component's code. */
export function given(aggregate, ...events) {
  const definition = definitionFrom(aggregate);
  const raw = events.map((event) => definition.encodeEvents([event])[0]);
  return givenRaw(definition, raw);
}

/** An aggregate after stored events given as `[eventType, data, contentType?]` (data: text, bytes or a plain value). */
export function givenRaw(aggregate, events) {
  const definition = definitionFrom(aggregate);
  return new Given(definition, (resource) => {
    assert.deepEqual(applyRaw(resource, events), { ok: undefined }, 'the given events do not apply');
  });
}

/** An aggregate restored from `state` (through a snapshot, as the host would). */
export function givenState(aggregate, state) {
  const definition = definitionFrom(aggregate);
  const snapshot = encoder.encode(definition.snapshot(state));
  return new Given(definition, (resource) => {
    const restored = call(() => resource.restore(snapshot));
    assert.deepEqual(restored, { ok: undefined }, 'the state does not restore from its snapshot');
  });
}

/**
 * Registers one `node:test` test per conformance scenario (`*.json`) in
 * `directory` (a path or file URL): given events, when a command, then the
 * expected events (compared as JSON values, integers exact) or rejection
 * (its code, and its message where the scenario states one).
 */
export function testScenarios(aggregate, directory) {
  const definition = definitionFrom(aggregate);
  const dir = directory instanceof URL ? directory : pathToFileURL(`${directory}/`);
  const files = readdirSync(dir).filter((file) => file.endsWith('.json')).sort();
  assert.ok(files.length > 0, `no scenarios in ${dir}`);
  for (const file of files) {
    const scenario = parseLossless(readFileSync(new URL(file, dir), 'utf8'));
    test(`scenario ${file}: ${scenario.name ?? ''}`, () => {
      const state = givenRaw(definition, (scenario.given ?? []).map((event) => [event.type, event.data ?? null]));
      const then = state.whenRaw(scenario.when.type, scenario.when.data ?? null);
      if (scenario.then.rejection) {
        then.thenRejected(scenario.then.rejection.code, scenario.then.rejection.message);
      } else {
        assert.deepEqual(
          then.rawEvents,
          scenario.then.events.map((event) => ({ type: event.type, data: event.data ?? null })),
        );
      }
    });
  }
}

