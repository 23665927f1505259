// The componentize-js glue: the WIT resource `aggregate` (interface
// `aether:aggregate/handler@0.4.0`) around an aggregate's definition.
//
// componentize-js conventions this relies on:
// - the exported interface `handler` is the app module's named export
//   `handler`, and its resource the class `Aggregate` on it;
// - records are objects with camelCase fields, `list<u8>` is a Uint8Array,
//   `u64` a BigInt (so `apply` gets the batch as one Uint8Array, read in
//   place by batch.js) and a variant an object `{ tag, val }` (`execute`
//   returns `{ tag: 'events', val: batch }`, `'rejected'` or
//   `'unapplied'`);
// - a method returning `result<T, E>` returns T for `ok`; throwing a value
//   with an own `payload` property makes `err(payload)`; anything else
//   thrown traps (a guest bug: the host drops the instance).
//
// The class uses nothing from the bindings, so the very code the component
// runs also runs under plain Node (`@aether/guest/testing` uses it).
//
// Lifecycle: the host constructs one resource per aggregate id it
// activates, calls `restore` (if it has a snapshot) and `apply` with the
// stored events in batches, then `execute` per command, which decides it,
// writes the decided events as a batch (the layout `apply` reads, stamped
// with the versions and timestamp the host will store) and applies them in
// the same call. Failure modes, as in the Rust SDK: a payload that does not
// decode is a value (an `apply-error`, or the rejection
// `malformed-command`); any other exception is a trap.

import { AggregateDefinition, CONTENT_TYPE, Rejection } from './aggregate.js';
import { HEADER_LEN, JSON_BYTES, byteLookup, isJsonAt, malformed, nameAt } from './batch.js';
import { asText, canonicalEvents } from './canonical.js';
import { WireError } from './json.js';

/** The `err` side of a WIT `result`. */
class Err {
  constructor(payload) {
    this.payload = payload;
  }
}

const encoder = new TextEncoder();
const DEFINITION = Symbol('aether aggregate definition');
/** The batch of a command that decides nothing (the glue copies it out, never changes it). */
const NO_EVENTS = new Uint8Array(0);

/**
 * The apply-error for a batch that breaks its layout after the event read
 * at `last` (-1 for none): the version after that event's.
 */
function failure(view, last, message) {
  return new Err({ version: last < 0 ? 1n : view.getBigUint64(last, true) + 1n, message });
}

