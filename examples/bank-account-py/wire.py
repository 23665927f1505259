"""The Aether wire format in Python, byte for byte what the Rust SDK
(``aether_guest::wire``, ``guest-sdk/src/wire``) reads and writes.

- ``command-type`` / ``event-type`` is the variant name.
- ``content-type`` is ``application/json`` (any ASCII case, parameters such
  as ``; charset=utf-8`` ignored when reading).
- ``data`` is compact JSON of the variant's fields in declaration order; a
  variant without fields is ``null``, and reads ``null``, ``{}`` or empty
  data.

Decoding accepts exactly what ``serde_json`` accepts for the same Rust type
and fails with exactly its message, position included (``invalid data for
"Deposit": missing field `amount` at line 1 column 2``), so a caller sees the
same rejection whichever language the aggregate is written in. The common
case (clean input) goes through the C ``json`` module; anything unusual
(an error, a ``\\u`` escape, deep nesting) is decided by :class:`_Reader`, a
port of the parts of ``serde_json`` (1.0.154, default features) involved.

Field kinds: ``"u64"`` (an int in 0..=2**64-1), ``"string"`` and
``"status"`` (a unit-variant enum of ``new``, ``open``, ``closed``, for
snapshots).
"""

import json
import re
import unicodedata

#: The content type of every payload written, and the only one read.
CONTENT_TYPE = "application/json"

U64_MAX = 2**64 - 1
STATUSES = ("new", "open", "closed")


class WireError(Exception):
    """A type name or payload that does not decode; ``str()`` is the SDK's message."""


def is_json(content_type):
    """Whether ``content_type`` is ``application/json``, in any ASCII case,
    optionally followed by parameters such as ``; charset=utf-8``."""
    if content_type == CONTENT_TYPE:
        return True
    essence = content_type.split(";", 1)[0].strip(_RUST_WHITESPACE)
    return essence.isascii() and essence.lower() == CONTENT_TYPE


# Rust's char::is_whitespace (Unicode White_Space), for the SDK's `trim`.
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def json_string(text):
    """A JSON string as serde_json writes it: \\" \\\\ \\b \\f \\n \\r \\t,
    other control characters as \\u00xx, everything else as is."""
    return json.dumps(text, ensure_ascii=False)


def decode(variants, enum_name, type_name, data):
    """Decodes variant ``type_name`` of ``variants`` (name -> ``(field,
    kind)``, or None for a variant without fields) from its JSON ``data``.
    Returns the field's value (None for a variant without fields); raises
    :class:`WireError`."""
    spec = variants.get(type_name, False)
    if spec is False:
        expected = ", ".join(f'"{name}"' for name in variants)
        raise WireError(f'unknown type "{type_name}", expected one of {expected}')
    data = bytes(data)
    try:
        if spec is None:
            if data != b"null":
                _read_unit(data)
            return None
        # The shortcut: exactly what encoders write, e.g. {"amount":70}.
        match = _compact(spec).fullmatch(data)
        if match is not None:
            value = match.group(1)
            if spec[1] == "u64":
                value = int(value)
                if value <= U64_MAX:
                    return value
            else:
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
        return read_struct(data, f"struct variant {enum_name}::{type_name}", (spec,))[0]
    except _Error as error:
        raise WireError(f'invalid data for "{type_name}": {error}') from None


_COMPACT = {}


def _compact(spec):
    """A pattern for the compact one-field object of ``spec``, capturing the
    value: an integer without sign or leading zero, or a string without
    escapes. What it matches, serde_json reads as the same value."""
    pattern = _COMPACT.get(spec)
    if pattern is None:
        field, kind = spec
        value = rb"(0|[1-9][0-9]{0,19})" if kind == "u64" else rb'"([^"\\\x00-\x1f]*)"'
        pattern = _COMPACT[spec] = re.compile(
            rb'\{"' + re.escape(field.encode()) + rb'":' + value + rb"\}"
        )
    return pattern


