"""The bank-account aggregate as a WebAssembly component, built with
componentize-py against ``wit/aggregate.wit`` (world ``aggregate-component``).

Build it with ``cargo xtask`` (see ``xtask/src/guests/python.rs``), which runs::

    componentize-py -d wit -w aggregate-component componentize app -o bank_account_py.wasm

This module adapts the generated bindings to :mod:`bank_account`, where the
rules and the wire format live. componentize-py looks up an exported
interface's resource in a module named after the interface, so ``handler.py``
re-exports :class:`Aggregate` from here.

Failure modes, as in the Rust SDK: a payload that does not decode is a value
(an ``apply-error`` or a ``malformed-command`` rejection); an exception that
escapes a method is a guest bug and traps, which makes the host drop the
whole instance.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import handler
from wit_world.imports.types import ApplyError, NewEvent
from wit_world.imports.types import Rejection as WitRejection

import bank_account


class Handler(exports.Handler):
    """The exported ``handler`` interface: it has only the resource below."""


class Aggregate(handler.Aggregate):
    """One live aggregate: its state stays in guest memory between calls."""

    def __init__(self, id: str) -> None:
        # The id names the stream (the host's business); the state does not
        # depend on it, which keeps replay a pure function of the events.
        self._account = bank_account.BankAccount()

    def apply(self, events):
        account = self._account
        for event in events:
            try:
                account.apply(event.event_type, event.content_type, event.data)
            except bank_account.ApplyFailure as failure:
                # The events before it stay applied, none after it is.
                raise Err(ApplyError(event.version, str(failure))) from None

    def handle(self, command):
        try:
            decided = self._account.handle(
                command.command_type, command.content_type, command.data
            )
        except bank_account.Rejection as rejection:
            raise Err(WitRejection(rejection.code, rejection.message)) from None
        return [NewEvent(*event) for event in decided]

    def snapshot(self) -> bytes:
        return self._account.snapshot()

    def restore(self, state: bytes) -> None:
        try:
            self._account.restore(state)
        except ValueError as error:
            raise Err(str(error)) from None

    def view(self) -> str:
        return self._account.view()
