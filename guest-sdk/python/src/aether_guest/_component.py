"""The componentize-py glue: the WIT resource ``aggregate`` (interface
``aether:aggregate/handler@0.4.0``) around an
:class:`~aether_guest.Aggregate` subclass. ``execute`` decides a command
and applies the events it decided, in one call, and hands them back as one
``bytes`` in the batch layout; ``apply`` (replay) gets a batch of stored
events as one ``bytes`` and reads it in place (see ``_batch``).

:func:`resource_class` is written against stand-ins for the generated
binding types, so the very code that runs in the component also runs under
plain CPython (:mod:`aether_guest.testing` uses it with its own stand-ins).

Failure modes, as in the Rust SDK: a payload that does not decode is a value
(an ``apply-error`` or a ``malformed-command`` rejection); any other
exception escaping a method is a guest bug and traps, which makes the host
drop the whole instance.
"""

from __future__ import annotations

import re
import sys
import types

import gc

from . import _batch
from ._aggregate import CONTENT_TYPE, Rejection, spec_of
from ._codec import _SCAN, _WHITESPACE, WireError, canonical_source, canonical_values

# The aggregate classes exported in this interpreter, in order.
EXPORTED: list = []


def resource_class(spec, Err, ApplyError, WitRejection, Events, Rejected, Unapplied):
    """The class of the WIT resource for ``spec``, built on the given
    constructors for the WIT records, the error wrapper and the three cases
    of ``decision`` (``Unapplied(events, apply_error)`` builds the record
    and wraps it in its case)."""
    JSON = CONTENT_TYPE
    new_state = spec.new
    command_decoder_of = spec.command_decoders.get
    decode_command = spec.decode_command
    apply_events = _apply_loop(spec, Err, ApplyError)
    decide_events = _decider(spec, ApplyError, Events, Unapplied)
    # The `events` case `execute` hands back on its one-event path, kept
    # and given each call's batch: componentize-py reads a returned value
    # before the call returns to the host, and calls into one instance
    # never overlap, so it is never read after the next call changed it
    # (building one costs a Python call of its own, a tenth of a command).
    events_case = Events(b"")
    single = decide_events.single
    encode_events = spec.encode_events
    snapshot = spec.snapshot
    restore = spec.restore
    view = spec.view

    class Aggregate:
        """One live aggregate: its state stays in guest memory between calls."""

        # No __slots__: componentize-py keeps the resource's handle in an
        # attribute of its own on the instance.

        def __init__(self, id: str) -> None:
            # The id names the stream (the host's business); the state does
            # not depend on it, which keeps replay a pure function of the events.
            self.state = new_state()

        def execute(self, command_type, content_type, data, first_version, timestamp_ms):
            decode = command_decoder_of(command_type) if content_type == JSON else None
            if decode is not None:
                try:
                    value = decode(data)
                except WireError:
                    decode = None  # the slow path below says what is wrong
            state = self.state
            try:
                if decode is None:
                    value = decode_command(command_type, content_type, data)
                decided = state.handle(value)
            except Rejection as rejection:
                return Rejected(WitRejection(rejection.code, rejection.message))
            # The common case, one event, without the general loop: encoded,
            # decoded again as a replay reads it (or, for a class with a
            # canonical form, built again from its fields: the same value,
            # see `Codec.to_bytes_copy`), folded into the state.
            if type(decided) is list and len(decided) == 1:
                event = decided[0]
                entry = single(type(event))
                if entry is not None:
                    both, to_bytes, from_bytes, name, pack, type_len, content_len, names = entry
                    if both is not None:
                        data, value = both(event)  # to_bytes_copy
                    else:
                        data = to_bytes(event)
                        try:
                            value = from_bytes(data)
                        except ValueError:
                            return decide_events(state, [(name, data)], first_version, timestamp_ms)
                    state.apply(value)
                    # The batch: the header and names, then the data.
                    size = len(data)
                    head = pack(first_version, timestamp_ms, type_len, content_len, size, names)
                    events_case.value = head + data
                    return events_case
            return decide_events(state, encode_events(decided), first_version, timestamp_ms)

        def snapshot(self) -> bytes:
            return snapshot(self.state)

        def restore(self, state: bytes) -> None:
            try:
                self.state = restore(state)
            except ValueError as error:
                raise Err(str(error)) from None

        def view(self) -> str:
            return view(self.state)

    # The generated loop is the method itself: one Python call fewer per
    # `apply` (for a replay, that is most of what the call does).
    Aggregate.apply = apply_events
    Aggregate.__qualname__ = Aggregate.__name__ = f"{spec.cls.__name__}Resource"
    return Aggregate


