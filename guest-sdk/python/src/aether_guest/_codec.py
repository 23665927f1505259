"""Type-driven JSON codecs for dataclasses, built once per class.

Commands, events and the state are dataclasses. For each one this module
compiles a *decoder* (bytes or a parsed JSON value -> instance, checking every
field against its annotation) and an *encoder* (instance -> a JSON-ready
value). Parsing and printing are the standard ``json`` module's C scanner
and encoder; the checks are generated as plain Python per class, so the hot
path is one parse, a few ``type(x) is int`` tests and the constructor call.

Supported annotations: ``int`` (and the ranged aliases ``u8`` … ``u64``,
``i8`` … ``i64``), ``float``, ``str``, ``bool``, ``None``, ``Any``/``object``,
``Optional[T]`` / ``T | None``, ``list[T]``, ``tuple[T, ...]``,
``dict[str, T]``, ``Literal[...]``, ``Enum`` subclasses (by value), and
nested dataclasses. Anything else is refused when the class is exported, not
when the first event arrives.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import re
import types
import typing
from typing import Annotated, Any, Literal, Union

__all__ = [
    "WireError",
    "IntRange",
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "Codec",
    "codec_for",
    "parse",
    "dump",
    "describe",
]


class WireError(ValueError):
    """Data that does not decode as the expected type."""


@dataclasses.dataclass(frozen=True)
class IntRange:
    """Bounds an ``int`` annotation: ``Annotated[int, IntRange(0, 255)]``."""

    low: int
    high: int


u8 = Annotated[int, IntRange(0, 2**8 - 1)]
u16 = Annotated[int, IntRange(0, 2**16 - 1)]
u32 = Annotated[int, IntRange(0, 2**32 - 1)]
u64 = Annotated[int, IntRange(0, 2**64 - 1)]
i8 = Annotated[int, IntRange(-(2**7), 2**7 - 1)]
i16 = Annotated[int, IntRange(-(2**15), 2**15 - 1)]
i32 = Annotated[int, IntRange(-(2**31), 2**31 - 1)]
i64 = Annotated[int, IntRange(-(2**63), 2**63 - 1)]


# --- parsing and printing -------------------------------------------------


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_SCAN = _DECODER.scan_once
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_SORTED_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
)
_WHITESPACE = " \t\n\r"
try:
    from _json import encode_basestring as _ESCAPE
except ImportError:  # pragma: no cover - CPython always has it
    from json.encoder import py_encode_basestring as _ESCAPE


def parse(data) -> Any:
    """Parses UTF-8 JSON bytes (or text) into Python values; raises
    :class:`WireError`. Big integers keep every digit."""
    try:
        text = data if type(data) is str else bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError(f"the data is not UTF-8: {error}") from None
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError):
        # Leading whitespace, or a real syntax error: the slow path says which.
        try:
            return _DECODER.decode(text)
        except ValueError as error:
            raise WireError(f"invalid JSON: {error}") from None
    if end != len(text) and text[end:].strip(_WHITESPACE):
        raise WireError(f"invalid JSON: trailing characters at offset {end}")
    return value


def _fast_dump(sort_keys: bool):
    """``JSONEncoder.encode`` builds a new C encoder on every call; this
    builds it once (falling back to the public API if CPython's ``_json``
    differs from what is expected)."""
    fallback = (_SORTED_ENCODER if sort_keys else _ENCODER).encode
    try:
        from _json import encode_basestring, make_encoder

        def refuse(value):
            raise TypeError(f"{type(value).__name__} is not JSON serializable")

        chunks = make_encoder(
            None, refuse, encode_basestring, None, ":", ",", sort_keys, False, False
        )
        join = "".join
        probe = {"b": [1, "\u00e9\n", None, True, 1.5], "a": {}}
        if join(chunks(probe, 0)) != fallback(probe):
            return fallback
    except Exception:  # pragma: no cover - depends on the interpreter
        return fallback

    def dump_fast(value):
        return join(chunks(value, 0))

    return dump_fast


_DUMP = _fast_dump(False)
_DUMP_SORTED = _fast_dump(True)


def dump(value, sort_keys=False) -> str:
    """Compact JSON text: no whitespace, non-ASCII written as is."""
    return (_DUMP_SORTED if sort_keys else _DUMP)(value)


# --- per-type converters ----------------------------------------------------


def _show(value) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_FRESH = itertools.count(1)


class _Context:
    """Names shared with generated code. Fresh names are unique across all
    codecs, so several codecs' code can share one namespace."""

    def __init__(self):
        self.names = {"WireError": WireError, "_show": _show}

    def bind(self, value, prefix="c") -> str:
        name = f"_{prefix}{next(_FRESH)}"
        self.names[name] = value
        return name


