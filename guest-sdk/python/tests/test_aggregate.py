"""Aggregates through the same glue the component runs (aether_guest.testing)."""

import unittest
from dataclasses import dataclass

from aether_guest import Aggregate, Rejection, derived_schema, export, u64
from aether_guest._aggregate import spec_of
from aether_guest.testing import Err, given, given_state


@dataclass
class Add:
    amount: u64


@dataclass
class Reset:
    pass


@dataclass
class Added:
    amount: u64


@dataclass
class WasReset:
    type_name = "Reset"  # a wire name other than the class name


@dataclass
class Counter(Aggregate):
    value: u64 = 0

    def handle(self, command: Add | Reset):
        if isinstance(command, Reset):
            return [WasReset()]
        if command.amount == 0:
            raise Rejection("invalid-amount", "add more than 0")
        return Added(command.amount)  # a single event is fine too

    def apply(self, event: Added | WasReset) -> None:
        if isinstance(event, Added):
            self.value += event.amount
        else:
            self.value = 0


export(Counter)


@dataclass
class Declared(Aggregate):
    commands = (Add,)
    events = (Added,)
    state_schema = "2"
    total: int = 0

    def handle(self, command):
        self.total += 1  # a bug: handle must not change the state
        return [Added(command.amount)]

    def apply(self, event):
        pass


class AggregateTest(unittest.TestCase):
    def test_given_when_then(self):
        given(Counter, Added(2)).when(Add(3)).then_events(Added(3)).then_state(Counter(5))
        given(Counter, Added(2)).when(Add(0)).then_rejected("invalid-amount", "add more than 0")
        given(Counter, Added(2)).when(Reset()).then_events(WasReset()).then_view({"value": 0})

    def test_handle_may_return_any_iterable_of_events(self):
        spec = spec_of(Counter)
        self.assertEqual(spec.encode_events(None), [])
        self.assertEqual(
            spec.encode_events(e for e in [Added(1), WasReset()]),
            [("Added", b'{"amount":1}'), ("Reset", b"null")],
        )
        with self.assertRaises(TypeError):
            spec.encode_events([Add(1)])

    def test_wire_names(self):
        outcome = given(Counter).when(Reset())
        self.assertEqual((outcome.wire[0].event_type, outcome.wire[0].data), ("Reset", b"null"))

    def test_sdk_rejections(self):
        counter = given(Counter)
        counter.when_raw("Add", b'{"amount":1}', "text/plain").then_rejected(
            "unsupported-content-type"
        )
        counter.when_raw("Add", b'{"amount":1}', "Application/JSON; charset=utf-8").then_events(
            Added(1)
        )
        counter.when_raw("Nope", b"null").then_rejected(
            "malformed-command", 'unknown type "Nope", expected one of "Add", "Reset"'
        )

    def test_apply_errors_stop_the_batch(self):
        counter = given(Counter, Added(1))
        message = counter.apply_raw("Added", b'{"amount":"x"}')
        self.assertTrue(message.startswith('cannot apply event: invalid data for "Added"'))
        self.assertIn("unknown type", counter.apply_raw("Gone", b"null"))
        self.assertIn("content type", counter.apply_raw("Added", b"{}", "text/csv"))
        self.assertEqual(counter.state, Counter(1))

    def test_snapshots_and_restore(self):
        scenario = given_state(Counter(41))
        self.assertEqual(scenario.resource.snapshot(), b'{"value":41}')
        scenario.when(Add(1)).then_state(Counter(42))
        with self.assertRaises(Err) as caught:
            scenario.resource.restore(b'{"value":-1}')
        self.assertTrue(caught.exception.value.startswith("cannot restore the snapshot:"))
        self.assertEqual(scenario.state, Counter(42))

    def test_state_schema(self):
        self.assertEqual(spec_of(Counter).state_schema, derived_schema(Counter))
        self.assertTrue(derived_schema(Counter).startswith("py-"))
        self.assertEqual(spec_of(Declared).state_schema, "2")

    def test_handle_must_not_change_the_state(self):
        with self.assertRaisesRegex(AssertionError, "changed the state"):
            given(Declared).when(Add(1))

    def test_classes_that_cannot_be_aggregates(self):
        class NotADataclass(Aggregate):
            pass

        with self.assertRaises(TypeError):
            export(NotADataclass)

        @dataclass
        class NoDefault(Aggregate):
            value: int

            def handle(self, command: Add):
                return []

            def apply(self, event: Added):
                pass

        with self.assertRaisesRegex(TypeError, "needs a default"):
            export(NoDefault)


if __name__ == "__main__":
    unittest.main()
