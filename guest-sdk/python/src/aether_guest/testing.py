"""Given/when/then tests for aggregates, under plain CPython (no Wasm).

.. code-block:: python

    from aether_guest.testing import given

    def test_withdraw_within_the_balance():
        (given(BankAccount, Opened("Ada"), Deposited(100))
            .when(Withdraw(30))
            .then_events(Withdrawn(30))
            .then_view({"status": "open", "owner": "Ada", "balance": 70}))

Everything crosses the same code the component runs (``_component``), with
stand-ins for the generated WIT types, exactly as the host calls it: given
events are encoded to JSON bytes and replayed through ``apply`` (one
batch); the command is encoded and passed to ``execute``, which decides it
and applies the decided events (decoded from the JSON it just encoded, or
built again with the same values) in the same call. The helpers also check that the state after a command
equals a replay of its events (so ``handle`` did not change it). Failures
raise ``AssertionError``, so the helpers work in ``unittest`` and pytest
alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ._aggregate import CONTENT_TYPE, Rejection, spec_of, type_name
from ._codec import codec_for
from ._batch import read_batch, write_batch
from ._component import resource_class

__all__ = ["given", "given_state", "Scenario", "Outcome", "Err", "write_batch"]

TIMESTAMP_MS = 1_700_000_000_000


@dataclass
class _NewEvent:
    """A decided event, read back from the batch ``execute`` gave."""

    event_type: str
    content_type: str
    data: bytes


@dataclass
class _ApplyError:
    version: int
    message: str


@dataclass
class _WitRejection:
    code: str
    message: str


@dataclass
class _Events:
    """``decision``'s case ``events``."""

    value: bytes


@dataclass
class _Rejected:
    """``decision``'s case ``rejected``."""

    value: _WitRejection


@dataclass
class _Unapplied:
    """``decision``'s case ``unapplied`` (with its record's fields)."""

    events: bytes
    error: _ApplyError


class Err(Exception):
    """Stand-in for componentize-py's ``Err``: what a method returned as an error."""

    def __init__(self, value) -> None:
        super().__init__(value)
        self.value = value


_RESOURCES: dict = {}


def _resource(cls):
    resource = _RESOURCES.get(cls)
    if resource is None:
        resource = _RESOURCES[cls] = resource_class(
            spec_of(cls), Err, _ApplyError, _WitRejection, _Events, _Rejected, _Unapplied
        )
    return resource


