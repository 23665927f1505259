// Field types: how each value of a command, an event or the state is read
// from parsed JSON (checked, numbers made exact where the type needs it)
// and written back as compact JSON text.
//
// A type is an object with
// - `read(value)`: the JS value for a parsed JSON value, or a thrown
//   `WireError` (the reason, in words) or `NEED_EXACT` (json.js: this
//   number's double cannot be trusted; read the exact text again);
// - `write(value)`: compact JSON text; a value of the wrong kind is a bug
//   in the aggregate and throws a TypeError (the component traps);
// - `describe`: a stable description, hashed into the state schema;
// - `strictNumbers`: whether it holds an integer whose JSON text must be
//   checked for a fraction or an exponent (`1.0`, `1e3`) that `JSON.parse`
//   would let through as an integer;
// - `inline` (scalars, and `optional` of them): `(name, bind) => [test,
//   value]`, JavaScript expressions that check the parsed value in the
//   variable `name` and convert it, from which `record` generates a fast
//   reader (see `fastReader`).

import { ExactNumber, NEED_EXACT, WireError, stringify } from './json.js';

/** A short rendering of a value for error messages. */
export function show(value) {
  let text;
  try {
    text = value instanceof ExactNumber ? value.text : stringify(value);
  } catch {
    text = String(value);
  }
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
}

function fail(expected, value) {
  throw new WireError(`expected ${expected}, got ${show(value)}`);
}

/** A string. */
export const string = {
  describe: 'string',
  strictNumbers: false,
  canonical: { kind: 'string' },
  inline: (v) => [`typeof ${v} === 'string'`, v],
  inlineWrite: (v) => [`typeof ${v} === 'string'`, `JSON.stringify(${v})`],
  read(value) {
    if (typeof value !== 'string') fail('a string', value);
    return value;
  },
  write(value) {
    if (typeof value !== 'string') throw new TypeError(`${show(value)} is not a string`);
    return JSON.stringify(value);
  },
};

/** `true` or `false`. */
export const boolean = {
  describe: 'boolean',
  strictNumbers: false,
  inline: (v) => [`typeof ${v} === 'boolean'`, v],
  inlineWrite: (v) => [`typeof ${v} === 'boolean'`, `(${v} ? 'true' : 'false')`],
  read(value) {
    if (typeof value !== 'boolean') fail('a boolean', value);
    return value;
  },
  write(value) {
    if (typeof value !== 'boolean') throw new TypeError(`${show(value)} is not a boolean`);
    return value ? 'true' : 'false';
  },
};

/** A number (a double): any JSON number. */
export const number = {
  describe: 'number',
  strictNumbers: false,
  inline: (v) => [`typeof ${v} === 'number'`, v],
  inlineWrite: (v) => [`typeof ${v} === 'number' && Number.isFinite(${v})`, `JSON.stringify(${v})`],
  read(value) {
    if (typeof value === 'number') return value;
    if (value instanceof ExactNumber) return Number(value.text);
    return fail('a number', value);
  },
  write(value) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new TypeError(`${show(value)} is not a finite number`);
    }
    return JSON.stringify(value);
  },
};

/**
 * An integer from `low` to `high` held as a Number (both within ±2^53).
 * `u8`…`u32`, `i8`…`i32` and `int` are made with it.
 */
export function integer(low, high, name = `int[${low},${high}]`) {
  const expected = low === 0 ? `an unsigned integer up to ${high}` : `an integer from ${low} to ${high}`;
  return {
    describe: name,
    strictNumbers: true,
    canonical: { kind: 'integer', low, high, big: false },
    inline: (v) => [`typeof ${v} === 'number' && ${v} >= ${low} && ${v} <= ${high} && ${v} % 1 === 0`, v],
    inlineWrite: (v) => [`typeof ${v} === 'number' && ${v} >= ${low} && ${v} <= ${high} && ${v} % 1 === 0`, `('' + ${v})`],
    read(value) {
      if (typeof value === 'number') {
        if (Number.isSafeInteger(value)) {
          if (value >= low && value <= high) return value;
          return fail(expected, value);
        }
        throw NEED_EXACT;
      }
      if (value instanceof ExactNumber && value.isInteger) {
        const exact = BigInt(value.text);
        if (exact >= BigInt(low) && exact <= BigInt(high)) return Number(exact);
      }
      return fail(expected, value);
    },
    write(value) {
      if (!Number.isSafeInteger(value) || value < low || value > high) {
        throw new TypeError(`${show(value)} is not ${expected}`);
      }
      return String(value);
    },
  };
}

