// A streaming JSON deserializer over UTF-8 bytes that follows serde_json
// (1.0.x, without `float_roundtrip`) step for step.
//
// Why not `JSON.parse`: it turns every number into a double, so an amount
// above 2^53 would lose digits. Why step for step: the Rust component reads
// payloads with serde_json, and this component must accept exactly the same
// bytes and explain a refusal with the same words and the same
// `at line L column C` position (C counts bytes since the last newline).
// So, as in serde_json:
// - values are read straight into the type the caller asks for (`u64`,
//   `string`, a struct, an enum); the first problem met wins;
// - values of unknown fields are skipped without building anything and
//   without checking their strings' UTF-8 or surrogates, and without a depth
//   limit (the skipping is iterative, so nesting cannot overflow the stack);
// - a type error raised by a visitor ("invalid type", "missing field") gets
//   its position where the enclosing read gives it one (`fix`).
//
// Every read method leaves `index` just past what it consumed. Numbers are
// in json-number.js.

import { parseInteger, unexpectedNumber } from './json-number.js';

/** A JSON error. `offset` is a byte offset, or null until `fix` gives it one. */
export class JsonError {
  constructor(message, offset = null, columnBack = 0) {
    this.message = message;
    this.offset = offset;
    // serde_json reports a UTF-8 error that many columns before the offset.
    this.columnBack = columnBack;
  }

  /** The message with serde_json's position suffix. */
  describe(bytes) {
    let line = 1;
    let lineStart = 0;
    const end = Math.min(this.offset ?? 0, bytes.length);
    for (let i = 0; i < end; i++) {
      if (bytes[i] === 0x0a) {
        line += 1;
        lineStart = i + 1;
      }
    }
    const column = Math.max(0, end - lineStart - this.columnBack);
    return `${this.message} at line ${line} column ${column}`;
  }
}

/** A "custom" error from a visitor: positioned later by `fix`. */
export function customError(message) {
  return new JsonError(message);
}

export function invalidType(unexpected, expecting) {
  return customError(`invalid type: ${unexpected}, expected ${expecting}`);
}

const isDigit = (c) => c >= 0x30 && c <= 0x39;

export class Deserializer {
  constructor(bytes) {
    this.bytes = bytes;
    this.index = 0;
  }

  // ------------------------------------------------------------ cursor

  peek() {
    return this.index < this.bytes.length ? this.bytes[this.index] : -1;
  }

  next() {
    return this.index < this.bytes.length ? this.bytes[this.index++] : -1;
  }

  /** Skips whitespace and returns the next byte (not consumed), or -1 at the end. */
  whitespace() {
    for (;;) {
      const c = this.peek();
      if (c !== 0x20 && c !== 0x0a && c !== 0x09 && c !== 0x0d) return c;
      this.index += 1;
    }
  }

  /** An error about the bytes read so far. */
  error(message) {
    return new JsonError(message, this.index);
  }

  /** An error about the byte just peeked. */
  peekError(message) {
    return new JsonError(message, Math.min(this.bytes.length, this.index + 1));
  }

  /** Gives an unpositioned error the current position. */
  fix(error) {
    if (error instanceof JsonError && error.offset === null) error.offset = this.index;
    return error;
  }

  /** Refuses anything but whitespace after the value. */
  end() {
    if (this.whitespace() !== -1) throw this.peekError('trailing characters');
  }

  /** Runs `read` as serde_json's `deserialize_*` methods do: a visitor error is positioned here. */
  positioned(read) {
    try {
      return read();
    } catch (error) {
      throw this.fix(error);
    }
  }

  /** Peeks the next value; at the end, serde_json's EOF error. */
  startValue() {
    const c = this.whitespace();
    if (c === -1) throw this.peekError('EOF while parsing a value');
    return c;
  }

  // ------------------------------------------------------- typed reads

  /** `deserialize_u64`: an unsigned 64-bit integer, as a BigInt. */
  u64() {
    const c = this.startValue();
    return this.positioned(() => {
      let number;
      if (c === 0x2d) {
        this.index += 1;
        number = parseInteger(this, false);
      } else if (isDigit(c)) {
        number = parseInteger(this, true);
      } else {
        throw this.invalidTypeHere('u64');
      }
      if (number.kind === 'u64') return number.value;
      if (number.kind === 'i64') {
        throw customError(`invalid value: integer \`${number.value}\`, expected u64`);
      }
      throw invalidType(unexpectedNumber(number), 'u64');
    });
  }

  /** `deserialize_string`. */
  string() {
    const c = this.startValue();
    return this.positioned(() => {
      if (c !== 0x22) throw this.invalidTypeHere('a string');
      this.index += 1;
      return this.str();
    });
  }