class Scenario:
    """An aggregate after its given events, ready for one command."""

    def __init__(self, cls, events=()) -> None:
        self.cls = cls
        self.spec = spec_of(cls)
        self.resource = _resource(cls)("test")
        self.version = 0
        if events:
            self.apply(events)

    def apply(self, events) -> "Scenario":
        """Applies more events (dataclass instances) through the wire."""
        batch = []
        for event in events:
            name = type_name(type(event))
            if name not in self.spec.events:
                raise AssertionError(f"{event!r} is not an event of {self.cls.__name__}")
            self.version += 1
            data = codec_for(type(event)).to_bytes(event)
            batch.append((self.version, name, CONTENT_TYPE, data, TIMESTAMP_MS))
        self._apply_raw(write_batch(batch))
        return self

    def apply_raw(self, event_type: str, data, content_type: str = CONTENT_TYPE):
        """Applies one event given as bytes (or text); returns the
        apply-error message, or None if it applied."""
        self.version += 1
        data = data.encode() if isinstance(data, str) else bytes(data)
        try:
            self._apply_raw(
                write_batch([(self.version, event_type, content_type, data, TIMESTAMP_MS)])
            )
        except AssertionError as error:
            return error.args[1]
        return None

    def _apply_raw(self, batch) -> None:
        try:
            self.resource.apply(batch)
        except Err as err:
            raise AssertionError(
                f"event {err.value.version} did not apply: {err.value.message}",
                err.value.message,
            ) from None

    @property
    def state(self):
        return self.resource.state

    def when(self, command) -> "Outcome":
        """Handles a command (a dataclass instance) through the wire."""
        name = type_name(type(command))
        if name not in self.spec.commands:
            raise AssertionError(f"{command!r} is not a command of {self.cls.__name__}")
        data = codec_for(type(command)).to_bytes(command)
        return self.when_raw(name, data)

    def when_raw(self, command_type: str, data, content_type: str = CONTENT_TYPE) -> "Outcome":
        """Handles a command given as its type name and bytes (or text, or a
        JSON-ready value), e.g. to test what a malformed command gets."""
        if not isinstance(data, (bytes, bytearray, str)):
            data = json.dumps(data, separators=(",", ":"))
        data = data.encode() if isinstance(data, str) else bytes(data)
        before = self.resource.snapshot()
        first_version = self.version + 1
        decision = self.resource.execute(
            command_type, content_type, data, first_version, TIMESTAMP_MS
        )
        if isinstance(decision, _Rejected):
            return self._rejected(decision.value, before)
        unapplied = isinstance(decision, _Unapplied)
        wire = self._read_decided(decision.events if unapplied else decision.value, first_version)
        self.version += len(wire)
        if unapplied:
            error = decision.error
            raise AssertionError(
                f"event {error.version} did not apply: {error.message}", error.message
            )
        self._check_replay(before, first_version, wire)
        events = [self.spec.event_decoders[new.event_type](new.data) for new in wire]
        return Outcome(self, events, None, wire)

    def _rejected(self, rejection, before: bytes) -> "Outcome":
        if self.resource.snapshot() != before:
            raise AssertionError(
                f"{self.cls.__name__}.handle changed the state, then rejected the "
                "command: it must only decide, and let apply change the state"
            )
        return Outcome(self, [], Rejection(rejection.code, rejection.message), None)

    @staticmethod
    def _read_decided(batch, first_version: int) -> list:
        """The decided events of ``execute``'s batch, checked as the host
        checks them (layout, versions from ``first_version``, the command's
        timestamp)."""
        wire = []
        for index, (version, event_type, content_type, data, stamp) in enumerate(
            read_batch(batch)
        ):
            if (version, stamp) != (first_version + index, TIMESTAMP_MS):
                raise AssertionError(
                    f"execute stamped decided event {index} with version {version} and "
                    f"timestamp {stamp}, not {first_version + index} and {TIMESTAMP_MS}"
                )
            wire.append(_NewEvent(event_type, content_type, data))
        return wire

    def _check_replay(self, before: bytes, first_version: int, wire) -> None:
        """Checks that the state equals the state before the command with
        the decided events replayed through ``apply``."""
        replay = _resource(self.cls)("test")
        try:
            replay.restore(before)
        except Err as err:
            raise AssertionError(f"the state does not restore: {err.value}") from None
        if wire:
            replay.apply(
                write_batch(
                    (first_version + i, e.event_type, e.content_type, e.data, TIMESTAMP_MS)
                    for i, e in enumerate(wire)
                )
            )
        if replay.snapshot() != self.resource.snapshot():
            raise AssertionError(
                f"{self.cls.__name__}.handle changed the state: it must only decide, and "
                "let apply change the state (after the command, the state differs from "
                "a replay of its events)"
            )


def given(cls, *events) -> Scenario:
    """The aggregate ``cls`` after ``events`` (none: a new aggregate)."""
    return Scenario(cls, events)


def given_state(state) -> Scenario:
    """An aggregate in ``state`` (an instance of the aggregate class),
    restored through its snapshot."""
    scenario = Scenario(type(state))
    try:
        scenario.resource.restore(scenario.spec.snapshot(state))
    except Err as err:
        raise AssertionError(f"the state does not restore: {err.value}") from None
    return scenario


class Outcome:
    """What a command did: ``events`` (decoded again from their bytes) or
    ``rejection``; ``wire`` holds the raw new events."""

    def __init__(self, scenario: Scenario, events, rejection, wire) -> None:
        self.scenario = scenario
        self.events = events
        self.rejection = rejection
        self.wire = wire

    @property
    def state(self):
        """The state after the decided events were applied."""
        return self.scenario.state

    def then_events(self, *expected) -> "Outcome":
        if self.rejection is not None:
            raise AssertionError(f"expected events {list(expected)!r}, got {self.rejection!r}")
        if list(expected) != self.events:
            raise AssertionError(f"expected events {list(expected)!r}, got {self.events!r}")
        return self

    def then_rejected(self, code: str, message: str | None = None) -> "Outcome":
        if self.rejection is None:
            raise AssertionError(f"expected the rejection {code!r}, got events {self.events!r}")
        if self.rejection.code != code:
            raise AssertionError(f"expected the rejection {code!r}, got {self.rejection!r}")
        if message is not None and self.rejection.message != message:
            raise AssertionError(
                f"expected the message {message!r}, got {self.rejection.message!r}"
            )
        return self

    def then_state(self, check) -> "Outcome":
        """``check`` is the expected state, or a function that asserts on it."""
        if callable(check) and not isinstance(check, type(self.state)):
            check(self.state)
        elif check != self.state:
            raise AssertionError(f"expected the state {check!r}, got {self.state!r}")
        return self

    def then_view(self, expected) -> "Outcome":
        actual = json.loads(self.scenario.resource.view())
        if actual != expected:
            raise AssertionError(f"expected the view {expected!r}, got {actual!r}")
        return self
