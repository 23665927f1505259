"""``execute`` (aether:aggregate@0.4.0) decides a command and applies the
decided events in the same call: the events are the ones the 0.2.0
``handle`` returned, byte for byte, handed back as one batch stamped as the
host will store them, and the state is the one a replay of them through
``apply`` gives."""

import copy
import unittest
from dataclasses import dataclass, field
from typing import Literal, Optional

from aether_guest import Aggregate, Rejection, u8, u64
from aether_guest._aggregate import CONTENT_TYPE, spec_of
from aether_guest._batch import read_batch
from aether_guest._codec import codec_for
from aether_guest.testing import Err, _Rejected, _Unapplied, given, write_batch

JSON = CONTENT_TYPE
TIMESTAMP_MS = 1_700_000_000_000


@dataclass
class Paid:
    """Canonical: one integer field."""

    amount: u64


@dataclass
class Named:
    """Canonical when the text is printable ASCII, JSON otherwise."""

    text: str
    count: int


@dataclass
class Tagged:
    """Never canonical: a list, an optional and a literal. A ``kind`` other
    than "a" or "b" encodes, but does not decode."""

    tags: list[u8]
    note: Optional[str]
    kind: Literal["a", "b"] = "a"


@dataclass
class Ping:
    pass


@dataclass
class Decide:
    """The events ``handle`` decides, as given (a list, one event, a tuple,
    ``None``), or a rejection."""

    what: str
    amount: u64 = 0


@dataclass
class Ledger(Aggregate):
    """``seen`` lists the applied events' reprs (a state field must cross
    the wire in snapshots); ``last`` (no field) is the last one itself."""

    total: int = 0
    seen: list[str] = field(default_factory=list)
    commands = (Decide,)
    events = (Paid, Named, Tagged, Ping)

    def handle(self, command):
        match command.what:
            case "pay":
                return [Paid(command.amount)]
            case "pay-bare":
                return Paid(command.amount)
            case "many":
                return [
                    Paid(command.amount),
                    Named("Ada", -(10**25)),
                    Named("\u00e9t\u00e9 \"q\"", 3),
                    Tagged([1, 2], None),
                    Ping(),
                ]
            case "generator":
                return (Paid(n) for n in range(1, 4))
            case "shared":
                return [SHARED]
            case "nothing":
                return []
            case "none":
                return None
            case "bad-first":
                return [Tagged([], "x", kind="c"), Paid(1)]
            case "bad-third":
                return [Paid(1), Named("b", 2), Tagged([3], None, kind="z"), Paid(4)]
            case "bad-alone":
                return [Tagged([], None, kind="c")]
            case "unknown":
                return [Decide("x")]
            case "boom":
                return [Paid(13)]
            case _:
                raise Rejection("no", f"cannot {command.what}")

    def apply(self, event):
        if isinstance(event, Paid):
            if event.amount == 13:
                raise RuntimeError("a guest bug")
            self.total += event.amount
        self.seen.append(repr(event))
        self.last = event


HISTORY = (Paid(5), Named("x", 1))
SHARED = Named("kept", 4)


def reprs(*events):
    return [repr(e) for e in events]


def command(what, amount=0):
    """``(command_type, content_type, data)``, as ``execute`` takes them."""
    return ("Decide", JSON, codec_for(Decide).to_bytes(Decide(what, amount)))


def old_handle(state, cmd):
    """What the 0.2.0 ``handle`` returned: ``[(event_type, content_type,
    data)]``, decided against a copy of the state (it did not apply)."""
    spec = spec_of(Ledger)
    decided = copy.deepcopy(state).handle(spec.decode_command(*cmd))
    return [(name, JSON, data) for name, data in spec.encode_events(decided)]


def replayed(batch, first_version):
    """A new aggregate with ``HISTORY`` and then ``batch`` replayed through
    ``apply``, as the host rebuilds it from the store."""
    scenario = given(Ledger, *HISTORY)
    assert scenario.version == first_version - 1
    if batch:
        scenario.resource.apply(batch)
    return scenario.state