def _decider(spec, ApplyError, Events, Unapplied):
    """``decide_events(state, encoded, first_version, timestamp_ms)``: the
    ``decision`` for the events a command decided (``[(event_type, data)]``,
    as ``spec.encode_events`` gives them): ``events`` with their batch,
    stamped as the host will store them, after applying them to ``state``
    the way a replay does: each decoded from the data just encoded, by the
    decoder the apply loop inlines (canonical fast path included), falling
    back to the general decoder, which words the apply-error. The first
    event that does not decode stops it: the decision is then ``unapplied``
    (every decided event, and the apply-error at ``first_version`` + its
    index); the events before it stay applied. Anything else raising (the
    state's ``apply``) is a guest bug and traps, as in a replay.

    ``decide_events.single(event_class)`` is, for the one-event fast path
    in ``execute``, ``(to_bytes_copy, to_bytes, from_bytes, type name,
    pack, type_len, content_len, names)``: the codec's functions
    (``to_bytes_copy`` None without a canonical form), then the class's
    :func:`_batch.event_head`."""
    JSON = CONTENT_TYPE
    decoders = spec.event_decoders
    decode_event = spec.decode_event
    heads = {name: _batch.event_head(name, JSON) for name in spec.events}

    def decide_events(state, encoded, first_version, timestamp_ms):
        parts = []
        for index, (name, data) in enumerate(encoded):
            pack, type_len, content_len, names = heads[name]
            version = first_version + index
            parts.append(pack(version, timestamp_ms, type_len, content_len, len(data), names))
            parts.append(data)
        batch = b"".join(parts)
        fold = state.apply
        for index, (name, data) in enumerate(encoded):
            try:
                value = decoders[name](data)
            except ValueError:
                # As the apply loop's slow path: the general decoder decides
                # and words the error.
                try:
                    value = decode_event(name, JSON, data)
                except ValueError as error:
                    return Unapplied(batch, ApplyError(first_version + index, str(error)))
            fold(value)
        return Events(batch)

    singles = {}
    for name, codec in spec.events.items():
        singles[codec.cls] = (
            codec.to_bytes_copy, codec.to_bytes, codec.from_bytes, name, *heads[name]
        )
    decide_events.single = singles.get
    return decide_events


def _indent(code: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in code.splitlines(True))


