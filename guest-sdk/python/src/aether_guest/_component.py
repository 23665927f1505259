"""The componentize-py glue: the WIT resource ``aggregate`` around an
:class:`~aether_guest.Aggregate` subclass.

:func:`resource_class` is written against stand-ins for the generated
binding types, so the very code that runs in the component also runs under
plain CPython (:mod:`aether_guest.testing` uses it with its own stand-ins).

Failure modes, as in the Rust SDK: a payload that does not decode is a value
(an ``apply-error`` or a ``malformed-command`` rejection); any other
exception escaping a method is a guest bug and traps, which makes the host
drop the whole instance.
"""

from __future__ import annotations

import sys
import types

from ._aggregate import CONTENT_TYPE, Rejection, spec_of
from ._codec import WireError

# The aggregate classes exported in this interpreter, in order.
EXPORTED: list = []


def resource_class(spec, NewEvent, Err, ApplyError, WitRejection):
    """The class of the WIT resource for ``spec``, built on the given
    constructors for the WIT records and the error wrapper."""
    JSON = CONTENT_TYPE
    new_state = spec.new
    decoder_of = spec.event_decoders.get
    decode_event = spec.decode_event
    decode_command = spec.decode_command
    encoders = spec.event_encoders
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

        def apply(self, events) -> None:
            fold = self.state.apply
            for event in events:
                decode = decoder_of(event.event_type) if event.content_type == JSON else None
                try:
                    if decode is None:
                        raise WireError  # the slow path below says what is wrong
                    value = decode(event.data)
                except WireError:
                    try:
                        value = decode_event(event.event_type, event.content_type, event.data)
                    except ValueError as error:
                        # The events before it stay applied, none after it is.
                        raise Err(ApplyError(event.version, str(error))) from None
                fold(value)

        def handle(self, command):
            try:
                decided = self.state.handle(
                    decode_command(command.command_type, command.content_type, command.data)
                )
            except Rejection as rejection:
                raise Err(WitRejection(rejection.code, rejection.message)) from None
            # The common case, one event, without the general loop.
            if type(decided) is list and len(decided) == 1:
                entry = encoders.get(type(decided[0]))
                if entry is not None:
                    return [NewEvent(entry[0], JSON, entry[1](decided[0]))]
            return [NewEvent(name, JSON, data) for name, data in encode_events(decided)]

        def snapshot(self) -> bytes:
            return snapshot(self.state)

        def restore(self, state: bytes) -> None:
            try:
                self.state = restore(state)
            except ValueError as error:
                raise Err(str(error)) from None

        def view(self) -> str:
            return view(self.state)

    Aggregate.__qualname__ = Aggregate.__name__ = f"{spec.cls.__name__}Resource"
    return Aggregate


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
        from wit_world.imports.types import ApplyError, NewEvent
        from wit_world.imports.types import Rejection as WitRejection
    except ImportError:
        return cls
    if len(EXPORTED) > 1:
        raise TypeError(
            f"a component exports one aggregate, but both {EXPORTED[0].__name__} and "
            f"{cls.__name__} are exported"
        )
    resource = resource_class(spec, NewEvent, Err, ApplyError, WitRejection)
    # componentize-py looks for the resource class of interface `handler`
    # in a module named `handler`, and for the interface's class `Handler`
    # in the app module (the one that exports).
    module = types.ModuleType("handler", "The exported `aggregate` resource.")
    module.Aggregate = resource
    sys.modules["handler"] = module
    app = sys.modules[cls.__module__]
    app.Handler = type("Handler", (exports.Handler,), {"__module__": cls.__module__})
    return cls
