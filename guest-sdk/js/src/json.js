// Reading JSON bytes with the built-in `JSON.parse`, exactly where the data
// needs it.
//
// `JSON.parse` reads every number as a double, so an integer above 2^53
// (a u64 amount such as 9007199254740993) would lose digits, and `1.0`
// would pass for the integer 1. The field types (types.js) read numbers
// from a first, plain parse and ask for the exact text of a number only
// when the double cannot be trusted (`NEED_EXACT`); `parseExact` then
// parses a second time with every such number turned into a string, and
// puts an `ExactNumber` holding its text where the first parse had the
// number. The rewrite runs only on text that `JSON.parse` already
// accepted, so the one regular expression below sees well-formed JSON:
// strings are skipped whole, and any other run of digits is a number.

/** Data that does not decode as the expected type. */
export class WireError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WireError';
  }
}

/** A number as written in the JSON text (`"9007199254740993"`, `"1.0"`). */
export class ExactNumber {
  constructor(text) {
    this.text = text;
  }

  /** Whether the text is an integer (no fraction, no exponent). */
  get isInteger() {
    return /^-?\d+$/.test(this.text);
  }

  toString() {
    return this.text;
  }
}

/** Thrown by a field type that needs the number's exact text. */
export const NEED_EXACT = Symbol('need exact numbers');

const TOKEN = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const SMALL_INTEGER = /^-?\d{1,15}$/;

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 bytes as text; throws WireError on invalid UTF-8. */
export function utf8(bytes) {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new WireError('the data is not UTF-8');
  }
}

/** `JSON.parse`, with its SyntaxError as a WireError. */
export function parse(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new WireError(`invalid JSON: ${error.message}`);
  }
}

/**
 * `value` (what `JSON.parse(text)` returned) with every number that is not
 * a plain integer of at most 15 digits replaced by an `ExactNumber`.
 */
export function parseExact(text, value = parse(text)) {
  const marked = JSON.parse(
    text.replace(TOKEN, (token) =>
      token.charCodeAt(0) === 34 || SMALL_INTEGER.test(token) ? token : `"${token}"`,
    ),
  );
  return merge(value, marked);
}

function merge(plain, marked) {
  if (typeof plain === 'number') {
    return typeof marked === 'string' ? new ExactNumber(marked) : plain;
  }
  if (plain === null || typeof plain !== 'object') return plain;
  if (Array.isArray(plain)) return plain.map((item, index) => merge(item, marked[index]));
  const out = {};
  for (const key of Object.keys(plain)) out[key] = merge(plain[key], marked[key]);
  return out;
}

/**
 * Parses JSON text into plain values, keeping every integer exact: an
 * integer beyond 2^53 becomes a BigInt, any other number a Number. For
 * tests and tools (scenario files); aggregates get typed values instead.
 */
export function parseLossless(text) {
  return toPlain(parseExact(text));
}

function toPlain(value) {
  if (value instanceof ExactNumber) {
    return value.isInteger && !Number.isSafeInteger(Number(value.text))
      ? BigInt(value.text)
      : Number(value.text);
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(toPlain);
  const out = {};
  for (const key of Object.keys(value)) out[key] = toPlain(value[key]);
  return out;
}

/**
 * Compact JSON text of a plain value in which BigInts are written as JSON
 * integers (`JSON.stringify` refuses them). `sorted` sorts object keys.
 */
export function stringify(value, sorted = false) {
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} cannot be written as JSON`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (typeof value.toJSON === 'function') return stringify(value.toJSON(), sorted);
      if (Array.isArray(value)) return `[${value.map((item) => stringify(item, sorted)).join(',')}]`;
      const keys = Object.keys(value).filter((key) => value[key] !== undefined);
      if (sorted) keys.sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${stringify(value[key], sorted)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`a ${typeof value} cannot be written as JSON`);
  }
}
