"""The apply loop reads the batch ``apply`` receives (aether:aggregate@0.2.0)
in place, and turns a batch that breaks the layout into an apply-error."""

import struct
import unittest
from dataclasses import dataclass, field

from aether_guest import Aggregate, u64
from aether_guest.testing import Err, given, write_batch

JSON = "application/json"


@dataclass
class Added:
    amount: u64


@dataclass
class Noted:
    text: str


@dataclass
class Reset:
    pass


@dataclass
class Counter(Aggregate):
    value: int = 0
    notes: list = field(default_factory=list)
    events = (Added, Noted, Reset)
    commands = (Reset,)

    def handle(self, command):
        return [Reset()]

    def apply(self, event) -> None:
        if isinstance(event, Added):
            self.value += event.amount
        elif isinstance(event, Noted):
            self.notes.append(event.text)
        else:
            self.value = 0


def apply(counter, batch):
    """``(version, message)`` of the apply-error, or None if the batch applied."""
    try:
        counter.resource.apply(batch)
    except Err as err:
        return err.value.version, err.value.message
    return None


class BatchTest(unittest.TestCase):
    def test_events_are_read_in_place(self):
        counter = given(Counter)
        batch = write_batch([
            (2**60, "Added", JSON, b'{"amount":18446744073709551615}', 0),
            (2**60 + 1, "Noted", JSON, '{"text":"\u00e9t\u00e9"}'.encode(), 0),
            (2**60 + 2, "Noted", "Application/JSON; charset=utf-8", b' {"text":"x"}', 0),
            (2**60 + 3, "Reset", JSON, b"", 0),
            (2**60 + 4, "Added", JSON, b'{"amount":2}', 0),
        ])
        self.assertIsNone(apply(counter, batch))
        self.assertEqual(counter.state.value, 2)
        self.assertEqual(counter.state.notes, ["\u00e9t\u00e9", "x"])
        # An empty batch (the host never sends one) applies nothing.
        self.assertIsNone(apply(counter, b""))
        self.assertEqual(counter.state.value, 2)

    def test_names_are_matched_exactly(self):
        for name in ["Adder", "Xdded", "Added\0", "added"]:
            with self.subTest(name=name):
                counter = given(Counter)
                error = apply(counter, write_batch([(9, name, JSON, b'{"amount":1}', 0)]))
                self.assertEqual(error[0], 9)
                self.assertIn("unknown type", error[1])

    def test_a_failed_event_names_its_version_and_stops_the_batch(self):
        counter = given(Counter)
        batch = write_batch([
            (1, "Added", JSON, b'{"amount":7}', 0),
            (2, "Added", "text/plain", b'{"amount":1}', 0),
            (3, "Added", JSON, b'{"amount":1}', 0),
        ])
        version, message = apply(counter, batch)
        self.assertEqual(version, 2)
        self.assertIn('unsupported content type "text/plain"', message)
        self.assertEqual(counter.state.value, 7)

    def test_a_malformed_batch_is_an_apply_error_not_a_crash(self):
        good = (41, "Added", JSON, b'{"amount":1}', 0), (42, "Added", JSON, b'{"amount":1}', 0)
        two = write_batch(good)
        first = len(two) // 2

        def with_length(at, value):
            copy = bytearray(two)
            struct.pack_into("<I", copy, at, value)
            return bytes(copy)

        not_utf8 = bytearray(two)
        not_utf8[first + 28] = 0xFF
        for batch, reason in [
            (two[: first + 27], "an event header is cut short"),
            (two[:-1], "an event's lengths run past the end of the batch"),
            (with_length(first + 24, 0xFFFFFFFF), "an event's lengths run past the end of the batch"),
            (with_length(first + 16, 0xFFFFFFF0), "an event's lengths run past the end of the batch"),
            (bytes(not_utf8), "a type name is not UTF-8"),
        ]:
            with self.subTest(reason=reason, size=len(batch)):
                counter = given(Counter)
                self.assertEqual(
                    apply(counter, batch),
                    (42, f"the host sent a malformed batch (byte {first}): {reason}"),
                )
                self.assertEqual(counter.state.value, 1, "the event before it stays applied")
        # Cut short at the very first event: the version after none read is 1.
        counter = given(Counter)
        self.assertEqual(
            apply(counter, two[:10]),
            (1, "the host sent a malformed batch (byte 0): an event header is cut short"),
        )
        self.assertEqual(counter.state.value, 0)


if __name__ == "__main__":
    unittest.main()