def decided(batch, first_version):
    """``[(event_type, content_type, data)]`` of a batch ``execute`` gave,
    after checking every event is stamped as the host will store it."""
    events = read_batch(batch)
    stamps = [(version, timestamp) for version, *_, timestamp in events]
    expected = [(first_version + i, TIMESTAMP_MS) for i in range(len(events))]
    assert stamps == expected, (stamps, expected)
    return [(name, content_type, data) for _, name, content_type, data, _ in events]


def execute(scenario, cmd, first_version=None):
    """``(events, apply-error)`` of a command carried out: the events as
    ``decided`` reads them, the apply-error as ``(version, message)`` or
    None."""
    first_version = scenario.version + 1 if first_version is None else first_version
    decision = scenario.resource.execute(*cmd, first_version, TIMESTAMP_MS)
    if isinstance(decision, _Unapplied):
        error = decision.error
        return decided(decision.events, first_version), (error.version, error.message)
    return decided(decision.value, first_version), None


@dataclass
class Scaled:
    """Canonical, with a value derived in ``__post_init__``."""

    amount: u64

    def __post_init__(self):
        self.doubled = 2 * self.amount


@dataclass
class Doubler(Aggregate):
    """``handle`` changes its event after building it and gives it an
    attribute of its own: what ``apply`` gets must be what decoding the
    event's data gives, a new ``Scaled(amount)``."""

    doubled: int = 0
    extra: bool = False
    commands = (Ping,)
    events = (Scaled,)

    def handle(self, command):
        event = Scaled(1)
        event.amount = 5
        event.note = "not on the wire"
        return [event]

    def apply(self, event):
        self.doubled += event.doubled
        self.extra = self.extra or hasattr(event, "note")