  /**
   * `deserialize_struct` with a derived visitor: an object of the fields
   * (unknown ones skipped, none missing or repeated) or an array of them in
   * declaration order. `fields` is a list of `[name, type]`.
   */
  struct(expecting, fields) {
    const c = this.startValue();
    return this.positioned(() => {
      if (c === 0x7b) {
        this.index += 1;
        return this.finishing(() => this.structMap(fields), () => this.endMap());
      }
      if (c === 0x5b) {
        this.index += 1;
        return this.finishing(() => this.structSeq(expecting, fields), () => this.endSeq());
      }
      throw this.invalidTypeHere(expecting);
    });
  }

  /** `deserialize_enum` for an enum of unit variants: `"name"` or `{"name": null}`. */
  unitEnum(names) {
    const c = this.whitespace();
    if (c === 0x22) return this.variantName(names, () => this.string());
    if (c === 0x7b) {
      this.index += 1;
      const name = this.enumMapVariant(names);
      const after = this.whitespace();
      if (after === 0x7d) {
        this.index += 1;
        return name;
      }
      throw this.error(after === -1 ? 'EOF while parsing an object' : 'expected value');
    }
    if (c === -1) throw this.peekError('EOF while parsing a value');
    throw this.peekError('expected value');
  }

  /**
   * `deserialize_any` with the Rust SDK's `UnitContent` visitor: the content
   * of a unit variant must be `null` or `{}`.
   */
  unitContent() {
    const expecting = 'null (the variant has no content)';
    const c = this.startValue();
    this.positioned(() => {
      switch (c) {
        case 0x6e: // n
          this.index += 1;
          this.ident('ull');
          return;
        case 0x5b: // [
          this.index += 1;
          this.finishing(() => {
            throw invalidType('sequence', expecting);
          }, () => this.endSeq());
          return;
        case 0x7b: // {
          this.index += 1;
          this.finishing(() => {
            if (this.hasNextKey(true)) {
              this.index += 1;
              this.str();
              throw customError('invalid length 1, expected an empty object');
            }
          }, () => this.endMap());
          return;
        default:
          throw this.invalidTypeHere(expecting);
      }
    });
  }

  // ------------------------------------------------------------ helpers

  /**
   * `match (ret, self.end_map())`: the closing bracket is read even when the
   * visitor failed; the visitor's error wins.
   */
  finishing(visit, close) {
    let result;
    let failure = null;
    try {
      result = visit();
    } catch (error) {
      failure = error;
    }
    try {
      close();
    } catch (error) {
      failure ??= error;
    }
    if (failure !== null) throw failure;
    return result;
  }

  structMap(fields) {
    const out = {};
    const seen = new Set();
    let first = true;
    while (this.hasNextKey(first)) {
      first = false;
      this.index += 1;
      const key = this.str();
      const field = fields.find(([name]) => name === key);
      if (field === undefined) {
        this.colon();
        this.ignore();
        continue;
      }
      if (seen.has(key)) throw customError(`duplicate field \`${key}\``);
      this.colon();
      out[key] = field[1].read(this);
      seen.add(key);
    }
    for (const [name] of fields) {
      if (!seen.has(name)) throw customError(`missing field \`${name}\``);
    }
    return out;
  }

  structSeq(expecting, fields) {
    const count = `${fields.length} element${fields.length === 1 ? '' : 's'}`;
    const out = {};
    let first = true;
    fields.forEach(([name, type], i) => {
      if (!this.hasNextElement(first)) {
        throw customError(`invalid length ${i}, expected ${expecting} with ${count}`);
      }
      first = false;
      out[name] = type.read(this);
    });
    return out;
  }

  /** Reads an enum's variant name with `read` and checks it is one of `names`. */
  variantName(names, read) {
    return this.positioned(() => {
      const name = read();
      if (!names.includes(name)) {
        const expected = names.map((n) => `\`${n}\``).join(', ');
        throw customError(`unknown variant \`${name}\`, expected one of ${expected}`);
      }
      return name;
    });
  }

  /** `VariantAccess`: `"name": null` inside `{...}`, for a unit variant. */
  enumMapVariant(names) {
    const c = this.whitespace();
    if (c === 0x7d) throw this.peekError('expected value');
    if (c === -1) throw this.peekError('EOF while parsing an object');
    if (c !== 0x22) throw this.peekError('key must be a string');
    const name = this.variantName(names, () => {
      this.index += 1;
      return this.str();
    });
    this.colon();
    // `unit_variant`: `deserialize_unit`.
    const v = this.startValue();
    this.positioned(() => {
      if (v !== 0x6e) throw this.invalidTypeHere('unit');
      this.index += 1;
      this.ident('ull');
    });
    return name;
  }

