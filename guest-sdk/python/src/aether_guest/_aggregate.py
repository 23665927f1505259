"""Aggregates, rejections, and the WIT resource's logic on plain values."""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from typing import Union

from . import _codec
from ._codec import WireError, codec_for, dump

CONTENT_TYPE = "application/json"


class Rejection(Exception):
    """A business decision not to carry out a command: raise it from
    ``handle``. The host returns ``code`` (stable, machine-readable, e.g.
    ``insufficient-funds``) and ``message`` (for people) to the caller and
    stores nothing."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(code, message)
        self.code = str(code)
        self.message = str(message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Rejection)
            and (self.code, self.message) == (other.code, other.message)
        )

    __hash__ = Exception.__hash__


class Aggregate:
    """Base class of an aggregate: a dataclass whose fields are the state.

    Subclasses define::

        def handle(self, command) -> list[Event]   # decide; raise Rejection
        def apply(self, event) -> None             # fold one event into the state

    The commands and events are dataclasses. The SDK finds them in the
    annotations of ``handle`` (``command: Open | Deposit``) and ``apply``
    (``event: Opened | Deposited``), or in the class attributes
    ``commands = (Open, Deposit)`` and ``events = (Opened, Deposited)``.
    A type crosses the wire under its class name, or under its class
    attribute ``type_name`` if it has one.

    Optional:

    - ``state_schema = "2"``: the snapshot format's version. By default it
      is derived from the state's fields and their types, so a build that
      changes them stops using older snapshots.
    - ``view(self)``: what readers see (a JSON-ready value or a dataclass);
      by default the state's fields.

    ``handle`` must not change the state: the SDK passes the events it
    returns to ``apply`` (decoded from the JSON just encoded, as a replay
    reads them, or built again with the values decoding would give), and
    the host stores them.
    """

    def handle(self, command):  # pragma: no cover - overridden
        raise NotImplementedError

    def apply(self, event) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def view(self):
        return codec_for(type(self)).to_value(self)


def type_name(cls) -> str:
    """The name a command or event class has on the wire."""
    return cls.__dict__.get("type_name", cls.__name__)


def _members(cls, attribute: str, method: str, parameter: str) -> tuple:
    declared = cls.__dict__.get(attribute)
    if declared is None:
        for klass in cls.__mro__:
            if attribute in klass.__dict__:
                declared = klass.__dict__[attribute]
                break
    if declared is not None:
        return tuple(declared)
    function = getattr(cls, method, None)
    try:
        hints = typing.get_type_hints(function) if function else {}
    except Exception as error:
        raise TypeError(f"{cls.__name__}.{method}: cannot read its annotations: {error}") from None
    annotation = hints.get(parameter)
    if annotation is None:
        raise TypeError(
            f"{cls.__name__}: annotate {method}({parameter}: A | B | ...) with its "
            f"dataclasses, or set {attribute} = (A, B, ...)"
        )
    if typing.get_origin(annotation) in (Union, _union_type()):
        return typing.get_args(annotation)
    return (annotation,)


def _union_type():
    import types

    return types.UnionType


class Spec:
    """Everything the SDK derives from an aggregate class, once."""

    def __init__(self, cls) -> None:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(
                f"{getattr(cls, '__name__', cls)!r} must be a @dataclass whose fields are the state"
            )
        self.cls = cls
        self.state = codec_for(cls)
        try:
            cls()
        except TypeError as error:
            raise TypeError(
                f"{cls.__name__}: every state field needs a default (the state before "
                f"any event): {error}"
            ) from None
        self.commands = self._table(_members(cls, "commands", "handle", "command"), "command")
        self.events = self._table(_members(cls, "events", "apply", "event"), "event")
        # class -> (type name, encoder to bytes), for the events handle returns.
        self.event_encoders = {
            codec.cls: (name, codec.to_bytes) for name, codec in self.events.items()
        }
        # type name -> decoder from bytes.
        self.command_decoders = {name: c.from_bytes for name, c in self.commands.items()}
        self.event_decoders = {name: c.from_bytes for name, c in self.events.items()}
        self.command_names = ", ".join(f'"{n}"' for n in self.commands)
        self.event_names = ", ".join(f'"{n}"' for n in self.events)
        declared = getattr(cls, "state_schema", None)
        self.state_schema = declared if declared is not None else derived_schema(cls)
        if not (
            isinstance(self.state_schema, str)
            and 1 <= len(self.state_schema) <= 64
            and all(33 <= ord(ch) <= 126 for ch in self.state_schema)
        ):
            raise TypeError(
                f"{cls.__name__}.state_schema must be 1 to 64 printable ASCII characters "
                "without spaces"
            )

    def _table(self, classes, kind: str) -> dict:
        table = {}
        for member in classes:
            codec = codec_for(member)  # raises TypeError for non-dataclasses
            name = type_name(member)
            if name in table:
                raise TypeError(f"two {kind} classes are named {name!r} on the wire")
            table[name] = codec
        if not table:
            raise TypeError(f"{self.cls.__name__} has no {kind} classes")
        return table

    # --- the WIT methods on plain values -------------------------------------

    def new(self):
        return self.cls()

    def decode_command(self, command_type: str, content_type: str, data):
        """The command as its dataclass; raises Rejection
        (``unsupported-content-type`` or ``malformed-command``)."""
        if content_type != CONTENT_TYPE and not is_json(content_type):
            raise Rejection(
                "unsupported-content-type",
                f'cannot read a "{command_type}" command with content type '
                f'"{content_type}": expected {CONTENT_TYPE}',
            )
        decode = self.command_decoders.get(command_type)
        if decode is None:
            raise Rejection(
                "malformed-command",
                f'unknown type "{command_type}", expected one of {self.command_names}',
            )
        try:
            return decode(data)
        except WireError as error:
            raise Rejection(
                "malformed-command", f'invalid data for "{command_type}": {error}'
            ) from None

    def encode_events(self, decided) -> list:
        """``[(event_type, data bytes)]`` for what ``handle`` returned (one
        event, or an iterable of them, or None). A value that is not one of
        the aggregate's events is a guest bug."""
        encoders = self.event_encoders
        if decided is None:
            return []
        if type(decided) in encoders:
            decided = (decided,)
        out = []
        for event in decided:
            entry = encoders.get(type(event))
            if entry is None:
                raise TypeError(
                    f"{self.cls.__name__}.handle returned {event!r}, which is not one of its "
                    f"events ({self.event_names})"
                )
            out.append((entry[0], entry[1](event)))
        return out

    def decode_event(self, event_type: str, content_type: str, data):
        """The event as its dataclass; raises ValueError with the apply-error message."""
        if content_type != CONTENT_TYPE and not is_json(content_type):
            raise ValueError(
                f'unsupported content type "{content_type}" for event "{event_type}": '
                f"expected {CONTENT_TYPE}"
            )
        decode = self.event_decoders.get(event_type)
        if decode is None:
            raise ValueError(
                f'cannot apply event: unknown type "{event_type}", expected one of '
                f"{self.event_names}"
            )
        try:
            return decode(data)
        except WireError as error:
            raise ValueError(
                f'cannot apply event: invalid data for "{event_type}": {error}'
            ) from None

    def snapshot(self, state) -> bytes:
        return self.state.to_bytes(state)

    def restore(self, data):
        """A new state from a snapshot; raises ValueError with the message."""
        try:
            return self.state.from_bytes(data)
        except WireError as error:
            raise ValueError(f"cannot restore the snapshot: {error}") from None

    def view(self, state) -> str:
        return dump(_codec.convert_to_value(state.view()), sort_keys=True)


def is_json(content_type: str) -> bool:
    """``application/json``, ignoring case and parameters (``; charset=utf-8``)."""
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def derived_schema(cls) -> str:
    """A state-schema version derived from the state's fields and types:
    ``py-`` and 16 hex digits of a hash of their description."""
    description = _codec.describe(cls)
    return "py-" + hashlib.sha256(description.encode()).hexdigest()[:16]


_SPECS: dict = {}


def spec_of(cls) -> Spec:
    """The (cached) :class:`Spec` of an aggregate class."""
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = Spec(cls)
    return spec