def _apply_loop(spec, Err, ApplyError):
    """``apply_events(resource, batch)``, the resource's ``apply`` method:
    reads each event of the batch in place (see ``_batch``), decodes it and
    passes it to the state's ``apply``. Generated per aggregate, with each
    event class's decoder inlined, since this loop is what replay spends
    its time in. Runs of events in canonical form are read by one
    ``findall`` each (see `_run_reader`); an event that is not goes through
    the per-event path, then the loop tries a run again. Anything unusual
    (another content type, an unknown type, data that does not decode, JSON
    with leading whitespace) goes to the general decoder, which also words
    the apply-error; a batch that breaks its layout is an apply-error too."""
    decode_event = spec.decode_event

    def broken(batch, previous, offset, reason):
        raise Err(ApplyError(*_batch.malformed(batch, previous, offset, reason)))

    def slow(batch, previous, offset):
        type_len, content_len, data_len = _batch.LENGTHS(batch, offset)
        start = offset + _batch.HEADER_LEN
        data_start = start + type_len + content_len
        try:
            event_type = batch[start : start + type_len].decode()
            content_type = batch[start + type_len : data_start].decode()
        except UnicodeDecodeError:
            broken(batch, previous, offset, "a type name is not UTF-8")
        data = batch[data_start : data_start + data_len]
        try:
            return decode_event(event_type, content_type, data)
        except ValueError as error:
            # The events before it stay applied, none after it is.
            raise Err(ApplyError(_batch.version_at(batch, offset), str(error))) from None

    namespace = {
        "_HEADER_LEN": _batch.HEADER_LEN,
        "_LENGTHS": _batch.LENGTHS,
        "_SCAN": _SCAN,
        "_WHITESPACE": _WHITESPACE,
        "_broken": broken,
        "_slow": slow,
        "WireError": WireError,
    }
    # `at` is where the event starts, `prev` where the one before it did
    # (-1 for none), `stop` where it ends.
    lines = [
        "def apply_events(resource, batch):\n",
        "    fold = resource.state.apply\n",
        "    size = len(batch)\n",
        "    at = -1\n",
        "    stop = 0\n",
        f"    tries = {_FRUITLESS_RUNS}\n",
        "    while stop < size:\n",
    ]
    run = _run_reader(spec, namespace)
    if run is not None:
        lines.append("        if tries:\n")
        lines.append(_indent(run, 12))
    lines += [
        "        prev = at\n",
        "        at = stop\n",
        "        if size - at < _HEADER_LEN:\n",
        "            _broken(batch, prev, at, 'an event header is cut short')\n",
        "        type_len, content_len, data_len = _LENGTHS(batch, at)\n",
        "        start = at + _HEADER_LEN\n",
        "        data_start = start + type_len + content_len\n",
        "        stop = data_start + data_len\n",
        "        if stop > size:\n",
        "            _broken(\n",
        "                batch, prev, at, \"an event's lengths run past the end of the batch\"\n",
        "            )\n",
        # The type and content type, one slice compared with the name of
        # each event class followed by `application/json` (16 bytes).
        "        if content_len == 16:\n",
        "            names = batch[start:data_start]\n",
    ]
    for index, (name, codec) in enumerate(spec.events.items()):
        namespace.update(codec.names)
        parse = (
            "text = batch[data_start:stop].decode()\n"
            "obj, end = _SCAN(text, 0)\n"
            "if end != len(text) and text[end:].strip(_WHITESPACE):\n"
            "    raise WireError\n"
        )
        if codec.unit:
            parse = "if stop != data_start:\n" + _indent(parse, 4) + "else:\n    obj = None\n"
        body = codec.body.replace("\n    return ", "\n    value = ")
        if body.startswith("    return "):
            body = "    value = " + body[len("    return ") :]
        names = (name + CONTENT_TYPE).encode()
        lines.append(f"            {'if' if index == 0 else 'elif'} names == {names!r}:\n")
        if codec.canonical is not None:
            lines.append(_canonical_path(codec, index, namespace))
        lines.append("                try:\n")
        lines.append(_indent(parse, 20))
        lines.append(_indent(body, 16))
        lines.append(
            "                except (WireError, UnicodeDecodeError, StopIteration, ValueError):\n"
            "                    value = _slow(batch, prev, at)\n"
            "                fold(value)\n"
            "                continue\n"
        )
    lines.append("        fold(_slow(batch, prev, at))\n")
    source = "".join(lines)
    exec(compile(source, f"<aether_guest apply loop of {spec.cls.__name__}>", "exec"), namespace)
    return namespace["apply_events"]


#: Runs that read no event before the loop stops trying runs for the rest
#: of a batch (one ``findall`` each, for a stream whose events are seldom
#: canonical).
_FRUITLESS_RUNS = 8