  hasNextKey(first) {
    const c = this.whitespace();
    if (c === -1) throw this.peekError('EOF while parsing an object');
    if (c === 0x7d) return false;
    if (first) {
      if (c === 0x22) return true;
      throw this.peekError('key must be a string');
    }
    if (c !== 0x2c) throw this.peekError('expected `,` or `}`');
    this.index += 1;
    const k = this.whitespace();
    if (k === 0x22) return true;
    if (k === 0x7d) throw this.peekError('trailing comma');
    if (k === -1) throw this.peekError('EOF while parsing a value');
    throw this.peekError('key must be a string');
  }

  hasNextElement(first) {
    const c = this.whitespace();
    if (c === -1) throw this.peekError('EOF while parsing a list');
    if (c === 0x5d) return false;
    if (first) return true;
    if (c !== 0x2c) throw this.peekError('expected `,` or `]`');
    this.index += 1;
    const k = this.whitespace();
    if (k === 0x5d) throw this.peekError('trailing comma');
    if (k === -1) throw this.peekError('EOF while parsing a value');
    return true;
  }

  colon() {
    const c = this.whitespace();
    if (c === 0x3a) {
      this.index += 1;
      return;
    }
    throw this.peekError(c === -1 ? 'EOF while parsing an object' : 'expected `:`');
  }

  endMap() {
    const c = this.whitespace();
    if (c === 0x7d) {
      this.index += 1;
      return;
    }
    if (c === 0x2c) throw this.peekError('trailing comma');
    if (c === -1) throw this.peekError('EOF while parsing an object');
    throw this.peekError('trailing characters');
  }

  endSeq() {
    const c = this.whitespace();
    if (c === 0x5d) {
      this.index += 1;
      return;
    }
    if (c === 0x2c) {
      this.index += 1;
      const k = this.whitespace();
      throw this.peekError(k === 0x5d ? 'trailing comma' : 'trailing characters');
    }
    if (c === -1) throw this.peekError('EOF while parsing a list');
    throw this.peekError('trailing characters');
  }

  ident(rest) {
    for (let i = 0; i < rest.length; i++) {
      const c = this.next();
      if (c === -1) throw this.error('EOF while parsing a value');
      if (c !== rest.charCodeAt(i)) throw this.error('expected ident');
    }
  }

  /**
   * `peek_invalid_type`: reads the value that is not of the expected type
   * (syntax errors in it win) and describes it.
   */
  invalidTypeHere(expecting) {
    const c = this.peek();
    let unexpected;
    switch (c) {
      case 0x6e:
        this.index += 1;
        this.ident('ull');
        unexpected = 'null';
        break;
      case 0x74:
        this.index += 1;
        this.ident('rue');
        unexpected = 'boolean `true`';
        break;
      case 0x66:
        this.index += 1;
        this.ident('alse');
        unexpected = 'boolean `false`';
        break;
      case 0x2d:
        this.index += 1;
        unexpected = unexpectedNumber(parseInteger(this, false));
        break;
      case 0x22:
        this.index += 1;
        unexpected = `string ${rustDebugString(this.str())}`;
        break;
      case 0x5b:
        unexpected = 'sequence';
        break;
      case 0x7b:
        unexpected = 'map';
        break;
      default:
        if (isDigit(c)) {
          unexpected = unexpectedNumber(parseInteger(this, true));
          break;
        }
        return this.peekError('expected value');
    }
    return this.fix(invalidType(unexpected, expecting));
  }

  // ------------------------------------------------------------ strings

  /** A string whose opening quote was consumed, unescaped and checked as UTF-8. */
  str() {
    const bytes = this.bytes;
    let start = this.index;
    let scratch = null;
    for (;;) {
      while (this.index < bytes.length && !isEscape(bytes[this.index])) this.index += 1;
      if (this.index === bytes.length) throw this.error('EOF while parsing a string');
      const c = bytes[this.index];
      if (c === 0x22) {
        let content = bytes.subarray(start, this.index);
        if (scratch !== null) {
          pushAll(scratch, content);
          content = Uint8Array.from(scratch);
        }
        this.index += 1;
        return this.utf8(content);
      }
      if (c === 0x5c) {
        scratch ??= [];
        pushAll(scratch, bytes.subarray(start, this.index));
        this.index += 1;
        this.escape(scratch);
        start = this.index;
        continue;
      }
      this.index += 1;
      throw this.error('control character (\\u0000-\\u001F) found while parsing a string');
    }
  }