def _strip_annotated(tp):
    """(base type, IntRange or None) for ``Annotated[...]``."""
    if typing.get_origin(tp) is Annotated:
        base, *extra = typing.get_args(tp)
        bounds = next((e for e in extra if isinstance(e, IntRange)), None)
        return base, bounds
    return tp, None


def describe(tp) -> str:
    """A stable, readable description of a type, used for the state schema."""
    base, bounds = _strip_annotated(tp)
    if bounds is not None:
        return f"int[{bounds.low},{bounds.high}]"
    if base is Any or base is object:
        return "any"
    if base is type(None) or base is None:
        return "null"
    if isinstance(base, type) and issubclass(base, enum.Enum):
        values = "|".join(_show(m.value) for m in base)
        return f"{base.__name__}({values})"
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        hints = typing.get_type_hints(base, include_extras=True)
        fields = ",".join(
            f"{f.name}:{describe(hints[f.name])}" for f in dataclasses.fields(base)
        )
        return f"{base.__name__}{{{fields}}}"
    origin = typing.get_origin(base)
    if origin is not None:
        args = ",".join(
            "..." if a is Ellipsis else (_show(a) if origin is Literal else describe(a))
            for a in typing.get_args(base)
        )
        name = "union" if origin in (Union, types.UnionType) else getattr(
            origin, "__name__", str(origin)
        )
        return f"{name}[{args}]"
    if isinstance(base, type):
        return base.__name__
    return repr(base)


def _converter(tp, ctx: _Context, where: str):
    """Returns ``(decode, encode)``: functions from a parsed JSON value to a
    Python value (raising WireError) and back, or None for "as is"."""
    base, bounds = _strip_annotated(tp)
    if base is Any or base is object:
        return None, None
    if base is int:
        low = bounds.low if bounds else None
        high = bounds.high if bounds else None
        if bounds is None:
            expected = "an integer"
        elif bounds.low == 0:
            expected = f"an unsigned integer up to {bounds.high}"
        else:
            expected = f"an integer from {bounds.low} to {bounds.high}"

        def decode_int(value):
            if type(value) is not int or (
                low is not None and not (low <= value <= high)
            ):
                raise WireError(f"expected {expected}, got {_show(value)}")
            return value

        return decode_int, None
    if base is float:

        def decode_float(value):
            kind = type(value)
            if kind is float:
                return value
            if kind is int:
                return float(value)
            raise WireError(f"expected a number, got {_show(value)}")

        return decode_float, None
    if base is str or base is bool:
        name = "a string" if base is str else "a boolean"

        def decode_exact(value):
            if type(value) is not base:
                raise WireError(f"expected {name}, got {_show(value)}")
            return value

        return decode_exact, None
    if base is None or base is type(None):

        def decode_none(value):
            if value is not None:
                raise WireError(f"expected null, got {_show(value)}")

        return decode_none, None
    if isinstance(base, type) and issubclass(base, enum.Enum):
        by_value = {}
        for member in base:
            if not isinstance(member.value, (str, int)) or isinstance(member.value, bool):
                raise TypeError(
                    f"{where}: enum {base.__name__} needs str or int values to cross the wire"
                )
            by_value[(type(member.value), member.value)] = member
        choices = ", ".join(_show(m.value) for m in base)

        def decode_enum(value):
            member = by_value.get((type(value), value))
            if member is None:
                raise WireError(f"expected one of {choices}, got {_show(value)}")
            return member

        def encode_enum(member):
            return member.value

        return decode_enum, encode_enum
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        codec = codec_for(base)
        return codec.from_value, codec.to_value
    origin = typing.get_origin(base)
    args = typing.get_args(base)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != len(args) - 1 or len(options) != 1:
            raise TypeError(
                f"{where}: only Optional[T] (T | None) unions can cross the wire, not {base!r}"
            )
        inner_decode, inner_encode = _converter(options[0], ctx, where)

        def decode_optional(value):
            if value is None or inner_decode is None:
                return value
            return inner_decode(value)

        def encode_optional(value):
            return None if value is None else inner_encode(value)

        return decode_optional, (encode_optional if inner_encode else None)
    if origin is Literal:
        allowed = {(type(a), a) for a in args}
        choices = ", ".join(_show(a) for a in args)

        def decode_literal(value):
            if (type(value), value) not in allowed:
                raise WireError(f"expected one of {choices}, got {_show(value)}")
            return value

        return decode_literal, None
    if origin in (list, tuple) or base in (list, tuple):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"{where}: only tuple[T, ...] can cross the wire, not {base!r}")
        item = args[0] if args else Any
        item_decode, item_encode = _converter(item, ctx, where)
        make = tuple if (origin or base) is tuple else list

        def decode_list(value):
            if type(value) is not list:
                raise WireError(f"expected an array, got {_show(value)}")
            if item_decode is None:
                return make(value)
            out = []
            for index, element in enumerate(value):
                try:
                    out.append(item_decode(element))
                except WireError as error:
                    raise WireError(f"[{index}]: {error}") from None
            return make(out)

        def encode_list(value):
            return [item_encode(element) for element in value]

        return decode_list, (encode_list if item_encode else (list if make is tuple else None))
    if origin is dict or base is dict:
        key, item = args if args else (str, Any)
        if key is not str:
            raise TypeError(f"{where}: JSON object keys are strings, not {key!r}")
        item_decode, item_encode = _converter(item, ctx, where)

        def decode_dict(value):
            if type(value) is not dict:
                raise WireError(f"expected an object, got {_show(value)}")
            if item_decode is None:
                return value
            out = {}
            for name, element in value.items():
                try:
                    out[name] = item_decode(element)
                except WireError as error:
                    raise WireError(f"field `{name}`: {error}") from None
            return out

        def encode_dict(value):
            return {name: item_encode(element) for name, element in value.items()}

        return decode_dict, (encode_dict if item_encode else None)
    raise TypeError(f"{where}: the type {base!r} cannot cross the wire (see aether_guest docs)")