def read_struct(data, expecting, fields):
    """Reads a struct of ``fields`` (``(name, kind)`` pairs) from JSON bytes
    as ``serde_json::from_slice`` does for a derived struct: a JSON object
    (any order, unknown keys ignored) or array (in order). Returns the values
    in field order; raises :class:`ValueError` with serde_json's message."""
    values = _fast_struct(data, fields)
    if values is not None:
        return values
    reader = _Reader(data)
    values = reader.struct(expecting, fields)
    reader.end()
    return values


def _read_unit(data):
    # aether_guest's unit_variant: empty data (ASCII whitespace) is accepted.
    if not data.strip(b" \t\n\x0c\r"):
        return
    if _fast_unit(data):
        return
    reader = _Reader(data)
    reader.unit_content()
    reader.end()


# --- fast path: the C json module, for input that serde_json surely accepts --


class _Object(list):
    """A JSON object as its (key, value) pairs, so duplicate keys are seen."""

    __slots__ = ()


class _Unusual(Exception):
    pass


def _refuse_constant(name):
    raise _Unusual(name)  # NaN, Infinity: not JSON


def _integer(text):
    # serde_json reads -0 as a float.
    return -0.0 if text == "-0" else int(text)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Object, parse_constant=_refuse_constant, parse_int=_integer
)


def _fast_parse(data):
    """The parsed value, or _Unusual if the careful reader must decide."""
    # \u escapes may be lone surrogates (refused by serde_json in a key or a
    # string that is read, accepted elsewhere); deep nesting is left to the
    # reader, which (like serde_json) does not recurse on skipped values.
    if b"\\u" in data or data.count(b"[") + data.count(b"{") > 32:
        return _Unusual
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except Exception:  # noqa: BLE001 - any failure: let the reader explain it
        return _Unusual


def _fast_struct(data, fields):
    value = _fast_parse(data)
    if type(value) is not _Object:
        return None
    found = {}
    for key, item in value:
        for name, kind in fields:
            if key == name:
                if name in found or not _FAST_CHECKS[kind](item):
                    return None
                found[name] = item
                break
    if len(found) != len(fields):
        return None
    return [found[name] for name, _ in fields]


def _fast_unit(data):
    value = _fast_parse(data)
    return value is None or (type(value) is _Object and not value)


_FAST_CHECKS = {
    "u64": lambda v: type(v) is int and 0 <= v <= U64_MAX,
    "string": lambda v: type(v) is str,
    "status": lambda v: type(v) is str and v in STATUSES,
}


# --- the careful path: a port of serde_json's slice reader ----------------------


class _Error(ValueError):
    """A serde_json error: a message and, once known, its position."""

    def __init__(self, message, line=0, column=0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self):
        if self.line == 0:
            return self.message
        return f"{self.message} at line {self.line} column {self.column}"


EOF_LIST = "EOF while parsing a list"
EOF_OBJECT = "EOF while parsing an object"
EOF_STRING = "EOF while parsing a string"
EOF_VALUE = "EOF while parsing a value"
EXPECTED_COLON = "expected `:`"
EXPECTED_LIST_COMMA_OR_END = "expected `,` or `]`"
EXPECTED_OBJECT_COMMA_OR_END = "expected `,` or `}`"
EXPECTED_IDENT = "expected ident"
EXPECTED_VALUE = "expected value"
INVALID_ESCAPE = "invalid escape"
INVALID_NUMBER = "invalid number"
NUMBER_OUT_OF_RANGE = "number out of range"
INVALID_UNICODE = "invalid unicode code point"
CONTROL_CHARACTER = "control character (\\u0000-\\u001F) found while parsing a string"
KEY_MUST_BE_A_STRING = "key must be a string"
LONE_SURROGATE = "lone leading surrogate in hex escape"
TRAILING_COMMA = "trailing comma"
TRAILING_CHARACTERS = "trailing characters"
UNEXPECTED_END_OF_HEX_ESCAPE = "unexpected end of hex escape"