  /** Decodes a string's content; serde_json points at the first bad byte, counted back from the closing quote. */
  utf8(content) {
    const result = decodeUtf8(content);
    if (typeof result === 'string') return result;
    return failWith(new JsonError('invalid unicode code point', this.index, content.length - result.validUpTo));
  }

  /** One escape after its backslash, appended to `scratch` as UTF-8. */
  escape(scratch) {
    const c = this.next();
    switch (c) {
      case -1: throw this.error('EOF while parsing a string');
      case 0x22: scratch.push(0x22); return;
      case 0x5c: scratch.push(0x5c); return;
      case 0x2f: scratch.push(0x2f); return;
      case 0x62: scratch.push(0x08); return;
      case 0x66: scratch.push(0x0c); return;
      case 0x6e: scratch.push(0x0a); return;
      case 0x72: scratch.push(0x0d); return;
      case 0x74: scratch.push(0x09); return;
      case 0x75: break;
      default: throw this.error('invalid escape');
    }
    const unit = this.hex4();
    if (unit >= 0xdc00 && unit <= 0xdfff) throw this.error('lone leading surrogate in hex escape');
    if (unit < 0xd800 || unit > 0xdbff) {
      pushCodePoint(scratch, unit);
      return;
    }
    for (const expected of [0x5c, 0x75]) {
      const next = this.peek();
      if (next === -1) throw this.error('EOF while parsing a string');
      this.index += 1;
      if (next !== expected) throw this.error('unexpected end of hex escape');
    }
    const low = this.hex4();
    if (low < 0xdc00 || low > 0xdfff) throw this.error('lone leading surrogate in hex escape');
    pushCodePoint(scratch, 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00));
  }

  hex4() {
    if (this.index + 4 > this.bytes.length) {
      this.index = this.bytes.length;
      throw this.error('EOF while parsing a string');
    }
    let n = 0;
    let valid = true;
    for (let i = 0; i < 4; i++) {
      const digit = hexDigit(this.bytes[this.index + i]);
      if (digit < 0) valid = false;
      n = n * 16 + digit;
    }
    this.index += 4;
    if (!valid) throw this.error('invalid escape');
    return n;
  }

  // ------------------------------------------------------------ skipping

  /** `ignore_value`: skips one value of any shape, iteratively. */
  ignore() {
    const stack = [];
    for (;;) {
      // One value.
      const c = this.startValue();
      let opened = null;
      switch (c) {
        case 0x6e: this.index += 1; this.ident('ull'); break;
        case 0x74: this.index += 1; this.ident('rue'); break;
        case 0x66: this.index += 1; this.ident('alse'); break;
        case 0x2d: this.index += 1; this.ignoreNumber(); break;
        case 0x22: this.index += 1; this.ignoreStr(); break;
        case 0x5b: case 0x7b: this.index += 1; opened = c; break;
        default:
          if (!isDigit(c)) throw this.peekError('expected value');
          this.ignoreNumber();
      }
      // What follows it: a separator, or the ends of enclosing containers.
      let frame;
      let acceptComma;
      if (opened !== null) {
        frame = opened;
        acceptComma = false;
      } else {
        if (stack.length === 0) return;
        frame = stack.pop();
        acceptComma = true;
      }
      for (;;) {
        const next = this.whitespace();
        const closes = (next === 0x5d && frame === 0x5b) || (next === 0x7d && frame === 0x7b);
        if (next === 0x2c && acceptComma) {
          this.index += 1;
          break;
        }
        if (!closes) {
          if (next === -1) {
            throw this.peekError(frame === 0x5b ? 'EOF while parsing a list' : 'EOF while parsing an object');
          }
          if (acceptComma) {
            throw this.peekError(frame === 0x5b ? 'expected `,` or `]`' : 'expected `,` or `}`');
          }
          break;
        }
        this.index += 1;
        if (stack.length === 0) return;
        frame = stack.pop();
        acceptComma = true;
      }
      if (frame === 0x7b) {
        const q = this.whitespace();
        if (q === -1) throw this.peekError('EOF while parsing an object');
        if (q !== 0x22) throw this.peekError('key must be a string');
        this.index += 1;
        this.ignoreStr();
        const colon = this.whitespace();
        if (colon === -1) throw this.peekError('EOF while parsing an object');
        if (colon !== 0x3a) throw this.peekError('expected `:`');
        this.index += 1;
      }
      stack.push(frame);
    }
  }

  /** A skipped string: escapes are checked, UTF-8 and surrogates are not. */
  ignoreStr() {
    const bytes = this.bytes;
    for (;;) {
      while (this.index < bytes.length && !isEscape(bytes[this.index])) this.index += 1;
      if (this.index === bytes.length) throw this.error('EOF while parsing a string');
      const c = bytes[this.index];
      // Unlike `str`, serde_json points at the control character itself here.
      if (c !== 0x22 && c !== 0x5c) throw this.error('control character (\\u0000-\\u001F) found while parsing a string');
      this.index += 1;
      if (c === 0x22) return;
      const e = this.next();
      if (e === -1) throw this.error('EOF while parsing a string');
      if (e === 0x75) this.hex4();
      else if (!SIMPLE_ESCAPES.includes(e)) throw this.error('invalid escape');
    }
  }

  ignoreNumber() {
    const c = this.next();
    if (c === 0x30) {
      if (isDigit(this.peek())) throw this.peekError('invalid number');
    } else if (c >= 0x31 && c <= 0x39) {
      while (isDigit(this.peek())) this.index += 1;
    } else {
      throw this.error('invalid number');
    }
    if (this.peek() === 0x2e) {
      this.index += 1;
      let digits = 0;
      while (isDigit(this.peek())) {
        this.index += 1;
        digits += 1;
      }
      if (digits === 0) throw this.peekError('invalid number');
    }
    const e = this.peek();
    if (e === 0x65 || e === 0x45) {
      this.index += 1;
      const sign = this.peek();
      if (sign === 0x2b || sign === 0x2d) this.index += 1;
      if (!isDigit(this.next())) throw this.error('invalid number');
      while (isDigit(this.peek())) this.index += 1;
    }
  }
}