/**
 * An integer from `low` to `high` (BigInts) held as a BigInt, so every
 * digit is kept: `u64` and `i64` are made with it. Writing also accepts a
 * safe-integer Number.
 */
export function bigInteger(low, high, name) {
  const expected = low === 0n ? `an unsigned integer up to ${high}` : `an integer from ${low} to ${high}`;
  const safeLow = low < BigInt(Number.MIN_SAFE_INTEGER) ? Number.MIN_SAFE_INTEGER : Number(low);
  const safeHigh = high > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(high);
  return {
    describe: name,
    strictNumbers: true,
    canonical: { kind: 'integer', low: safeLow, high: safeHigh, big: true },
    inline: (v) => [
      `typeof ${v} === 'number' && ${v} >= ${safeLow} && ${v} <= ${safeHigh} && ${v} % 1 === 0`,
      `BigInt(${v})`,
    ],
    inlineWrite: (v, bind) => [`typeof ${v} === 'bigint' && ${v} >= ${bind(low)} && ${v} <= ${bind(high)}`, `('' + ${v})`],
    read(value) {
      if (typeof value === 'number') {
        // Every safe integer is within u64's and i64's bounds but for the sign.
        if (Number.isSafeInteger(value)) {
          if (value >= safeLow) return BigInt(value);
          return fail(expected, value);
        }
        throw NEED_EXACT;
      }
      if (value instanceof ExactNumber && value.isInteger) {
        const exact = BigInt(value.text);
        if (exact >= low && exact <= high) return exact;
      }
      return fail(expected, value);
    },
    write(value) {
      const big = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value;
      if (typeof big !== 'bigint' || big < low || big > high) {
        throw new TypeError(`${show(value)} is not ${expected}`);
      }
      return big.toString();
    },
  };
}

export const u8 = integer(0, 255, 'u8');
export const u16 = integer(0, 65535, 'u16');
export const u32 = integer(0, 4294967295, 'u32');
export const i8 = integer(-128, 127, 'i8');
export const i16 = integer(-32768, 32767, 'i16');
export const i32 = integer(-2147483648, 2147483647, 'i32');
/** Any integer a Number holds exactly (±(2^53 − 1)). */
export const int = integer(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'int');
/** The largest u64, 2^64 − 1. */
export const U64_MAX = (1n << 64n) - 1n;
export const u64 = bigInteger(0n, U64_MAX, 'u64');
export const i64 = bigInteger(-(1n << 63n), (1n << 63n) - 1n, 'i64');

/** Any JSON value, as plain JS values (integers beyond 2^53 as BigInts). */
export const any = {
  describe: 'any',
  strictNumbers: false,
  read(value) {
    return plain(value);
  },
  write(value) {
    return stringify(value);
  },
};

function plain(value) {
  if (typeof value === 'number') {
    // A fraction's double is what every reader gets; a big integer's is not.
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) throw NEED_EXACT;
    return value;
  }
  if (value instanceof ExactNumber) {
    return value.isInteger && !Number.isSafeInteger(Number(value.text))
      ? BigInt(value.text)
      : Number(value.text);
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(plain);
  const out = {};
  for (const key of Object.keys(value)) out[key] = plain(value[key]);
  return out;
}

/** One of the given strings (or numbers), e.g. `oneOf('new', 'open', 'closed')`. */
export function oneOf(...choices) {
  const allowed = new Set(choices);
  const listed = choices.map((choice) => JSON.stringify(choice)).join(', ');
  return {
    describe: choices.map((choice) => JSON.stringify(choice)).join('|'),
    strictNumbers: false,
    inline: (v, bind) => [`${bind(allowed)}.has(${v})`, v],
    inlineWrite: (v, bind) => [`${bind(allowed)}.has(${v})`, `JSON.stringify(${v})`],
    read(value) {
      if (value instanceof ExactNumber) value = Number(value.text);
      if (!allowed.has(value)) fail(`one of ${listed}`, value);
      return value;
    },
    write(value) {
      if (!allowed.has(value)) throw new TypeError(`${show(value)} is not one of ${listed}`);
      return JSON.stringify(value);
    },
  };
}