class Codec:
    """Decoder and encoder for one dataclass.

    - ``from_value(obj)``: a parsed JSON value -> instance.
    - ``from_bytes(data)``: JSON bytes -> instance; a class without fields
      also accepts empty data, ``null`` and ``{}``.
    - ``to_value(instance)``: instance -> JSON-ready value (a dict of the
      fields in declaration order; ``None`` for a class without fields).
    - ``to_bytes(instance)``: compact UTF-8 JSON of ``to_value``.
    """

    __slots__ = (
        "cls",
        "from_value",
        "from_bytes",
        "to_value",
        "to_bytes",
        "unit",
        "body",
        "names",
        "canonical",
        "to_bytes_copy",
    )

    def __init__(
        self,
        cls,
        from_value,
        from_bytes,
        to_value,
        to_bytes,
        unit,
        body,
        names,
        canonical,
        to_bytes_copy,
    ):
        self.cls = cls
        self.from_value = from_value
        self.from_bytes = from_bytes
        self.to_value = to_value
        self.to_bytes = to_bytes
        self.unit = unit
        # For generated code that inlines the decoder (the apply loop): the
        # body of `from_value` (reads `obj`, ends in `return <instance>`)
        # and the names it needs.
        self.body = body
        self.names = names
        # For the fast paths: a `Canonical` when every field is an int or a
        # str (see `_canonical`), else None.
        self.canonical = canonical
        # With a canonical form, `to_bytes_copy(value)`: `(to_bytes(value),
        # copy)`, where `copy` is a new instance built from the fields of
        # `value`, equal to `from_bytes(to_bytes(value))` (to_bytes checks
        # each field is an int in range or a str, and those are written and
        # read back exactly) at a fraction of its cost; else None.
        self.to_bytes_copy = to_bytes_copy


_CODECS: dict = {}
_MISSING = object()


def _indent(code: str) -> str:
    return "".join("    " + line if line.strip() else line for line in code.splitlines(True))

# Scalar checks inlined into generated decoders (a function call saved per field).
_INLINE_INT = (
    "    if {v}.__class__ is not int{range}:\n"
    "        raise WireError('field `' + {n!r} + '`: expected {expected}, got ' + _show({v}))\n"
)
_INLINE_EXACT = (
    "    if {v}.__class__ is not {t}:\n"
    "        raise WireError('field `' + {n!r} + '`: expected {expected}, got ' + _show({v}))\n"
)