def _run_reader(spec, namespace: dict):
    """The apply loop's fast path, or None if no event class has a
    canonical form: code that reads the events from ``stop`` on with one
    ``findall`` of a pattern that matches a whole event of a canonical
    class (header lengths, type name, content type and data) or, failing
    that, the rest of the batch; it folds each event the run matched and
    returns at the end of the batch. At the first it cannot take (the rest
    of the batch, data whose header length disagrees with the match, an
    integer out of range) it sets ``at`` and ``stop`` around the last event
    it folded and leaves the event to the per-event path.

    Each match starts where the one before it ended (every position
    matches something), so a run's events are contiguous from ``stop``;
    the data's length is checked against the header (a match can be a
    prefix of data that goes on, as JSON with trailing whitespace), and
    the header's one-byte length (under 256) with its three zero bytes
    against the pattern. Which event a tuple of groups is: the class whose
    length group is not empty."""
    alternatives, checks, names = [], [], []
    group = 0
    for index, (name, codec) in enumerate(spec.events.items()):
        canonical = codec.canonical
        if canonical is None:
            continue
        type_name = name.encode()
        header = len(type_name).to_bytes(4, "little") + len(CONTENT_TYPE).to_bytes(4, "little")
        alternatives.append(
            re.escape(header)
            + b"(.)\x00\x00\x00"
            + re.escape(type_name + CONTENT_TYPE.encode())
            + canonical.pattern
        )
        length = f"r{group}"
        fields = [f"r{group + 1 + position}" for position in range(len(canonical.kinds))]
        names += [length] + fields
        group += 1 + len(fields)
        measured = " + ".join([str(canonical.fixed)] + [f"len({f})" for f in fields])
        # The class, under the name the per-event path gives it too.
        namespace[f"_k{index}"] = codec.cls
        values = canonical_values(
            canonical.kinds, fields, f"_k{index}", 12, "fold({})\ncontinue"
        )
        checks.append(
            f"    if {length}:\n"
            f"        if {measured} == {length}[0]:\n" + values + "        break\n"
        )
    if not alternatives:
        return None
    # The rest of the batch, for anything else; the empty group keeps
    # `findall` giving tuples even with a single group above.
    pattern = b"(?s).{16}(?:" + b"|".join(alternatives) + b")|().+"
    namespace["_run"] = re.compile(pattern).findall
    namespace["_skip"] = _batch.skip
    names.append("_")
    return (
        "run = _run(batch, stop)\n"
        "for groups in run:\n"
        f"    {', '.join(names)} = groups\n"
        + "".join(checks)
        + "    break\n"
        "else:\n"
        "    return\n"
        # The tuples before it were all taken, and taking one depends only
        # on its groups, so no tuple before it equals it.
        "read = run.index(groups)\n"
        "if read:\n"
        "    at, stop = _skip(batch, stop, read)\n"
        "else:\n"
        "    tries -= 1\n"
    )


def _canonical_path(codec, index: int, namespace: dict) -> str:
    """The fast path of one event class in the apply loop: data in the
    canonical compact form (see `_codec._canonical`) is read with one
    regular-expression match over the batch instead of the JSON scanner."""
    namespace[f"_fm{index}"] = codec.canonical.fullmatch
    namespace[f"_k{index}"] = codec.cls
    finish, subject = "fold({})\ncontinue", "batch, data_start, stop"
    return canonical_source(
        codec.canonical.kinds, f"_fm{index}", f"_k{index}", 16, finish, subject
    )


def export(cls):
    """Makes ``cls`` the component's aggregate, like the Rust SDK's
    ``export_aggregate!``: call it once, at the end of the module
    componentize-py builds (``export(BankAccount)``). Returns ``cls``, so it
    also works as a class decorator (above ``@dataclass``).

    Under plain CPython (tests) it only checks the class: the generated
    bindings exist only while componentize-py builds the component.
    """
    spec = spec_of(cls)  # checks the class and compiles its codecs
    if cls not in EXPORTED:
        EXPORTED.append(cls)
    try:
        from componentize_py_types import Err
        from wit_world import exports
        from wit_world.imports.types import ApplyError, Decision_Events, Decision_Rejected
        from wit_world.imports.types import Decision_Unapplied
        from wit_world.imports.types import Rejection as WitRejection
        from wit_world.imports.types import Unapplied
    except ImportError:
        return cls
    if len(EXPORTED) > 1:
        raise TypeError(
            f"a component exports one aggregate, but both {EXPORTED[0].__name__} and "
            f"{cls.__name__} are exported"
        )
    resource = resource_class(
        spec,
        Err,
        ApplyError,
        WitRejection,
        Decision_Events,
        Decision_Rejected,
        lambda events, error: Decision_Unapplied(Unapplied(events, error)),
    )
    # componentize-py looks for the resource class of interface `handler`
    # in a module named `handler`, and for the interface's class `Handler`
    # in the app module (the one that exports).
    module = types.ModuleType("handler", "The exported `aggregate` resource.")
    module.Aggregate = resource
    sys.modules["handler"] = module
    app = sys.modules[cls.__module__]
    app.Handler = type("Handler", (exports.Handler,), {"__module__": cls.__module__})
    # Everything built so far (the interpreter, the modules, the codecs)
    # lives as long as the component: keep it out of the collector's way.
    gc.collect()
    gc.freeze()
    return cls