/** `T` or `null`; in a record, the field may also be absent (read as `null`). */
export function optional(type) {
  const inner = typeOf(type);
  return {
    describe: `optional<${inner.describe}>`,
    strictNumbers: inner.strictNumbers,
    optional: true,
    inline:
      inner.inline &&
      ((v, bind) => {
        const [test, value] = inner.inline(v, bind);
        return [`(${v} === undefined || ${v} === null || (${test}))`, `(${v} === undefined || ${v} === null ? null : ${value})`];
      }),
    inlineWrite:
      inner.inlineWrite &&
      ((v, bind) => {
        const [test, text] = inner.inlineWrite(v, bind);
        return [`(${v} === undefined || ${v} === null || (${test}))`, `(${v} === undefined || ${v} === null ? 'null' : ${text})`];
      }),
    read(value) {
      return value === null ? null : inner.read(value);
    },
    write(value) {
      return value === null || value === undefined ? 'null' : inner.write(value);
    },
  };
}

/** An array of `T`. */
export function list(type) {
  const item = typeOf(type);
  return {
    describe: `list<${item.describe}>`,
    strictNumbers: item.strictNumbers,
    read(value) {
      if (!Array.isArray(value)) fail('an array', value);
      const out = new Array(value.length);
      for (let index = 0; index < value.length; index++) {
        try {
          out[index] = item.read(value[index]);
        } catch (error) {
          if (error instanceof WireError) throw new WireError(`[${index}]: ${error.message}`);
          throw error;
        }
      }
      return out;
    },
    write(value) {
      if (!Array.isArray(value)) throw new TypeError(`${show(value)} is not an array`);
      let text = '[';
      for (let index = 0; index < value.length; index++) {
        if (index > 0) text += ',';
        text += item.write(value[index]);
      }
      return `${text}]`;
    },
  };
}

/** An object with string keys and values of `T`. */
export function map(type) {
  const item = typeOf(type);
  return {
    describe: `map<${item.describe}>`,
    strictNumbers: item.strictNumbers,
    read(value) {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof ExactNumber) {
        fail('an object', value);
      }
      const out = {};
      for (const key of Object.keys(value)) {
        try {
          out[key] = item.read(value[key]);
        } catch (error) {
          if (error instanceof WireError) throw new WireError(`field \`${key}\`: ${error.message}`);
          throw error;
        }
      }
      return out;
    },
    write(value) {
      if (value === null || typeof value !== 'object') throw new TypeError(`${show(value)} is not an object`);
      const keys = Object.keys(value);
      return `{${keys.map((key) => `${JSON.stringify(key)}:${item.write(value[key])}`).join(',')}}`;
    },
  };
}

const INHERITED = new Set(Object.getOwnPropertyNames(Object.prototype));

/**
 * An object with the given fields (`{ sku: string, quantity: u32 }`),
 * written in that order. Unknown members are ignored when reading; a
 * missing one is an error unless its type is `optional(...)`.
 * `name` appears in error messages.
 */
export function record(fields, name = 'the record') {
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
    throw new TypeError(`${name}: the fields must be an object of field types, e.g. { amount: u64 }`);
  }
  const entries = Object.entries(fields).map(([key, type]) => {
    const resolved = typeOf(type, `${name}.${key}`);
    return {
      key,
      type: resolved,
      optional: resolved.optional === true,
      inherited: INHERITED.has(key),
    };
  });
  const expected = `an object with the fields of ${name}`;
  const prefixes = entries.map(({ key }, index) => `${index === 0 ? '{' : ','}${JSON.stringify(key)}:`);
  const type = {
    describe: `{${entries.map(({ key, type }) => `${key}:${type.describe}`).join(',')}}`,
    strictNumbers: entries.some(({ type }) => type.strictNumbers),
    fields: entries,
    /**
     * A reader generated for these fields (plus `type: typeName` first),
     * for values from a plain `JSON.parse`: the object, or `undefined`
     * when anything is off (then `read` says what). Undefined itself when
     * a field's type has no inline form or the engine refuses `new Function`.
     */
    fastReader: (typeName) => fastReader(entries, typeName),
    /** A writer generated for these fields: the JSON text, or `undefined` when a value is off (then `write` says what). */
    fastWriter: () => fastWriter(entries),
    /** Reads the fields into `out` (a new object by default). */
    read(value, out = {}) {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof ExactNumber) {
        fail(expected, value);
      }
      for (let index = 0; index < entries.length; index++) {
        const field = entries[index];
        const key = field.key;
        const member = field.inherited && !Object.hasOwn(value, key) ? undefined : value[key];
        if (member === undefined) {
          if (!field.optional) throw new WireError(`missing field \`${key}\``);
          out[key] = null;
          continue;
        }
        try {
          out[key] = field.type.read(member);
        } catch (error) {
          if (error instanceof WireError) throw new WireError(`field \`${key}\`: ${error.message}`);
          throw error;
        }
      }
      return out;
    },
    write(value) {
      if (value === null || typeof value !== 'object') throw new TypeError(`${show(value)} is not ${expected}`);
      if (entries.length === 0) return '{}';
      let text = '';
      for (let index = 0; index < entries.length; index++) {
        const field = entries[index];
        let member = field.inherited && !Object.hasOwn(value, field.key) ? undefined : value[field.key];
        if (member === undefined) {
          if (!field.optional) throw new TypeError(`${name}: the field \`${field.key}\` is missing`);
          member = null;
        }
        text += prefixes[index] + field.type.write(member);
      }
      return `${text}}`;
    },
  };
  return type;
}