def codec_for(cls) -> Codec:
    """The (cached) :class:`Codec` of a dataclass; raises TypeError for a
    class or field type that cannot cross the wire."""
    codec = _CODECS.get(cls)
    if codec is not None:
        return codec
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass: decorate it with @dataclass")
    ctx = _Context()
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if len(fields) != len(dataclasses.fields(cls)):
        raise TypeError(f"{cls.__name__}: every field must be an __init__ field (init=True)")
    cls_name = ctx.bind(cls, "cls")
    name = cls.__name__

    decode_lines = []
    encode_checks = []
    encode_parts = []
    encode_items = []
    keyword_args = []
    call_args = []
    if not fields:
        decode_lines.append(
            "    if obj is not None and obj != {}:\n"
            f"        raise WireError('expected null or {{}} for {name}, got ' + _show(obj))\n"
            f"    return {cls_name}()\n"
        )
    else:
        decode_lines.append(
            "    if obj.__class__ is not dict:\n"
            f"        raise WireError('expected an object with the fields of {name}, got ' + _show(obj))\n"
        )
    for index, field in enumerate(fields):
        var = f"a{index}"
        tp = hints[field.name]
        where = f"{name}.{field.name}"
        base, bounds = _strip_annotated(tp)
        field_decode, field_encode = _converter(tp, ctx, where)
        # The check of a present value, at one level of indentation.
        if base is int:
            if bounds is None:
                expected, rng = "an integer", ""
            else:
                expected = (
                    f"an unsigned integer up to {bounds.high}"
                    if bounds.low == 0
                    else f"an integer from {bounds.low} to {bounds.high}"
                )
                rng = f" or not ({bounds.low} <= {var} <= {bounds.high})"
            check = _INLINE_INT.format(v=var, range=rng, n=field.name, expected=expected)
        elif base is str or base is bool:
            expected = "a string" if base is str else "a boolean"
            check = _INLINE_EXACT.format(v=var, t=base.__name__, n=field.name, expected=expected)
        elif field_decode is not None:
            conv = ctx.bind(field_decode, "dec")
            check = (
                f"    try:\n"
                f"        {var} = {conv}({var})\n"
                f"    except WireError as error:\n"
                f"        raise WireError('field `' + {field.name!r} + '`: ' + str(error)) from None\n"
            )
        else:
            check = ""
        optional = typing.get_origin(base) in (Union, types.UnionType) and type(
            None
        ) in typing.get_args(base)
        if (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
            or optional
        ):
            if field.default is not dataclasses.MISSING:
                fill = ctx.bind(field.default, "d")
            elif field.default_factory is not dataclasses.MISSING:
                fill = ctx.bind(field.default_factory, "f") + "()"
            else:
                fill = "None"  # an optional field may be absent: None
            decode_lines.append(
                f"    {var} = obj.get({field.name!r}, _MISSING)\n"
                f"    if {var} is _MISSING:\n"
                f"        {var} = {fill}\n"
            )
            if check:
                decode_lines.append("    else:\n" + _indent(check))
        else:
            decode_lines.append(
                f"    try:\n"
                f"        {var} = obj[{field.name!r}]\n"
                f"    except KeyError:\n"
                f"        raise WireError('missing field `' + {field.name!r} + '`') from None\n"
                + check
            )
        if field.kw_only:
            keyword_args.append(f"{field.name}={var}")
        else:
            call_args.append(var)
        if field_encode is not None:
            enc = ctx.bind(field_encode, "enc")
            encode_items.append(f"{field.name!r}: {enc}(value.{field.name})")
        else:
            encode_items.append(f"{field.name!r}: value.{field.name}")
        # to_bytes: scalars are written directly, after a check (a value
        # that does not match its annotation is a guest bug: TypeError).
        key = json.dumps(field.name) + ":"
        encode_checks.append(f"    {var} = value.{field.name}\n")
        bad = (
            f"        raise TypeError('{name}.{field.name} is ' + repr({var}) + "
            f"', which is not {{}}')\n"
        )
        if base is int:
            rng = f" or not ({bounds.low} <= {var} <= {bounds.high})" if bounds else ""
            encode_checks.append(
                f"    if {var}.__class__ is not int{rng}:\n" + bad.format(describe(tp))
            )
            encode_parts.append((key, f"str({var})"))
        elif base is str:
            encode_checks.append(
                f"    if {var}.__class__ is not str:\n" + bad.format("a str")
            )
            encode_parts.append((key, f"_esc({var})"))
        elif base is bool:
            encode_checks.append(
                f"    if {var}.__class__ is not bool:\n" + bad.format("a bool")
            )
            encode_parts.append((key, f"('true' if {var} else 'false')"))
        elif field_encode is not None:
            encode_parts.append((key, f"_dump({ctx.bind(field_encode, 'enc')}({var}))"))
        else:
            encode_parts.append((key, f"_dump({var})"))
    if fields:
        decode_lines.append(f"    return {cls_name}({', '.join(call_args + keyword_args)})\n")

    body = "".join(decode_lines)
    if fields:
        encode_src = "def to_value(value):\n    return {" + ", ".join(encode_items) + "}\n"
        pieces = []
        for index, (key, expression) in enumerate(encode_parts):
            pieces.append(repr(("{" if index == 0 else ",") + key))
            pieces.append(expression)
        pieces.append(repr("}"))
        data_expression = f"({' + '.join(pieces)}).encode()"
        ints = [expression[4:-1] for _, expression in encode_parts if expression.startswith("str(")]
        if len(ints) == len(encode_parts):
            # Every field an int (checked above): one bytes formatting,
            # which writes an int as str() does.
            template = "".join(
                ("{" if index == 0 else ",") + key.replace("%", "%%") + "%d"
                for index, (key, _) in enumerate(encode_parts)
            ) + "}"
            data_expression = f"{ctx.bind(template.encode(), 'fmt')} % ({', '.join(ints)},)"
        to_bytes_src = (
            "def to_bytes(value):\n"
            + "".join(encode_checks)
            + f"    return {data_expression}\n"
        )
    else:
        encode_src = "def to_value(value):\n    return None\n"
        data_expression = "b'null'"
        to_bytes_src = f"def to_bytes(value):\n    return {data_expression}\n"
    # from_bytes parses with the C scanner and runs the same body inline,
    # one Python call per event instead of three.
    canonical = _canonical(fields, hints)
    prelude = ""
    if canonical is not None:
        namespace_fm = ctx.bind(canonical.fullmatch, "fm")
        prelude = canonical_source(canonical.kinds, namespace_fm, cls_name, 4, "return {}")
    from_bytes_src = (
        "def from_bytes(data):\n"
        + prelude
        + ("    if not data:\n        obj = None\n    else:\n" if not fields else "    if True:\n")
        + "        try:\n"
        "            text = data.decode()\n"
        "            obj, end = _SCAN(text, 0)\n"
        "        except (UnicodeDecodeError, StopIteration, ValueError):\n"
        "            obj = _parse(data)\n"
        "        else:\n"
        "            if end != len(text) and text[end:].strip(_WHITESPACE):\n"
        "                obj = _parse(data)\n"
    )
    copy_src = ""
    if canonical is not None:
        # Every field an int or a str, checked as it is written: decoding
        # what was written gives these very values. For `execute`'s
        # one-event path: each field read and checked once, one call.
        checked = ", ".join(f"a{position}" for position in range(len(fields)))
        copy_src = (
            "\ndef to_bytes_copy(value):\n"
            + "".join(encode_checks)
            + f"    return {data_expression}, {cls_name}({checked})\n"
        )
    source = (
        "def from_value(obj):\n" + body + "\n" + from_bytes_src + body + "\n"
        + encode_src + "\n" + to_bytes_src + copy_src
    )
    namespace = dict(ctx.names)
    namespace["_parse"] = parse
    namespace["_SCAN"] = _SCAN
    namespace["_WHITESPACE"] = _WHITESPACE
    namespace["_MISSING"] = _MISSING
    namespace["_dump"] = _DUMP
    namespace["_esc"] = _ESCAPE
    exec(compile(source, f"<aether_guest codec for {name}>", "exec"), namespace)
    codec = Codec(
        cls,
        namespace["from_value"],
        namespace["from_bytes"],
        namespace["to_value"],
        namespace["to_bytes"],
        not fields,
        body,
        namespace,
        canonical,
        namespace.get("to_bytes_copy"),
    )
    _CODECS[cls] = codec
    return codec


