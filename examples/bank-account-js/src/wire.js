// The Aether wire format (guest-sdk/src/lib.rs, "Wire format"), as the Rust
// SDK implements it with serde, so this component and the Rust one read and
// write the same bytes:
//
// - `command-type` / `event-type` is the variant name, e.g. `Deposited`.
// - `content-type` is `application/json`.
// - `data` is compact JSON of the variant's content: `{"amount":70}` for a
//   struct variant (fields in declaration order), `null` for a unit variant.
// - Decoding accepts what serde_json accepts: whitespace, any field order,
//   unknown fields (ignored), a struct as an array of its fields; it refuses
//   missing and duplicate fields and trailing characters. A unit variant
//   also accepts empty data and `{}`.
//
// Types say how a value is read (`read(deserializer)`, see json.js; errors
// in serde's words) and written (`encode`, to compact JSON text). u64
// values are BigInts and are written as plain JSON integers, never strings.

import { JsonError, readJson } from './json.js';

/** The content type of every payload this component produces, and the only one it reads. */
export const CONTENT_TYPE = 'application/json';

/** The largest u64. */
export const U64_MAX = (1n << 64n) - 1n;

const encoder = new TextEncoder();

/** A payload that does not decode, with the message the Rust SDK would give. */
export class WireError {
  constructor(message) {
    this.message = message;
  }
}

// Rust's `str::trim` set (Unicode White_Space), which differs from JS `\s`.
const RUST_WHITESPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/**
 * Whether `contentType` is JSON: `application/json` in any ASCII case,
 * optionally followed by parameters such as `; charset=utf-8`.
 */
export function isJson(contentType) {
  if (contentType === CONTENT_TYPE) return true;
  const essence = contentType.split(';')[0].replace(RUST_WHITESPACE, '');
  const lower = essence.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
  return lower === CONTENT_TYPE;
}

// ---------------------------------------------------------------- types

/** An unsigned 64-bit integer, as a BigInt. */
export const u64 = {
  read: (de) => de.u64(),
  encode: (value) => value.toString(),
};

/** A string. */
export const string = {
  read: (de) => de.string(),
  // JSON.stringify escapes exactly what serde_json escapes: `"`, `\` and
  // control characters (short forms, else lowercase `\u00xx`).
  encode: (value) => JSON.stringify(value),
};

/**
 * A struct of `[name, type]` fields, read from an object (or from an array
 * of its fields, as serde allows) and written as an object in field order.
 * `expecting` is how serde's derive names it, e.g. `struct BankAccount`.
 */
export function struct(expecting, fields) {
  return {
    read: (de) => de.struct(expecting, fields),
    encode(value) {
      const parts = fields.map(([name, type]) => `${JSON.stringify(name)}:${type.encode(value[name])}`);
      return `{${parts.join(',')}}`;
    },
  };
}

/** An enum of unit variants, written as the variant's name. */
export function unitEnum(names) {
  return {
    read: (de) => de.unitEnum(names),
    encode: (value) => JSON.stringify(value),
  };
}

// ------------------------------------------------------------- variants

/**
 * A command or event enum: a Map from variant name to its content type
 * (a `struct(...)`), or `null` for a unit variant.
 */
export function variants(entries) {
  return new Map(entries);
}

/**
 * Decodes the variant `typeName` with content `data` (UTF-8 JSON bytes) as
 * `{ type, ...fields }`. Throws a `WireError` with the Rust SDK's message.
 */
export function decodeVariant(variantsOf, typeName, data) {
  if (!variantsOf.has(typeName)) {
    const expected = [...variantsOf.keys()].map((name) => `"${name}"`).join(', ');
    throw new WireError(`unknown type "${typeName}", expected one of ${expected}`);
  }
  const content = variantsOf.get(typeName);
  try {
    if (content === null) {
      if (!isAsciiWhitespace(data)) readJson(data, (de) => de.unitContent());
      return { type: typeName };
    }
    return { type: typeName, ...readJson(data, content.read) };
  } catch (error) {
    if (error instanceof JsonError) {
      throw new WireError(`invalid data for "${typeName}": ${error.describe(data)}`);
    }
    throw error;
  }
}

/** Encodes `{ type, ...fields }` as its variant name and compact JSON bytes. */
export function encodeVariant(variantsOf, value) {
  const content = variantsOf.get(value.type);
  if (content === undefined) {
    // A bug in this component, not input from outside: let it trap.
    throw new Error(`cannot encode unknown variant ${value.type}`);
  }
  const json = content === null ? 'null' : content.encode(value);
  return { type: value.type, data: encoder.encode(json) };
}

/** Rust's `trim_ascii().is_empty()`: a unit variant also accepts blank data. */
function isAsciiWhitespace(data) {
  return data.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d);
}