_WHITESPACE = b" \n\t\r"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_SIMPLE_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\x08",
    ord("f"): b"\x0c",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
_POW10 = [float(f"1e{k}") for k in range(309)]
_I32_MAX = 2**31 - 1
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN_LIST, _CLOSE_LIST, _OPEN_OBJECT, _CLOSE_OBJECT = b"[]{}"
_COMMA, _COLON, _MINUS = ord(","), ord(":"), ord("-")
_SCALAR_STARTS = b'ntf"-0123456789'
_IDENTS = (
    (ord("n"), b"ull", "null"),
    (ord("t"), b"rue", "boolean `true`"),
    (ord("f"), b"alse", "boolean `false`"),
)


class _Reader:
    """serde_json's ``Deserializer<SliceRead>``, for the shapes used here."""

    __slots__ = ("b", "i")

    def __init__(self, data):
        self.b = data
        self.i = 0

    # positions and errors

    def _position(self, index):
        start = self.b.rfind(b"\n", 0, index) + 1
        return 1 + self.b.count(b"\n", 0, start), index - start

    def error(self, message):
        return _Error(message, *self._position(self.i))

    def peek_error(self, message):
        return _Error(message, *self._position(min(len(self.b), self.i + 1)))

    def fix(self, error):
        if error.line == 0:
            error.line, error.column = self._position(self.i)
        return error

    # bytes

    def peek(self):
        return self.b[self.i] if self.i < len(self.b) else None

    def peek_or_null(self):
        return self.b[self.i] if self.i < len(self.b) else 0

    def next_char(self):
        if self.i < len(self.b):
            self.i += 1
            return self.b[self.i - 1]
        return None

    def whitespace(self):
        b, i, n = self.b, self.i, len(self.b)
        while i < n and b[i] in _WHITESPACE:
            i += 1
        self.i = i
        return b[i] if i < n else None

    def end(self):
        if self.whitespace() is not None:
            raise self.peek_error(TRAILING_CHARACTERS)

    # typed values

    def struct(self, expecting, fields):
        """``deserialize_struct`` with a derived visitor."""
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_VALUE)
        try:
            if peek == _OPEN_LIST:
                self.i += 1
                return self._finish(self._visit_seq, expecting, fields, self._end_seq)
            if peek == _OPEN_OBJECT:
                self.i += 1
                return self._finish(self._visit_map, expecting, fields, self._end_map)
            raise self.peek_invalid_type(expecting)
        except _Error as error:
            raise self.fix(error) from None

    def _finish(self, visit, expecting, fields, close):
        # serde_json runs the closing check even when the visitor failed,
        # then reports the visitor's error first.
        try:
            value = visit(expecting, fields)
        except _Error as error:
            try:
                close()
            except _Error:
                pass
            raise error from None
        close()
        return value

    def _visit_seq(self, expecting, fields):
        values = []
        for index, (_, kind) in enumerate(fields):
            if not self._has_next_element(index == 0):
                plural = "element" if len(fields) == 1 else "elements"
                raise _Error(
                    f"invalid length {index}, expected {expecting} with {len(fields)} {plural}"
                )
            values.append(self.field(kind))
        return values

    def _has_next_element(self, first):
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_LIST)
        if peek == _CLOSE_LIST:
            return False
        if first:
            return True
        if peek == _COMMA:
            self.i += 1
            peek = self.whitespace()
            if peek == _CLOSE_LIST:
                raise self.peek_error(TRAILING_COMMA)
            if peek is None:
                raise self.peek_error(EOF_VALUE)
            return True
        raise self.peek_error(EXPECTED_LIST_COMMA_OR_END)

    def _has_next_key(self, first):
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_OBJECT)
        if peek == _CLOSE_OBJECT:
            return False
        if first:
            if peek == _QUOTE:
                return True
            raise self.peek_error(KEY_MUST_BE_A_STRING)
        if peek == _COMMA:
            self.i += 1
            peek = self.whitespace()
            if peek == _QUOTE:
                return True
            if peek == _CLOSE_OBJECT:
                raise self.peek_error(TRAILING_COMMA)
            if peek is None:
                raise self.peek_error(EOF_VALUE)
            raise self.peek_error(KEY_MUST_BE_A_STRING)
        raise self.peek_error(EXPECTED_OBJECT_COMMA_OR_END)

    def _key(self):
        self.i += 1  # the opening quote
        return self.parse_str()

    def _visit_map(self, expecting, fields):
        found = {}
        first = True
        while self._has_next_key(first):
            first = False
            key = self._key()
            for name, kind in fields:
                if key == name:
                    if name in found:
                        raise _Error(f"duplicate field `{name}`")
                    self._colon()
                    found[name] = self.field(kind)
                    break
            else:
                self._colon()
                self.ignore_value()
        for name, _ in fields:
            if name not in found:
                raise _Error(f"missing field `{name}`")
        return [found[name] for name, _ in fields]

    def _colon(self):
        peek = self.whitespace()
        if peek == _COLON:
            self.i += 1
        elif peek is None:
            raise self.peek_error(EOF_OBJECT)
        else:
            raise self.peek_error(EXPECTED_COLON)

    def _end_seq(self):
        peek = self.whitespace()
        if peek == _CLOSE_LIST:
            self.i += 1
        elif peek == _COMMA:
            self.i += 1
            if self.whitespace() == _CLOSE_LIST:
                raise self.peek_error(TRAILING_COMMA)
            raise self.peek_error(TRAILING_CHARACTERS)
        elif peek is None:
            raise self.peek_error(EOF_LIST)
        else:
            raise self.peek_error(TRAILING_CHARACTERS)

    def _end_map(self):
        peek = self.whitespace()
        if peek == _CLOSE_OBJECT:
            self.i += 1
        elif peek == _COMMA:
            raise self.peek_error(TRAILING_COMMA)
        elif peek is None:
            raise self.peek_error(EOF_OBJECT)
        else:
            raise self.peek_error(TRAILING_CHARACTERS)

    def field(self, kind):
        if kind == "u64":
            return self.u64()
        if kind == "string":
            return self.string()
        return self.status()

    def u64(self):
        """``deserialize_u64``: serde's u64 visitor on a parsed number."""
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_VALUE)
        try:
            if peek == _MINUS:
                self.i += 1
                kind, number = self.parse_integer(False)
            elif peek in _DIGITS:
                kind, number = self.parse_integer(True)
            else:
                raise self.peek_invalid_type("u64")
            if kind == "u":
                return number
            if kind == "i":
                raise _Error(f"invalid value: integer `{number}`, expected u64")
            raise _Error(f"invalid type: floating point `{_float_text(number)}`, expected u64")
        except _Error as error:
            raise self.fix(error) from None

    def string(self):
        """``deserialize_string``."""
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_VALUE)
        try:
            if peek == _QUOTE:
                self.i += 1
                return self.parse_str()
            raise self.peek_invalid_type("a string")
        except _Error as error:
            raise self.fix(error) from None

    def status(self):
        """``deserialize_enum`` for an enum of unit variants (``Status``)."""
        peek = self.whitespace()
        if peek == _QUOTE:
            return self._variant_name(self.string)
        if peek == _OPEN_OBJECT:
            self.i += 1
            peek = self.whitespace()
            if peek == _CLOSE_OBJECT:
                raise self.peek_error(EXPECTED_VALUE)
            if peek is None:
                raise self.peek_error(EOF_OBJECT)
            if peek != _QUOTE:
                raise self.peek_error(KEY_MUST_BE_A_STRING)
            try:
                name = self._variant_name(self._key)
            except _Error as error:
                raise self.fix(error) from None
            self._colon()
            self.unit()
            peek = self.whitespace()
            if peek == _CLOSE_OBJECT:
                self.i += 1
                return name
            raise self.error(EOF_OBJECT if peek is None else EXPECTED_VALUE)
        if peek is None:
            raise self.peek_error(EOF_VALUE)
        raise self.peek_error(EXPECTED_VALUE)

    def _variant_name(self, read):
        name = read()
        if name not in STATUSES:
            error = _Error(f"unknown variant `{name}`, expected one of `new`, `open`, `closed`")
            raise self.fix(error)
        return name

    def unit(self):
        """``deserialize_unit`` (serde's ``()``)."""
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_VALUE)
        try:
            if peek == ord("n"):
                self.i += 1
                self.parse_ident(b"ull")
                return
            raise self.peek_invalid_type("unit")
        except _Error as error:
            raise self.fix(error) from None

    def unit_content(self):
        """``deserialize_any`` with the SDK's ``UnitContent`` visitor: null or {}."""
        expecting = "null (the variant has no content)"
        peek = self.whitespace()
        if peek is None:
            raise self.peek_error(EOF_VALUE)
        try:
            if peek == ord("n"):
                self.i += 1
                self.parse_ident(b"ull")
                return
            if peek == _OPEN_LIST:
                self.i += 1

                def refuse_sequence(_expecting, _fields):
                    raise _Error(f"invalid type: sequence, expected {expecting}")

                self._finish(refuse_sequence, expecting, (), self._end_seq)
            if peek == _OPEN_OBJECT:
                self.i += 1

                def empty_object(_expecting, _fields):
                    if self._has_next_key(True):
                        self._key()
                        raise _Error("invalid length 1, expected an empty object")

                return self._finish(empty_object, expecting, (), self._end_map)
            raise self.peek_invalid_type(expecting)
        except _Error as error:
            raise self.fix(error) from None

    def peek_invalid_type(self, expecting):
        """serde_json's ``peek_invalid_type``: reads the value that is there."""
        peek = self.peek_or_null()
        if peek in _SCALAR_STARTS:
            error = _Error(f"invalid type: {self._scalar(peek)}, expected {expecting}")
        elif peek == _OPEN_LIST:
            error = _Error(f"invalid type: sequence, expected {expecting}")
        elif peek == _OPEN_OBJECT:
            error = _Error(f"invalid type: map, expected {expecting}")
        else:
            return self.peek_error(EXPECTED_VALUE)
        return self.fix(error)

    def _scalar(self, peek):
        """Reads the scalar starting with ``peek``; returns how serde names it."""
        if peek == _QUOTE:
            self.i += 1
            return f"string {_rust_debug(self.parse_str())}"
        for first, rest, name in _IDENTS:
            if peek == first:
                self.i += 1
                self.parse_ident(rest)
                return name
        if peek == _MINUS:
            self.i += 1
        return _number_text(*self.parse_integer(peek != _MINUS))

    def parse_ident(self, ident):
        for expected in ident:
            char = self.next_char()
            if char is None:
                raise self.error(EOF_VALUE)
            if char != expected:
                raise self.error(EXPECTED_IDENT)

    # numbers: ("u", u64) | ("i", negative i64) | ("f", float)

    def parse_integer(self, positive):
        char = self.next_char()
        if char is None:
            raise self.error(EOF_VALUE)
        if char == ord("0"):
            if self.peek_or_null() in _DIGITS:
                raise self.peek_error(INVALID_NUMBER)
            return self._parse_number(positive, 0)
        if char in _DIGITS:
            significand = char - 48
            while True:
                char = self.peek_or_null()
                if char in _DIGITS:
                    digit = char - 48
                    if significand * 10 + digit > U64_MAX:
                        return "f", self._parse_long_integer(positive, significand)
                    self.i += 1
                    significand = significand * 10 + digit
                else:
                    return self._parse_number(positive, significand)
        raise self.error(INVALID_NUMBER)

    def _parse_number(self, positive, significand):
        char = self.peek_or_null()
        if char == ord("."):
            return "f", self._parse_decimal(positive, significand, 0)
        if char in b"eE":
            return "f", self._parse_exponent(positive, significand, 0)
        if positive:
            return "u", significand
        # Like serde_json: -0 and anything below i64::MIN are floats.
        if significand == 0 or significand > 2**63:
            return "f", -float(significand)
        return "i", -significand

    def _parse_decimal(self, positive, significand, exponent_before):
        self.i += 1
        exponent_after = 0
        while True:
            char = self.peek_or_null()
            if not (char in _DIGITS):
                break
            digit = char - 48
            if significand * 10 + digit > U64_MAX:
                return self._parse_decimal_overflow(
                    positive, significand, exponent_before + exponent_after
                )
            self.i += 1
            significand = significand * 10 + digit
            exponent_after -= 1
        if exponent_after == 0:
            if self.peek() is not None:
                raise self.peek_error(INVALID_NUMBER)
            raise self.peek_error(EOF_VALUE)
        exponent = exponent_before + exponent_after
        if self.peek_or_null() in b"eE":
            return self._parse_exponent(positive, significand, exponent)
        return self._f64_from_parts(positive, significand, exponent)

    def _parse_decimal_overflow(self, positive, significand, exponent):
        while self.peek_or_null() in _DIGITS:
            self.i += 1
        if self.peek_or_null() in b"eE":
            return self._parse_exponent(positive, significand, exponent)
        return self._f64_from_parts(positive, significand, exponent)

    def _parse_exponent(self, positive, significand, starting_exponent):
        self.i += 1
        char = self.peek_or_null()
        positive_exponent = True
        if char == ord("+"):
            self.i += 1
        elif char == _MINUS:
            self.i += 1
            positive_exponent = False
        char = self.next_char()
        if char is None:
            raise self.error(EOF_VALUE)
        if char not in _DIGITS:
            raise self.error(INVALID_NUMBER)
        exponent = char - 48
        while True:
            char = self.peek_or_null()
            if not (char in _DIGITS):
                break
            self.i += 1
            digit = char - 48
            if exponent * 10 + digit > _I32_MAX:
                return self._parse_exponent_overflow(positive, significand == 0, positive_exponent)
            exponent = exponent * 10 + digit
        final = starting_exponent + exponent if positive_exponent else starting_exponent - exponent
        final = max(-(2**31), min(_I32_MAX, final))  # saturating i32 arithmetic
        return self._f64_from_parts(positive, significand, final)

    def _parse_exponent_overflow(self, positive, zero_significand, positive_exponent):
        if not zero_significand and positive_exponent:
            raise self.error(NUMBER_OUT_OF_RANGE)
        while self.peek_or_null() in _DIGITS:
            self.i += 1
        return 0.0 if positive else -0.0

    def _parse_long_integer(self, positive, significand):
        exponent = 0
        while True:
            char = self.peek_or_null()
            if char in _DIGITS:
                self.i += 1
                exponent += 1
            elif char == ord("."):
                return self._parse_decimal(positive, significand, exponent)
            elif char in b"eE":
                return self._parse_exponent(positive, significand, exponent)
            else:
                return self._f64_from_parts(positive, significand, exponent)

    def _f64_from_parts(self, positive, significand, exponent):
        # serde_json without float_roundtrip: the same IEEE operations.
        value = float(significand)
        while True:
            index = abs(exponent)
            if index < len(_POW10) and exponent != -(2**31):
                if exponent >= 0:
                    value *= _POW10[index]
                    if value == float("inf"):
                        raise self.error(NUMBER_OUT_OF_RANGE)
                else:
                    value /= _POW10[index]
                break
            if value == 0.0:
                break
            if exponent >= 0:
                raise self.error(NUMBER_OUT_OF_RANGE)
            value /= 1e308
            exponent += 308
        return value if positive else -value

    # strings

    def parse_str(self):
        """A string after its opening quote, validated as serde_json does."""
        b, n = self.b, len(self.b)
        scratch = bytearray()
        start = self.i
        while True:
            i = self.i
            while i < n and b[i] != _QUOTE and b[i] != _BACKSLASH and b[i] >= 0x20:
                i += 1
            self.i = i
            if i == n:
                raise self.error(EOF_STRING)
            char = b[i]
            if char == _QUOTE:
                scratch += b[start:i]
                self.i = i + 1
                try:
                    return scratch.decode("utf-8")
                except UnicodeDecodeError as error:
                    line, column = self._position(self.i)
                    column = max(0, column - (len(scratch) - error.start))
                    raise _Error(INVALID_UNICODE, line, column) from None
            if char == _BACKSLASH:
                scratch += b[start:i]
                self.i = i + 1
                self._parse_escape(scratch)
                start = self.i
            else:
                self.i = i + 1
                raise self.error(CONTROL_CHARACTER)

    def _parse_escape(self, scratch):
        char = self.next_char()
        if char is None:
            raise self.error(EOF_STRING)
        simple = _SIMPLE_ESCAPES.get(char)
        if simple is not None:
            scratch += simple
        elif char == ord("u"):
            self._parse_unicode_escape(scratch)
        else:
            raise self.error(INVALID_ESCAPE)

    def _parse_unicode_escape(self, scratch):
        n = self._hex_escape()
        if 0xDC00 <= n <= 0xDFFF:
            raise self.error(LONE_SURROGATE)
        if n < 0xD800 or n > 0xDBFF:
            scratch += chr(n).encode("utf-8")
            return
        for expected in b"\\u":
            char = self.peek()
            if char is None:
                raise self.error(EOF_STRING)
            self.i += 1
            if char != expected:
                raise self.error(UNEXPECTED_END_OF_HEX_ESCAPE)
        n2 = self._hex_escape()
        if n2 < 0xDC00 or n2 > 0xDFFF:
            raise self.error(LONE_SURROGATE)
        scratch += chr((((n - 0xD800) << 10) | (n2 - 0xDC00)) + 0x10000).encode("utf-8")

    def _hex_escape(self):
        digits = self.b[self.i : self.i + 4]
        if len(digits) < 4:
            self.i = len(self.b)
            raise self.error(EOF_STRING)
        self.i += 4
        if any(d not in _HEX for d in digits):
            raise self.error(INVALID_ESCAPE)
        return int(digits, 16)

    def _ignore_str(self):
        b, n = self.b, len(self.b)
        while True:
            i = self.i
            while i < n and b[i] != _QUOTE and b[i] != _BACKSLASH and b[i] >= 0x20:
                i += 1
            self.i = i
            if i == n:
                raise self.error(EOF_STRING)
            char = b[i]
            if char == _QUOTE:
                self.i = i + 1
                return
            if char == _BACKSLASH:
                self.i = i + 1
                char = self.next_char()
                if char is None:
                    raise self.error(EOF_STRING)
                if char == ord("u"):
                    self._hex_escape()
                elif char not in _SIMPLE_ESCAPES:
                    raise self.error(INVALID_ESCAPE)
            else:
                raise self.error(CONTROL_CHARACTER)

    # skipping a value (iterative, as serde_json: no recursion limit)

    def ignore_value(self):
        stack = []
        enclosing = None
        while True:
            peek = self.whitespace()
            if peek is None:
                raise self.peek_error(EOF_VALUE)
            frame = None
            if peek == ord("n"):
                self.i += 1
                self.parse_ident(b"ull")
            elif peek == ord("t"):
                self.i += 1
                self.parse_ident(b"rue")
            elif peek == ord("f"):
                self.i += 1
                self.parse_ident(b"alse")
            elif peek == _MINUS:
                self.i += 1
                self._ignore_integer()
            elif peek in _DIGITS:
                self._ignore_integer()
            elif peek == _QUOTE:
                self.i += 1
                self._ignore_str()
            elif peek == _OPEN_LIST or peek == _OPEN_OBJECT:
                if enclosing is not None:
                    stack.append(enclosing)
                    enclosing = None
                self.i += 1
                frame = peek
            else:
                raise self.peek_error(EXPECTED_VALUE)

            if frame is not None:
                accept_comma = False
            elif enclosing is not None:
                accept_comma, frame, enclosing = True, enclosing, None
            elif stack:
                accept_comma, frame = True, stack.pop()
            else:
                return

            while True:
                peek = self.whitespace()
                if peek == _COMMA and accept_comma:
                    self.i += 1
                    break
                if (peek == _CLOSE_LIST and frame == _OPEN_LIST) or (
                    peek == _CLOSE_OBJECT and frame == _OPEN_OBJECT
                ):
                    pass
                elif peek is not None:
                    if accept_comma:
                        raise self.peek_error(
                            EXPECTED_LIST_COMMA_OR_END
                            if frame == _OPEN_LIST
                            else EXPECTED_OBJECT_COMMA_OR_END
                        )
                    break
                else:
                    raise self.peek_error(EOF_LIST if frame == _OPEN_LIST else EOF_OBJECT)
                self.i += 1
                if not stack:
                    return
                frame = stack.pop()
                accept_comma = True

            if frame == _OPEN_OBJECT:
                peek = self.whitespace()
                if peek == _QUOTE:
                    self.i += 1
                elif peek is None:
                    raise self.peek_error(EOF_OBJECT)
                else:
                    raise self.peek_error(KEY_MUST_BE_A_STRING)
                self._ignore_str()
                peek = self.whitespace()
                if peek == _COLON:
                    self.i += 1
                elif peek is None:
                    raise self.peek_error(EOF_OBJECT)
                else:
                    raise self.peek_error(EXPECTED_COLON)
            enclosing = frame

    def _ignore_integer(self):
        char = self.next_char() or 0
        if char == ord("0"):
            if self.peek_or_null() in _DIGITS:
                raise self.peek_error(INVALID_NUMBER)
        elif char in _DIGITS:
            while self.peek_or_null() in _DIGITS:
                self.i += 1
        else:
            raise self.error(INVALID_NUMBER)
        char = self.peek_or_null()
        if char == ord("."):
            self._ignore_decimal()
        elif char in b"eE":
            self._ignore_exponent()

    def _ignore_decimal(self):
        self.i += 1
        digits = False
        while self.peek_or_null() in _DIGITS:
            self.i += 1
            digits = True
        if not digits:
            raise self.peek_error(INVALID_NUMBER)
        if self.peek_or_null() in b"eE":
            self._ignore_exponent()

    def _ignore_exponent(self):
        self.i += 1
        if self.peek_or_null() in b"+-":
            self.i += 1
        char = self.next_char() or 0
        if not (char in _DIGITS):
            raise self.error(INVALID_NUMBER)
        while self.peek_or_null() in _DIGITS:
            self.i += 1


# --- how serde names a value in an error ----------------------------------------


def _number_text(kind, number):
    if kind == "f":
        return f"floating point `{_float_text(number)}`"
    return f"integer `{number}`"


def _float_text(value):
    """A float as serde_json prints it (the zmij crate): the shortest
    round-trip digits, positional for decimal exponents -5..=15, otherwise
    like 1.5e-7 or 1e+16."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    if int(exponent) != -5:
        # zmij writes e-7 where Python writes e-07.
        return f"{mantissa}e{exponent[0]}{int(exponent[1:])}"
    digits = mantissa.lstrip("-").replace(".", "")
    return ("-" if value < 0 else "") + "0.0000" + digits


def _rust_debug(text):
    """``{:?}`` of a Rust string: quoted, with Rust's escapes."""
    out = ['"']
    for char in text:
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\0":
            out.append("\\0")
        elif char.isprintable() and unicodedata.category(char) not in ("Mn", "Me"):
            out.append(char)
        else:
            out.append(f"\\u{{{ord(char):x}}}")
    out.append('"')
    return "".join(out)