/** Compiles `lines` into `function name(v)` with the `bound` values in scope, or undefined if the engine refuses. */
function compile(lines, bound) {
  const names = bound.map((_, index) => `c${index}`);
  try {
    // eslint-disable-next-line no-new-func
    return new Function(...names, `return function generated(v) {\n${lines.join('\n')}\n};`)(...bound);
  } catch {
    return undefined;
  }
}

/** Code and constants shared by the generated readers and writers. */
function generate(entries, form, each) {
  if (!entries.every(({ type }) => typeof type[form] === 'function')) return undefined;
  const bound = [];
  const bind = (value) => {
    bound.push(value);
    return `c${bound.length - 1}`;
  };
  const lines = [];
  const parts = entries.map(({ key, type, inherited }, index) => {
    const name = `a${index}`;
    const quoted = JSON.stringify(key);
    lines.push(
      inherited
        ? `const ${name} = Object.hasOwn(v, ${quoted}) ? v[${quoted}] : undefined;`
        : `const ${name} = v[${quoted}];`,
    );
    const [test, result] = type[form](name, bind);
    lines.push(`if (!(${test})) return undefined;`);
    return each(quoted, result, index);
  });
  return { lines, parts, bound };
}

function fastReader(entries, typeName) {
  const code = generate(entries, 'inline', (quoted, value) => `${quoted}: ${value}`);
  if (code === undefined) return undefined;
  const { lines, parts, bound } = code;
  lines.unshift(`if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;`);
  lines.push(`return { type: ${JSON.stringify(typeName)}, ${parts.join(', ')} };`);
  return compile(lines, bound);
}

function fastWriter(entries) {
  if (entries.length === 0) return undefined;
  const code = generate(entries, 'inlineWrite', (quoted, text, index) =>
    `${JSON.stringify(`${index === 0 ? '{' : ','}${quoted}:`)} + ${text}`,
  );
  if (code === undefined) return undefined;
  const { lines, parts, bound } = code;
  lines.unshift(`if (typeof v !== 'object' || v === null) return undefined;`);
  lines.push(`return ${parts.join(' + ')} + '}';`);
  return compile(lines, bound);
}

/** A field type as given (a type, or a plain object of fields as a record). */
export function typeOf(type, where = 'a field') {
  if (type !== null && typeof type === 'object' && typeof type.read === 'function' && typeof type.write === 'function') {
    return type;
  }
  if (type !== null && typeof type === 'object' && !Array.isArray(type)) return record(type, where);
  throw new TypeError(
    `${where}: ${show(type)} is not a field type (use string, u64, optional(...), list(...), a { field: type } object, ...)`,
  );
}

/**
 * The field types of a plain value, for a state declared only by its
 * initial value: strings, booleans, Numbers (`number`), BigInts (`i64`
 * when in range), arrays (of `any`, or of the first element's type),
 * `null` (`any`) and plain objects (records).
 */
export function derive(value, where = 'the state') {
  switch (typeof value) {
    case 'string':
      return string;
    case 'boolean':
      return boolean;
    case 'number':
      return number;
    case 'bigint':
      return value >= 0n ? u64 : i64;
    case 'object':
      if (value === null) return any;
      if (Array.isArray(value)) return list(value.length > 0 ? derive(value[0], where) : any);
      return record(
        Object.fromEntries(Object.entries(value).map(([key, member]) => [key, derive(member, `${where}.${key}`)])),
        where,
      );
    default:
      throw new TypeError(`${where}: a ${typeof value} cannot be written as JSON; declare the state's types`);
  }
}
