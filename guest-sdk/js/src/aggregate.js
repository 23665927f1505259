// `defineAggregate`, `Rejection`, and everything the SDK derives from an
// aggregate's definition once: the command and event tables with their
// decoders and encoders, the state's type, snapshots and the state schema.

import { canonicalReader } from './canonical.js';
import { NEED_EXACT, WireError, parse, parseExact, stringify, utf8 } from './json.js';
import { derive, show, typeOf } from './types.js';

/** The content type of every payload the SDK writes, and the one it reads. */
export const CONTENT_TYPE = 'application/json';

/**
 * A business decision not to carry out a command: throw it (or return it)
 * from `handle`. The host returns `code` (stable, machine-readable, e.g.
 * `insufficient-funds`) and `message` (for people) to the caller and
 * stores nothing.
 */
export class Rejection extends Error {
  constructor(code, message = '') {
    super(message ? `${code}: ${message}` : String(code));
    this.name = 'Rejection';
    this.code = String(code);
    // The WIT record's message, without the code in front.
    Object.defineProperty(this, 'message', { value: String(message), enumerable: true });
  }
}

/** `application/json` in any case, with or without parameters (`; charset=utf-8`). */
export function isJson(contentType) {
  return contentType === CONTENT_TYPE || contentType.split(';')[0].trim().toLowerCase() === CONTENT_TYPE;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// A number with a fraction or an exponent has a digit right before the
// `.`, `e` or `E`; only then can `JSON.parse` have read `1.0` as 1.
const NOT_PLAIN_NUMBER = /\d[.eE]/;

/** Rust's `trim_ascii().is_empty()`: a variant without fields also accepts blank data. */
function blank(text) {
  return /^[ \t\n\f\r]*$/.test(text);
}

/**
 * One command or event type: its name on the wire and its fields
 * (a record type, or `null` for a type without fields).
 */
class Variant {
  constructor(name, fields, kind) {
    this.name = name;
    this.kind = kind;
    this.unit = fields === null || fields === undefined;
    this.type = this.unit ? null : typeOf(fields, `${kind} ${name}`);
    if (!this.unit && this.type.fields === undefined) {
      throw new TypeError(`${kind} ${name}: give its fields as an object ({ amount: u64 }) or null`);
    }
    if (!this.unit && this.type.fields.some((field) => field.key === 'type')) {
      throw new TypeError(`${kind} ${name}: a field cannot be named \`type\` (it holds the ${kind}'s name)`);
    }
    this.strict = !this.unit && this.type.strictNumbers;
    this.fast = this.unit ? undefined : this.type.fastReader(name);
    this.fastWrite = this.unit ? undefined : this.type.fastWriter();
    /** `(bytes)`: the value from data in the canonical form, or undefined (see canonical.js). */
    this.canonical = canonicalReader(this);
    /** `(text, length)`: the same from the data seen as text, one character per byte (`asText`). */
    this.canonicalText = this.canonical?.text;
  }

  /**
   * `{ type, ...fields }` from UTF-8 JSON bytes; throws WireError.
   * `strict` also refuses `1.0` and `1e3` in integer fields; events (which
   * the SDK wrote itself) are read without that check, which costs a
   * regular expression per event.
   */
  decode(data, strict = true) {
    // utf8() and parse() inlined: this runs once per event.
    let text;
    try {
      text = decoder.decode(data);
    } catch {
      throw new WireError('the data is not UTF-8');
    }
    if (this.unit) {
      if (!blank(text)) {
        const value = parse(text);
        if (value !== null && !(typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0)) {
          throw new WireError(`expected null or {} for ${this.name}, got ${show(value)}`);
        }
      }
      return { type: this.name };
    }
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new WireError(`invalid JSON: ${error.message}`);
    }
    if (strict && this.strict && NOT_PLAIN_NUMBER.test(text)) {
      value = parseExact(text, value);
    } else if (this.fast !== undefined) {
      const read = this.fast(value);
      if (read !== undefined) return read;
    }
    try {
      return this.type.read(value, { type: this.name });
    } catch (error) {
      if (error !== NEED_EXACT) throw error;
      return this.type.read(parseExact(text, value), { type: this.name });
    }
  }

  /** Compact JSON text of a value's fields (`null` without fields). */
  write(value) {
    if (this.unit) return 'null';
    if (this.fastWrite !== undefined) {
      const text = this.fastWrite(value);
      if (text !== undefined) return text;
    }
    return this.type.write(value);
  }
}

