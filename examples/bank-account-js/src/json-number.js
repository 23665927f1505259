// Numbers, read as serde_json 1.0.x (without `float_roundtrip`) reads them,
// and written as its error messages write them. Used by json.js; every
// function takes the Deserializer and leaves its cursor past the number.
//
// Integers stay exact (BigInt) up to u64::MAX; anything else (a fraction,
// an exponent, `-0`, an integer out of the u64/i64 range) becomes the same
// double serde_json computes: the first ~19 significant digits scaled by a
// table of powers of ten, which is not always the closest double.

const U64_MAX = (1n << 64n) - 1n;
const U64_MAX_DIV_10 = U64_MAX / 10n;
const U64_MAX_MOD_10 = U64_MAX % 10n;
const I32_MAX = 2147483647;
const I32_MIN = -2147483648;
const POW10 = Array.from({ length: 309 }, (_, i) => Number(`1e${i}`));

const isDigit = (c) => c >= 0x30 && c <= 0x39;
const overflowsU64 = (significand, digit) =>
  significand >= U64_MAX_DIV_10 && (significand > U64_MAX_DIV_10 || digit > U64_MAX_MOD_10);

/**
 * `parse_integer` (after the sign): `{ kind: 'u64' | 'i64', value: BigInt }`
 * or `{ kind: 'f64', value: Number }` for fractions, exponents, `-0` and
 * integers out of range, computed as serde_json computes them.
 */
export function parseInteger(de, positive) {
  const c = de.next();
  if (c === -1) throw de.error('EOF while parsing a value');
  if (c === 0x30) {
    if (isDigit(de.peek())) throw de.peekError('invalid number');
    return parseNumber(de, positive, 0n);
  }
  if (c < 0x31 || c > 0x39) throw de.error('invalid number');
  // Up to 19 digits always fit in a u64; the 20th may not.
  const start = de.index - 1;
  while (isDigit(de.peek()) && de.index - start < 19) de.index += 1;
  let significand = BigInt(String.fromCharCode(...de.bytes.subarray(start, de.index)));
  if (isDigit(de.peek())) {
    const digit = BigInt(de.peek() - 0x30);
    if (overflowsU64(significand, digit)) {
      return { kind: 'f64', value: parseLongInteger(de, positive, significand) };
    }
    de.index += 1;
    significand = significand * 10n + digit;
    if (isDigit(de.peek())) {
      return { kind: 'f64', value: parseLongInteger(de, positive, significand) };
    }
  }
  return parseNumber(de, positive, significand);
}

function parseNumber(de, positive, significand) {
  const c = de.peek();
  if (c === 0x2e) return { kind: 'f64', value: parseDecimal(de, positive, significand, 0) };
  if (c === 0x65 || c === 0x45) return { kind: 'f64', value: parseExponent(de, positive, significand, 0) };
  if (positive) return { kind: 'u64', value: significand };
  if (significand === 0n || significand > 1n << 63n) {
    return { kind: 'f64', value: -Number(significand) };
  }
  return { kind: 'i64', value: -significand };
}

function parseLongInteger(de, positive, significand) {
  let exponent = 0;
  for (;;) {
    const c = de.peek();
    if (isDigit(c)) {
      de.index += 1;
      exponent += 1;
    } else if (c === 0x2e) {
      return parseDecimal(de, positive, significand, exponent);
    } else if (c === 0x65 || c === 0x45) {
      return parseExponent(de, positive, significand, exponent);
    } else {
      return fromParts(de, positive, significand, exponent);
    }
  }
}

function parseDecimal(de, positive, significand, exponentBefore) {
  de.index += 1;
  let after = 0;
  for (let c = de.peek(); isDigit(c); c = de.peek()) {
    const digit = BigInt(c - 0x30);
    if (overflowsU64(significand, digit)) {
      // Further digits cannot change the double: skip them.
      while (isDigit(de.peek())) de.index += 1;
      const e = de.peek();
      if (e === 0x65 || e === 0x45) return parseExponent(de, positive, significand, exponentBefore + after);
      return fromParts(de, positive, significand, exponentBefore + after);
    }
    de.index += 1;
    significand = significand * 10n + digit;
    after -= 1;
  }
  if (after === 0) {
    throw de.peekError(de.peek() === -1 ? 'EOF while parsing a value' : 'invalid number');
  }
  const e = de.peek();
  if (e === 0x65 || e === 0x45) return parseExponent(de, positive, significand, exponentBefore + after);
  return fromParts(de, positive, significand, exponentBefore + after);
}

function parseExponent(de, positive, significand, startingExponent) {
  de.index += 1;
  let positiveExponent = true;
  const sign = de.peek();
  if (sign === 0x2b || sign === 0x2d) {
    de.index += 1;
    positiveExponent = sign === 0x2b;
  }
  const first = de.next();
  if (first === -1) throw de.error('EOF while parsing a value');
  if (!isDigit(first)) throw de.error('invalid number');
  let exponent = first - 0x30;
  while (isDigit(de.peek())) {
    const digit = de.next() - 0x30;
    if (exponent >= Math.floor(I32_MAX / 10) && (exponent > Math.floor(I32_MAX / 10) || digit > I32_MAX % 10)) {
      if (significand !== 0n && positiveExponent) throw de.error('number out of range');
      while (isDigit(de.peek())) de.index += 1;
      return positive ? 0 : -0;
    }
    exponent = exponent * 10 + digit;
  }
  const total = positiveExponent ? startingExponent + exponent : startingExponent - exponent;
  return fromParts(de, positive, significand, Math.min(I32_MAX, Math.max(I32_MIN, total)));
}

/** `f64_from_parts` without `float_roundtrip`: scaling by a table of powers of ten. */
function fromParts(de, positive, significand, exponent) {
  let f = Number(significand);
  for (;;) {
    const magnitude = exponent === I32_MIN ? Infinity : Math.abs(exponent);
    if (magnitude < POW10.length) {
      if (exponent >= 0) {
        f *= POW10[magnitude];
        if (!Number.isFinite(f)) throw de.error('number out of range');
      } else {
        f /= POW10[magnitude];
      }
      break;
    }
    if (f === 0) break;
    if (exponent >= 0) throw de.error('number out of range');
    f /= 1e308;
    exponent += 308;
  }
  return positive ? f : -f;
}

/** How serde names a number it did not expect. */
export function unexpectedNumber(number) {
  return number.kind === 'f64'
    ? `floating point \`${formatFloat(number.value)}\``
    : `integer \`${number.value}\``;
}

/**
 * A double as serde_json's error messages write it (the `zmij` crate):
 * shortest round-trip digits; plain notation for decimal exponents -5..=15
 * (`100.0`, `0.001`), else scientific (`1e-7`, `1.8446744073709552e+19`).
 */
export function formatFloat(x) {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponentText] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  if (exponent >= -5 && exponent <= 15) {
    if (digits.length - 1 <= exponent) return `${sign}${digits}${'0'.repeat(exponent - digits.length + 1)}.0`;
    if (exponent >= 0) return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
    return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  }
  const significand = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${significand}e${exponent < 0 ? '-' : '+'}${Math.abs(exponent)}`;
}
