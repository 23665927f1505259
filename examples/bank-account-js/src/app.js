// The bank-account aggregate as an Aether component written in JavaScript:
// the same rules, rejections and wire bytes as examples/bank-account (Rust),
// exported through wit/aggregate.wit (world `aggregate-component`).
//
// componentize-js conventions this module relies on:
// - the exported interface `aether:aggregate/handler@0.1.0` is the named
//   export `handler`, and its resource `aggregate` the class `Aggregate`;
// - records are objects with camelCase fields (`eventType`, `contentType`),
//   `list<u8>` is a Uint8Array and `u64` a BigInt;
// - a method returning `result<T, E>` returns T for `ok`; throwing a value
//   with an own `payload` property makes `err(payload)`; any other thrown
//   Error traps (a guest bug: the host drops the instance).
//
// Lifecycle (see guest-sdk/src/export.rs): the host constructs one resource
// per aggregate id it activates, then calls `restore` (if it has a snapshot)
// and `apply` with the stored events in batches, then `handle` per command
// followed by `apply` of the events it stored. Nothing here reads a clock or
// a random source: replay is a pure function of the events.

import { Command, Event, Rejection, State, decide, evolve, initial, view } from './account.js';
import { JsonError, readJson } from './json.js';
import { CONTENT_TYPE, WireError, decodeVariant, encodeVariant, isJson } from './wire.js';

const encoder = new TextEncoder();

keepByteOrderMarks();

/**
 * componentize-js lifts every WIT string argument with a default
 * `new TextDecoder().decode(bytes)`, which drops a leading U+FEFF (byte
 * order mark). The Rust component sees such a command type, event type or
 * content type as it was sent (and refuses it as unknown); so must this
 * one. The default decoder is patched to keep the mark; every other input
 * decodes as before. This runs once, when the module is initialised at
 * build time.
 */
function keepByteOrderMarks() {
  const Decoder = globalThis.TextDecoder;
  if (Decoder === undefined) return;
  const { decode } = Decoder.prototype;
  Decoder.prototype.decode = function decodeKeepingBom(input, options) {
    const text = decode.call(this, input, options);
    if (this.ignoreBOM || this.encoding !== 'utf-8' || options?.stream || input === undefined) return text;
    const bytes = ArrayBuffer.isView(input)
      ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
      : new Uint8Array(input);
    const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    return bom ? `\ufeff${text}` : text;
  };
}

/** The `err` side of a WIT `result`. */
class Err {
  constructor(payload) {
    this.payload = payload;
  }
}

/** One live aggregate: its state stays in guest memory between calls. */
class Aggregate {
  #state;

  /** The id names the stream; the state does not depend on it, so replay stays pure. */
  constructor(_id) {
    this.#state = initial();
  }

  /** Applies stored events in order; stops at the first one that does not decode. */
  apply(events) {
    for (const event of events) {
      const failed = (message) => new Err({ version: event.version, message });
      if (!isJson(event.contentType)) {
        throw failed(
          `unsupported content type "${event.contentType}" for event "${event.eventType}": expected ${CONTENT_TYPE}`,
        );
      }
      let decoded;
      try {
        decoded = decodeVariant(Event, event.eventType, event.data);
      } catch (error) {
        if (error instanceof WireError) throw failed(`cannot apply event: ${error.message}`);
        throw error;
      }
      evolve(this.#state, decoded);
    }
  }

  /** Decides a command against the current state without changing it. */
  handle(command) {
    if (!isJson(command.contentType)) {
      throw new Err({
        code: 'unsupported-content-type',
        message: `cannot read a "${command.commandType}" command with content type "${command.contentType}": expected ${CONTENT_TYPE}`,
      });
    }
    let decoded;
    try {
      decoded = decodeVariant(Command, command.commandType, command.data);
    } catch (error) {
      if (error instanceof WireError) {
        throw new Err({ code: 'malformed-command', message: error.message });
      }
      throw error;
    }
    let events;
    try {
      events = decide(this.#state, decoded);
    } catch (error) {
      if (error instanceof Rejection) {
        throw new Err({ code: error.code, message: error.message });
      }
      throw error;
    }
    return events.map((event) => {
      const { type, data } = encodeVariant(Event, event);
      return { eventType: type, contentType: CONTENT_TYPE, data };
    });
  }

  /** `{"status":"open","owner":"Ada","balance":70}`: the Rust component's snapshot bytes. */
  snapshot() {
    return encoder.encode(State.encode(this.#state));
  }

  /** Replaces the state with a snapshot's; on a bad snapshot the state is left unchanged. */
  restore(bytes) {
    let restored;
    try {
      restored = readJson(bytes, State.read);
    } catch (error) {
      if (error instanceof JsonError) {
        throw new Err(`cannot restore the snapshot: ${error.describe(bytes)}`);
      }
      throw error;
    }
    this.#state = restored;
  }

  /** `{"balance":70,"owner":"Ada","status":"open"}` (keys sorted). */
  view() {
    return view(this.#state);
  }
}

/** The exported interface `aether:aggregate/handler@0.1.0`. */
export const handler = { Aggregate };