function variants(table, kind, owner) {
  if (table === null || typeof table !== 'object' || Array.isArray(table)) {
    throw new TypeError(`${owner}: \`${kind}s\` must be an object from each ${kind} type to its fields`);
  }
  const out = new Map();
  for (const [name, fields] of Object.entries(table)) out.set(name, new Variant(name, fields, kind));
  if (out.size === 0) throw new TypeError(`${owner} has no ${kind}s`);
  return out;
}

/** FNV-1a, 64 bits, of the UTF-8 of `text`, as 16 hex digits. */
function fnv1a64(text) {
  let hash = 0xcbf29ce484222325n;
  for (const byte of encoder.encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, '0');
}

/**
 * An aggregate's definition, as `defineAggregate` returns it. Its
 * properties are read-only; the SDK's other modules use its methods.
 */
export class AggregateDefinition {
  constructor(options) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('defineAggregate({ initial, commands, events, handle, apply }) takes an object');
    }
    const name = options.name ?? 'aggregate';
    for (const method of ['handle', 'apply']) {
      if (typeof options[method] !== 'function') {
        throw new TypeError(`${name}: \`${method}\` must be a function (${method}(state, ${method === 'handle' ? 'command' : 'event'}))`);
      }
    }
    if (options.view !== undefined && typeof options.view !== 'function') {
      throw new TypeError(`${name}: \`view\` must be a function of the state`);
    }
    const initial = options.initial;
    if (initial === undefined) throw new TypeError(`${name}: \`initial\` (the state before any event) is missing`);
    /** The aggregate's name, for messages. */
    this.name = name;
    this.initial = typeof initial === 'function' ? initial : () => structuredClone(initial);
    const first = this.initial();
    /** The state's type: declared with `state`, else derived from `initial`. */
    this.stateType = options.state === undefined ? derive(first, `${name} state`) : typeOf(options.state, `${name} state`);
    // Check early that the initial state can be written (a snapshot of a new aggregate).
    this.stateType.write(first);
    this.commands = variants(options.commands, 'command', name);
    this.events = variants(options.events, 'event', name);
    this.commandNames = [...this.commands.keys()].map((key) => `"${key}"`).join(', ');
    this.eventNames = [...this.events.keys()].map((key) => `"${key}"`).join(', ');
    this.handle = options.handle;
    this.apply = options.apply;
    this.viewOf = options.view;
    const declared = options.stateSchema;
    if (declared !== undefined && !(typeof declared === 'string' && /^[\x21-\x7e]{1,64}$/.test(declared))) {
      throw new TypeError(`${name}: \`stateSchema\` must be 1 to 64 printable ASCII characters without spaces`);
    }
    this.declaredSchema = declared;
    Object.freeze(this);
  }

  /**
   * The snapshot format's version, written into the component's
   * `aether:state-schema` section: `stateSchema` if given, else `js-` and
   * a hash of the state's field names and types.
   */
  get stateSchema() {
    return this.declaredSchema ?? `js-${fnv1a64(this.stateType.describe)}`;
  }

  /** The command for a WIT `command` record; throws a `malformed-command` or `unsupported-content-type` Rejection. */
  decodeCommand(commandType, contentType, data) {
    if (!isJson(contentType)) {
      throw new Rejection(
        'unsupported-content-type',
        `cannot read a "${commandType}" command with content type "${contentType}": expected ${CONTENT_TYPE}`,
      );
    }
    const variant = this.commands.get(commandType);
    if (variant === undefined) {
      throw new Rejection('malformed-command', `unknown type "${commandType}", expected one of ${this.commandNames}`);
    }
    // Data as the SDKs write it needs no JSON parse (and is strict: no fraction, no exponent).
    if (variant.canonical !== undefined && data instanceof Uint8Array) {
      const value = variant.canonical(data);
      if (value !== undefined) return value;
    }
    try {
      return variant.decode(data);
    } catch (error) {
      if (error instanceof WireError) {
        throw new Rejection('malformed-command', `invalid data for "${commandType}": ${error.message}`);
      }
      throw error;
    }
  }

  /** The message of the apply-error for an event that does not decode (the slow path). */
  applyError(eventType, contentType, data) {
    if (!isJson(contentType)) {
      return `unsupported content type "${contentType}" for event "${eventType}": expected ${CONTENT_TYPE}`;
    }
    const variant = this.events.get(eventType);
    if (variant === undefined) {
      return `cannot apply event: unknown type "${eventType}", expected one of ${this.eventNames}`;
    }
    try {
      variant.decode(data, false);
    } catch (error) {
      if (error instanceof WireError) return `cannot apply event: invalid data for "${eventType}": ${error.message}`;
      throw error;
    }
    return undefined;
  }

  /** The event for stored bytes, or undefined if it does not decode (see `applyError`). */
  decodeEvent(eventType, contentType, data) {
    const variant = isJson(contentType) ? this.events.get(eventType) : undefined;
    if (variant === undefined) return undefined;
    try {
      return variant.decode(data, false);
    } catch (error) {
      if (error instanceof WireError) return undefined;
      throw error;
    }
  }

  /**
   * `[eventType, JSON text]` for each event `handle` decided (an array, one
   * event, or nothing). An event that is not one of the aggregate's is a
   * bug in it: TypeError.
   */
  encodeEvents(decided) {
    if (decided === undefined || decided === null) return [];
    const list = Array.isArray(decided) ? decided : [decided];
    return list.map((event) => {
      const variant = event === null || typeof event !== 'object' ? undefined : this.events.get(event.type);
      if (variant === undefined) {
        throw new TypeError(
          `${this.name}.handle returned ${show(event)}, which is not one of its events (${this.eventNames})`,
        );
      }
      return [variant.name, variant.write(event)];
    });
  }

  /** The JSON text of a command value (`{ type, ...fields }`), for tests. */
  encodeCommand(command) {
    const variant = command === null || typeof command !== 'object' ? undefined : this.commands.get(command.type);
    if (variant === undefined) {
      throw new TypeError(`${show(command)} is not one of ${this.name}'s commands (${this.commandNames})`);
    }
    return variant.write(command);
  }

  /** The snapshot of a state: its JSON text, fields in declaration order. */
  snapshot(state) {
    return this.stateType.write(state);
  }

  /** A state from a snapshot's bytes; throws WireError. */
  restore(data) {
    const text = utf8(data);
    const value = parseExact(text);
    return this.stateType.read(value);
  }

  /** What readers see: `view(state)` if given, else the state; JSON with sorted keys. */
  view(state) {
    return stringify(this.viewOf === undefined ? state : this.viewOf(state), true);
  }
}

/**
 * Defines an aggregate:
 *
 * - `initial`: the state before any event (a function returning a new
 *   state, or a plain value that is copied);
 * - `state` (optional): the state's field types, for snapshots; derived
 *   from `initial` when left out;
 * - `commands`, `events`: from each type name to its fields
 *   (`{ amount: u64 }`), or `null` for a type without fields;
 * - `handle(state, command)`: the events decided (an array, or one), or a
 *   thrown (or returned) `Rejection`; must not change the state;
 * - `apply(state, event)`: folds one event into the state, by changing it
 *   or by returning the new state;
 * - `view(state)` (optional): what readers see, JSON with sorted keys;
 *   the state by default;
 * - `stateSchema` (optional): the snapshot format's version; derived from
 *   the state's types by default.
 *
 * Commands and events are plain objects `{ type: 'Deposit', amount: 5n }`.
 */
export function defineAggregate(options) {
  return new AggregateDefinition(options);
}