class ExecuteTest(unittest.TestCase):
    def test_the_events_are_the_old_handles_and_the_state_a_replays(self):
        for what in ("pay", "pay-bare", "many", "generator"):
            with self.subTest(what=what):
                scenario = given(Ledger, *HISTORY)
                cmd = command(what, 7)
                expected = old_handle(scenario.state, cmd)
                batch = scenario.resource.execute(*cmd, 3, TIMESTAMP_MS).value
                self.assertIs(type(batch), bytes)
                self.assertEqual(decided(batch, 3), expected)
                # The very bytes the host would hand a replay of them.
                self.assertEqual(
                    batch,
                    write_batch(
                        (3 + i, name, content_type, data, TIMESTAMP_MS)
                        for i, (name, content_type, data) in enumerate(expected)
                    ),
                )
                self.assertEqual(scenario.state, replayed(batch, 3))
        self.assertEqual(
            old_handle(Ledger(), command("pay", 7)), [("Paid", JSON, b'{"amount":7}')]
        )

    def test_the_applied_events_are_decoded_from_their_data(self):
        scenario = given(Ledger, *HISTORY)
        execute(scenario, command("many", 2))
        applied = scenario.state.seen[len(HISTORY) :]
        self.assertEqual(
            applied,
            reprs(
                Paid(2),
                Named("Ada", -(10**25)),
                Named("\u00e9t\u00e9 \"q\"", 3),
                Tagged([1, 2], None),
                Ping(),
            ),
        )
        self.assertEqual(scenario.state.total, 7)
        # A copy made by decoding, not the object handle returned.
        execute(scenario, command("shared"))
        self.assertEqual(scenario.state.last, SHARED)
        self.assertIsNot(scenario.state.last, SHARED)

    def test_an_event_built_again_from_its_fields_is_the_decoded_one(self):
        # `Scaled` has a canonical form, so `execute` builds it again from
        # its fields instead of decoding (`Codec.to_bytes_copy`); the result must be
        # the same: __post_init__ run on the values written, nothing else.
        codec = codec_for(Scaled)
        self.assertIsNotNone(codec.to_bytes_copy)
        self.assertIsNone(codec_for(Tagged).to_bytes_copy, "no canonical form, decoded as data")
        outcome = given(Doubler).when(Ping())  # also checks the state against a replay
        self.assertEqual((outcome.state.doubled, outcome.state.extra), (10, False))
        for value in (Named("\u00e9t\u00e9 \"q\"", -(10**25)), Named("", 0), Paid(2**64 - 1)):
            with self.subTest(value=value):
                codec = codec_for(type(value))
                copy = codec.to_bytes_copy(value)[1]
                self.assertEqual(copy, codec.from_bytes(codec.to_bytes(value)))
                self.assertIsNot(copy, value)

    def test_consecutive_commands(self):
        scenario = given(Ledger, *HISTORY)
        first = execute(scenario, command("pay", 1), 3)
        self.assertEqual(first, ([("Paid", JSON, b'{"amount":1}')], None))
        # Versions and the timestamp are the call's, whatever came before.
        second = scenario.resource.execute(*command("pay", 20), 2**40, 7).value
        self.assertEqual(read_batch(second), [(2**40, "Paid", JSON, b'{"amount":20}', 7)])
        self.assertEqual(scenario.state.total, 26)
        given(Ledger).when(Decide("pay", 1)).then_events(Paid(1)).then_state(
            Ledger(1, reprs(Paid(1)))
        )

    def test_a_rejection_leaves_the_state_unchanged(self):
        for cmd in (
            command("refuse"),
            ("Decide", JSON, b'{"what":1}'),
            ("Decide", "text/plain", b"{}"),
            ("Nope", JSON, b"null"),
        ):
            with self.subTest(cmd=cmd):
                scenario = given(Ledger, *HISTORY)
                state = scenario.state
                before = copy.deepcopy(state)
                decision = scenario.resource.execute(*cmd, 3, TIMESTAMP_MS)
                self.assertIs(scenario.state, state)
                self.assertEqual(scenario.state, before)
                # decision's case `rejected`.
                self.assertIsInstance(decision, _Rejected)
                self.assertTrue(decision.value.code)
        given(Ledger).when(Decide("refuse")).then_rejected("no", "cannot refuse")

    def test_an_event_that_does_not_decode_is_an_apply_error(self):
        cases = [
            ("bad-first", 0, []),
            ("bad-third", 2, [Paid(1), Named("b", 2)]),
            ("bad-alone", 0, []),
        ]
        for what, index, applied in cases:
            with self.subTest(what=what):
                scenario = given(Ledger, *HISTORY)
                cmd = command(what)
                expected = old_handle(scenario.state, cmd)
                events, error = execute(scenario, cmd)
                # Every decided event is returned (the host stores them all).
                self.assertEqual(events, expected)
                version, message = error
                self.assertEqual(version, 3 + index)
                self.assertTrue(
                    message.startswith('cannot apply event: invalid data for "Tagged"'), message
                )
                # The events before it stay applied, none after it is.
                self.assertEqual(scenario.state.seen, reprs(*HISTORY, *applied))
                # A replay of the stored events meets the same error.
                replay = given(Ledger, *HISTORY)
                batch = write_batch(
                    (3 + i, name, content_type, data, TIMESTAMP_MS)
                    for i, (name, content_type, data) in enumerate(events)
                )
                with self.assertRaises(Err) as caught:
                    replay.resource.apply(batch)
                self.assertEqual(
                    (caught.exception.value.version, caught.exception.value.message),
                    (version, message),
                )
                self.assertEqual(replay.state, scenario.state)
        with self.assertRaisesRegex(AssertionError, "event 1 did not apply"):
            given(Ledger).when(Decide("bad-alone"))

    def test_no_events(self):
        for what in ("nothing", "none"):
            with self.subTest(what=what):
                scenario = given(Ledger, *HISTORY)
                before = copy.deepcopy(scenario.state)
                decision = scenario.resource.execute(*command(what), 3, TIMESTAMP_MS)
                self.assertEqual(decision.value, b"")
                self.assertEqual(scenario.state, before)
        given(Ledger, *HISTORY).when(Decide("nothing")).then_events().then_state(
            Ledger(5, reprs(*HISTORY))
        )

    def test_guest_bugs_raise(self):
        scenario = given(Ledger)
        with self.assertRaisesRegex(RuntimeError, "a guest bug"):
            scenario.resource.execute(*command("boom"), 1, TIMESTAMP_MS)
        with self.assertRaisesRegex(TypeError, "not one of its events"):
            scenario.resource.execute(*command("unknown"), 1, TIMESTAMP_MS)


if __name__ == "__main__":
    unittest.main()