/** Reads one whole document with `read(deserializer)`; nothing but whitespace may follow. */
export function readJson(bytes, read) {
  const de = new Deserializer(bytes);
  const value = read(de);
  de.end();
  return value;
}

function failWith(error) {
  throw error;
}

const SIMPLE_ESCAPES = [0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74];

function isEscape(c) {
  return c === 0x22 || c === 0x5c || c < 0x20;
}

function hexDigit(c) {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function pushAll(array, bytes) {
  for (let i = 0; i < bytes.length; i++) array.push(bytes[i]);
}

function pushCodePoint(array, cp) {
  if (cp < 0x80) {
    array.push(cp);
  } else if (cp < 0x800) {
    array.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    array.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  } else {
    array.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
}

/** bytes[from..to] (all ASCII) as a string, in chunks to stay under the argument limit. */
function asciiText(bytes, from, to) {
  let out = '';
  for (let i = from; i < to; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, Math.min(i + 4096, to)));
  }
  return out;
}

/**
 * Strict UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF), written out so it does not depend on the engine's TextDecoder.
 * Returns the string, or `{ validUpTo }` (as Rust's `Utf8Error`).
 */
function decodeUtf8(bytes) {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i];
    if (b0 < 0x80) {
      let j = i + 1;
      while (j < bytes.length && bytes[j] < 0x80) j += 1;
      out += asciiText(bytes, i, j);
      i = j;
      continue;
    }
    let need;
    let cp;
    let min;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      [need, cp, min] = [1, b0 & 0x1f, 0x80];
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      [need, cp, min] = [2, b0 & 0x0f, 0x800];
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      [need, cp, min] = [3, b0 & 0x07, 0x10000];
    } else {
      return { validUpTo: i };
    }
    for (let k = 1; k <= need; k++) {
      const b = bytes[i + k];
      if (b === undefined || (b & 0xc0) !== 0x80) return { validUpTo: i };
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return { validUpTo: i };
    out += String.fromCodePoint(cp);
    i += need + 1;
  }
  return out;
}

/**
 * A string as Rust's `{:?}` writes it (serde quotes a string it did not
 * expect that way): the common escapes, and `\u{..}` for what Rust deems
 * unprintable. Rust's tables cover all of Unicode; this covers control,
 * format, separator, private-use characters and combining diacritics, which
 * is all a payload realistically holds.
 */
export function rustDebugString(s) {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    switch (ch) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '\0': out += '\\0'; continue;
      default:
    }
    out += UNPRINTABLE.test(ch) ? `\\u{${cp.toString(16)}}` : ch;
  }
  return `${out}"`;
}

// Control (Cc), format (Cf), separators other than ' ' (Zs, Zl, Zp),
// private use (Co), and the combining diacritical marks (Grapheme_Extend).
const UNPRINTABLE = /^(?:[\u0000-\u001f\u007f-\u00a0\u00ad\u0300-\u036f\u0600-\u0605\u061c\u06dd\u070f\u180e\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb]|\udb40[\udc01\udc20-\udc7f]|[\udb80-\udbff][\udc00-\udfff])$/;
