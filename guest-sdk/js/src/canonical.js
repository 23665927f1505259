// Reading data in its canonical form without JSON.parse.
//
// The SDKs write an event's data as compact JSON with the fields in
// declaration order (`{"amount":70}`, `{"owner":"Ada","amount":5}`, `null`
// without fields). For a variant whose fields are all integers (`u8`…`u32`,
// `i8`…`i32`, `int`, `u64`, `i64`) or strings, data in exactly that form is
// read here from the bytes seen as text, one character per byte
// (`asText`): the keys are compared with `startsWith`, a non-negative
// integer of at most 15 digits (exact as a Number) is read digit by digit,
// a string of printable ASCII without escapes is sliced out. Inside the
// component the engine interprets: a `subarray`, a `TextDecoder` call, a
// `JSON.parse` and each typed-array read cost far more than a few string
// calls on one text decoded once per batch, which is what makes this worth
// its code.
//
// Anything else (another key order, whitespace, a sign, more digits, an
// escape, a missing or extra member) makes the reader return `undefined`,
// and the caller takes the general path (`Variant.decode`), which reads the
// same values and words every error. So the canonical reader never accepts
// data the general path refuses, and gives the same value for data both read.

const encoder = new TextEncoder();

/**
 * windows-1252 maps each of the 256 bytes to one UTF-16 code unit, a
 * different one for each byte, and the ASCII bytes to themselves: text
 * with exactly one character per byte, at the same index. Undefined where
 * the engine lacks it (then nothing here is used).
 */
const bytesAsText = (() => {
  try {
    const single = new TextDecoder('windows-1252');
    const all = Uint8Array.from({ length: 256 }, (_, byte) => byte);
    const text = single.decode(all);
    if (text.length !== 256 || new Set(text).size !== 256) return undefined;
    for (let byte = 0; byte < 128; byte++) if (text.charCodeAt(byte) !== byte) return undefined;
    return single;
  } catch {
    return undefined;
  }
})();

/** The bytes as text, one character per byte (see `bytesAsText`), or undefined if the engine cannot. */
export function asText(bytes) {
  return bytesAsText === undefined ? undefined : bytesAsText.decode(bytes);
}

/** The text `asText` gives for the UTF-8 of `text`. */
function textOf(text) {
  return bytesAsText.decode(encoder.encode(text));
}

/**
 * For a variant with a canonical form: `{ prefix, body }`, where `prefix`
 * is the text its data starts with (`{"amount":`, empty without fields)
 * and `body` the statements that read the rest from `s` at `p` (a `let`
 * right after the prefix) up to `e` (the data's end, exclusive) and
 * `return` the value, or `return undefined`. `null` when the variant has
 * no canonical form this reads. `c0` is the BigInt function.
 */