def _canonical(fields, hints):
    """The :class:`Canonical` form of a class, or None: a regular
    expression that matches exactly the compact form the SDKs
    write for a class whose fields are all ints or strs (`{"amount":70}`,
    `{"owner":"Ada"}`, `null` without fields), restricted to what needs no
    JSON decoding: integers of at most 20 digits, strings of printable ASCII
    without escapes. Data in that form decodes to the same values as the
    JSON path would give; any other data takes the JSON path."""
    parts, kinds = [], []
    # The bytes of the form that are not a field's value: braces, keys,
    # colons, commas and a string's quotes (`null` without fields).
    fixed = 2 + max(len(fields) - 1, 0) if fields else 4
    for field in fields:
        if field.kw_only:
            return None
        base, bounds = _strip_annotated(hints[field.name])
        key = json.dumps(field.name).encode() + b":"
        fixed += len(key)
        key = re.escape(key)
        if base is int:
            sign = b"-?" if bounds is None or bounds.low < 0 else b""
            parts.append(key + b"(" + sign + b"(?:0|[1-9][0-9]{0,19}))")
            kinds.append(("int", bounds.low if bounds else None, bounds.high if bounds else None))
        elif base is str:
            parts.append(key + rb'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"')
            kinds.append(("str", None, None))
            fixed += 2
        else:
            return None
    pattern = b"null" if not parts else rb"\{" + b",".join(parts) + rb"\}"
    return Canonical(re.compile(pattern).fullmatch, kinds, pattern, fixed)