/** The class of the WIT resource for `definition`. */
export function resourceClass(definition) {
  const { initial, handle: decide, apply: fold } = definition;
  // type name -> Variant; and the same looked up by the name's bytes in a batch.
  const events = definition.events;
  const variantAt = byteLookup(events);
  // The common event read from the batch as text (canonical.js), else undefined.
  const canonicalAt = canonicalEvents(events.values(), CONTENT_TYPE);

  // Each event variant's type name as bytes, for the batch execute writes.
  const nameBytes = new Map();
  for (const variant of events.values()) nameBytes.set(variant, encoder.encode(variant.name));

  function rejected(rejection) {
    return { tag: 'rejected', val: { code: rejection.code, message: rejection.message } };
  }

  return class Aggregate {
    /** The id names the stream; the state does not depend on it, so replay stays pure. */
    constructor(_id) {
      this.state = initial();
    }

    /**
     * Applies a batch of stored events (one buffer, see batch.js) in order;
     * stops at the first one that does not decode, or where the batch
     * breaks its layout.
     */
    apply(batch) {
      const end = batch.byteLength;
      let state = this.state;
      let offset = 0;
      // Where the last event read starts (its version is read only for an error).
      let last = -1;
      const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
      // The batch as text, one character per byte, for canonicalAt.
      const text = canonicalAt === undefined ? undefined : asText(batch);
      while (offset < end) {
        if (end - offset < HEADER_LEN) {
          // The events before a failed one stay applied, none after it is.
          this.state = state;
          throw failure(view, last, malformed(offset, 'an event header is cut short'));
        }
        const typeStart = offset + HEADER_LEN;
        const typeLength = view.getUint32(offset + 16, true);
        const contentStart = typeStart + typeLength;
        const contentLength = view.getUint32(offset + 20, true);
        const dataStart = contentStart + contentLength;
        const next = dataStart + view.getUint32(offset + 24, true);
        if (next > end) {
          this.state = state;
          throw failure(view, last, malformed(offset, "an event's lengths run past the end of the batch"));
        }
        if (canonicalAt !== undefined) {
          const value = canonicalAt(text, typeStart, typeLength, contentLength, next);
          if (value !== undefined) {
            const folded = fold(state, value);
            if (folded !== undefined) state = folded;
            last = offset;
            offset = next;
            continue;
          }
        }
        const data = batch.subarray(dataStart, next);
        const variant = isJsonAt(view, contentStart, contentLength) ? variantAt(batch, typeStart, typeLength) : undefined;
        let value;
        if (variant !== undefined) {
          try {
            value = variant.decode(data, false);
          } catch (error) {
            if (!(error instanceof WireError)) throw error;
          }
        }
        if (value === undefined) {
          // The slow path, with the names as text; it also words the apply-error.
          const eventType = nameAt(batch, typeStart, typeLength);
          const contentType = nameAt(batch, contentStart, contentLength);
          if (eventType === undefined || contentType === undefined) {
            this.state = state;
            throw failure(view, last, malformed(offset, 'a type name is not UTF-8'));
          }
          value = definition.decodeEvent(eventType, contentType, data);
          if (value === undefined) {
            this.state = state;
            throw new Err({
              version: view.getBigUint64(offset, true),
              message: definition.applyError(eventType, contentType, data),
            });
          }
        }
        const folded = fold(state, value);
        if (folded !== undefined) state = folded;
        last = offset;
        offset = next;
      }
      this.state = state;
    }

    /**
     * Decides a command against the current state and applies the decided
     * events to it: the WIT `decision`, `{ tag: 'events', val: batch }`,
     * `{ tag: 'rejected', val: rejection }` (the state untouched) or
     * `{ tag: 'unapplied', val: { events: batch, error } }`.
     *
     * The events are first all written into one batch (what the host
     * stores: event i is version `firstVersion + i`, each stamped
     * `timestampMs`), then each is read back from its bytes just written,
     * as `apply` reads a stored event, and folded: the state is the one a
     * replay of the stored events gives. The first that does not read back
     * stops there, as `apply` stops, and is the `unapplied` error (the
     * events before it stay applied).
     */
    execute(commandType, contentType, data, firstVersion, timestampMs) {
      let decided;
      try {
        const value = definition.decodeCommand(commandType, contentType, data);
        decided = decide(this.state, value);
      } catch (error) {
        if (error instanceof Rejection) return rejected(error);
        throw error;
      }
      if (decided instanceof Rejection) return rejected(decided);
      if (decided === undefined || decided === null) return { tag: 'events', val: NO_EVENTS };
      const list = Array.isArray(decided) ? decided : [decided];
      const count = list.length;
      // Each event's variant, JSON text and data bytes (see `encodeEvents`,
      // which also words the errors).
      const variants = new Array(count);
      const texts = new Array(count);
      const datas = new Array(count);
      let size = 0;
      for (let index = 0; index < count; index++) {
        const event = list[index];
        const variant = event !== null && typeof event === 'object' ? events.get(event.type) : undefined;
        if (variant === undefined) definition.encodeEvents([event]); // throws: not one of its events
        const text = variant.write(event);
        const bytes = encoder.encode(text);
        variants[index] = variant;
        texts[index] = text;
        datas[index] = bytes;
        size += HEADER_LEN + nameBytes.get(variant).length + JSON_BYTES.length + bytes.length;
      }
      const batch = new Uint8Array(size);
      const view = new DataView(batch.buffer);
      const starts = new Array(count);
      let offset = 0;
      for (let index = 0; index < count; index++) {
        const name = nameBytes.get(variants[index]);
        const bytes = datas[index];
        view.setBigUint64(offset, firstVersion + BigInt(index), true);
        view.setBigUint64(offset + 8, timestampMs, true);
        view.setUint32(offset + 16, name.length, true);
        view.setUint32(offset + 20, JSON_BYTES.length, true);
        view.setUint32(offset + 24, bytes.length, true);
        offset += HEADER_LEN;
        batch.set(name, offset);
        offset += name.length;
        batch.set(JSON_BYTES, offset);
        offset += JSON_BYTES.length;
        starts[index] = offset;
        batch.set(bytes, offset);
        offset += bytes.length;
      }
      let state = this.state;
      for (let index = 0; index < count; index++) {
        const variant = variants[index];
        const length = datas[index].length;
        // The event's data as the batch holds it, which `apply` would read.
        const data = batch.subarray(starts[index], starts[index] + length);
        // What `apply` does for an event with these names and data: the
        // canonical reader (over the data seen as text, one character per
        // byte), else the general one.
        let value;
        const readText = variant.canonicalText;
        if (readText !== undefined) {
          const text = texts[index];
          // ASCII text (as many bytes as characters) is its own bytes seen
          // as text: no TextDecoder call.
          value = length === text.length ? readText(text, text.length) : variant.canonical(data);
        }
        if (value === undefined) {
          try {
            value = variant.decode(data, false);
          } catch (error) {
            if (!(error instanceof WireError)) throw error;
          }
          if (value === undefined) {
            this.state = state;
            const error = {
              version: firstVersion + BigInt(index),
              message: definition.applyError(variant.name, CONTENT_TYPE, data),
            };
            return { tag: 'unapplied', val: { events: batch, error } };
          }
        }
        const folded = fold(state, value);
        if (folded !== undefined) state = folded;
      }
      this.state = state;
      return { tag: 'events', val: batch };
    }

    /** The state's JSON, fields in declaration order. */
    snapshot() {
      return encoder.encode(definition.snapshot(this.state));
    }

    /** Replaces the state with a snapshot's; on a bad snapshot the state is left unchanged. */
    restore(bytes) {
      let restored;
      try {
        restored = definition.restore(bytes);
      } catch (error) {
        if (error instanceof WireError) throw new Err(`cannot restore the snapshot: ${error.message}`);
        throw error;
      }
      this.state = restored;
    }

    /** The view, JSON with sorted keys. */
    view() {
      return definition.view(this.state);
    }
  };
}

/**
 * Makes `definition` the component's aggregate, like the Rust SDK's
 * `export_aggregate!`: export what it returns as `handler` from the module
 * the component is built from:
 *
 *     export const handler = exportAggregate(BankAccount);
 */
export function exportAggregate(definition) {
  if (!(definition instanceof AggregateDefinition)) {
    throw new TypeError('exportAggregate takes what defineAggregate returned');
  }
  const handler = { Aggregate: resourceClass(definition) };
  Object.defineProperty(handler, DEFINITION, { value: definition });
  return handler;
}

/** The definition behind an exported `handler` (for the build and the tests), or undefined. */
export function definitionOf(handler) {
  return handler?.[DEFINITION];
}