export function canonicalSource(variant) {
  if (bytesAsText === undefined) return null;
  const name = JSON.stringify(variant.name);
  if (variant.unit) {
    // A variant without fields: `null`, or empty data.
    return {
      prefix: '',
      body: `if (p === e || (e - p === 4 && s.startsWith('null', p))) return { type: ${name} };\nreturn undefined;`,
    };
  }
  const fields = variant.type.fields;
  if (fields.length === 0 || !fields.every(({ type }) => type.canonical !== undefined)) return null;
  const lines = ['let c;'];
  const values = [];
  let prefix = '';
  fields.forEach(({ key, type }, index) => {
    const keyText = textOf(`${index === 0 ? '{' : ','}${JSON.stringify(key)}:`);
    const value = `a${index}`;
    if (index === 0) {
      prefix = keyText;
      lines.push(`if (p >= e) return undefined;`);
    } else {
      lines.push(
        `if (e - p <= ${keyText.length} || !s.startsWith(${JSON.stringify(keyText)}, p)) return undefined;`,
        `p += ${keyText.length};`,
      );
    }
    const { kind, low, high, big } = type.canonical;
    if (kind === 'integer') {
      // 0, or 1 to 15 digits without a leading zero: exact as a Number. A
      // 16th digit (or a digit after a leading 0) fails the next check.
      lines.push(
        `let ${value};`,
        `c = s.charCodeAt(p);`,
        `if (c === 48) { ${value} = 0; p++; }`,
        `else if (c >= 49 && c <= 57) {`,
        `  ${value} = c - 48; p++;`,
        `  const stop = e - p > 14 ? p + 14 : e;`,
        `  while (p < stop && (c = s.charCodeAt(p)) >= 48 && c <= 57) { ${value} = ${value} * 10 + (c - 48); p++; }`,
        `} else return undefined;`,
        `if (${value} < ${low} || ${value} > ${high}) return undefined;`,
      );
      values.push(`${JSON.stringify(key)}: ${big ? `c0(${value})` : value}`);
    } else {
      // A string of printable ASCII without `"` or `\`.
      lines.push(
        `if (s.charCodeAt(p) !== 34) return undefined;`,
        `const q${index} = ++p;`,
        `for (;;) {`,
        `  if (p >= e) return undefined;`,
        `  c = s.charCodeAt(p);`,
        `  if (c === 34) break;`,
        `  if (c < 32 || c > 126 || c === 92) return undefined;`,
        `  p++;`,
        `}`,
        `const ${value} = s.slice(q${index}, p);`,
        `p++;`,
      );
      values.push(`${JSON.stringify(key)}: ${value}`);
    }
  });
  lines.push(
    `if (p + 1 !== e || s.charCodeAt(p) !== 125) return undefined;`,
    `return { type: ${name}, ${values.join(', ')} };`,
  );
  return { prefix, body: lines.join('\n') };
}

/** Compiles `body` into `function (params)` with the canonical readers' constants in scope, or undefined if the engine refuses. */
export function compileReader(params, body) {
  try {
    // eslint-disable-next-line no-new-func
    return new Function('c0', `return function canonical(${params}) {\n${body}\n};`)(BigInt);
  } catch {
    return undefined;
  }
}

/**
 * `read(bytes)`: the variant's value from its data in the canonical form,
 * or undefined (then `Variant.decode` reads it). Undefined itself when
 * the variant has no canonical form. `read.text(s, e)` reads the same
 * from the data already seen as text (`asText`: `s`, its length `e`).
 */
export function canonicalReader(variant) {
  const source = canonicalSource(variant);
  if (source === null) return undefined;
  const { prefix, body } = source;
  const text = compileReader(
    's, e',
    `if (!s.startsWith(${JSON.stringify(prefix)})) return undefined;\nlet p = ${prefix.length};\n${body}`,
  );
  if (text === undefined) return undefined;
  const read = (bytes) => {
    const s = bytesAsText.decode(bytes);
    return text(s, s.length);
  };
  read.text = text;
  return read;
}

/**
 * `read(s, typeStart, typeLength, contentLength, e)` over a batch seen as
 * text (`asText`): the event whose type name starts at `typeStart` (its
 * content type right after it, its data up to `e`) when the content type
 * is exactly `application/json`, the type one of `variants` and the data
 * in its canonical form; else undefined, and the general path reads it.
 * One generated function: the common event costs one call, one
 * `startsWith` for its names and first key, and no allocation besides its
 * value. Undefined when no variant has a canonical form or the engine
 * refuses.
 */
export function canonicalEvents(variants, contentType) {
  if (bytesAsText === undefined) return undefined;
  const json = textOf(contentType);
  const lines = [`if (contentLength !== ${json.length}) return undefined;`];
  let any = false;
  for (const variant of variants) {
    const source = canonicalSource(variant);
    if (source === null) continue;
    const name = textOf(variant.name);
    const head = name + json + source.prefix;
    lines.push(
      `if (typeLength === ${name.length} && s.startsWith(${JSON.stringify(head)}, typeStart)) {`,
      `let p = typeStart + ${head.length};`,
      source.body,
      '}',
    );
    any = true;
  }
  lines.push('return undefined;');
  return any ? compileReader('s, typeStart, typeLength, contentLength, e', lines.join('\n')) : undefined;
}