class Canonical(typing.NamedTuple):
    """The canonical form of a class (see `_canonical`)."""

    #: The compiled pattern's ``fullmatch``.
    fullmatch: Any
    #: ``(kind, low, high)`` per field: ``"int"`` with its bounds (None for
    #: a plain ``int``) or ``"str"``; one group per field, in order.
    kinds: list
    #: The pattern itself, to be embedded in a larger one.
    pattern: bytes
    #: The length of a match less the lengths of its groups (every byte of
    #: a group's match is one byte of the data: digits or ASCII).
    fixed: int


def canonical_source(
    kinds, matcher: str, cls: str, indent: int, finish: str, subject: str = "data"
) -> str:
    """Code that matches ``subject`` (the arguments of the fullmatch: bytes,
    and possibly where in them to match) against a class's canonical form
    (the ``matcher`` name is bound to the regex's fullmatch, ``cls`` to the
    class) and, when it matches and every integer is in range, runs
    ``finish`` (lines, with ``{}`` standing for the constructor call).
    Otherwise it falls through."""
    pad = " " * indent
    groups = [f"m[{position + 1}]" for position in range(len(kinds))]
    return f"{pad}m = {matcher}({subject})\n{pad}if m is not None:\n" + canonical_values(
        kinds, groups, cls, indent + 4, finish
    )


def canonical_values(kinds, groups: list, cls: str, indent: int, finish: str) -> str:
    """Code that turns the matched groups of a class's canonical form (the
    expressions ``groups``, one per field: bytes) into the field values and,
    when every integer is in range, runs ``finish`` (lines, with ``{}``
    standing for the constructor call). Otherwise it falls through."""
    pad = " " * indent
    code = ""
    args, checks = [], []
    for position, ((kind, low, high), group) in enumerate(zip(kinds, groups)):
        var = f"f{position}"
        if kind == "int":
            code += f"{pad}{var} = int({group})\n"
            if low is not None:
                checks.append(f"{low} <= {var} <= {high}")
        else:
            code += f"{pad}{var} = {group}.decode('ascii')\n"
        args.append(var)
    body = finish.format(f"{cls}({', '.join(args)})")
    inner = pad + ("    " if checks else "")
    if checks:
        code += f"{pad}if {' and '.join(checks)}:\n"
    code += "".join(inner + line + "\n" for line in body.splitlines())
    return code


def convert_to_value(value) -> Any:
    """Any supported Python value (dataclass, enum, list, dict, scalar) as a
    JSON-ready value; used for views."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return codec_for(type(value)).to_value(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [convert_to_value(v) for v in value]
    if isinstance(value, dict):
        return {k: convert_to_value(v) for k, v in value.items()}
    return value

