"""The generated decoders and apply loop (fast paths included) read exactly
what the JSON path reads, and refuse exactly what it refuses."""

import unittest
from dataclasses import dataclass, field

from aether_guest import Aggregate, WireError, i8, u64
from aether_guest._codec import codec_for, parse
from aether_guest.testing import given


@dataclass
class Noted:
    text: str
    count: u64
    delta: i8
    plain: int


@dataclass
class Ping:
    pass


@dataclass
class Paid:
    """One unsigned integer field, the commonest event shape."""

    amount: u64


@dataclass
class Checked:
    """A class whose construction does more than set its fields: the apply
    loop must build it by calling it."""

    amount: u64

    def __post_init__(self):
        self.doubled = 2 * self.amount


@dataclass(frozen=True)
class Frozen:
    amount: u64


@dataclass
class Log(Aggregate):
    seen: list = field(default_factory=list)
    events = (Noted, Ping, Paid, Checked, Frozen)
    commands = (Ping,)

    def handle(self, command):
        return []

    def apply(self, event) -> None:
        self.seen.append(event)


CASES = [
    b'{"text":"Ada","count":7,"delta":-3,"plain":-12}',
    b'{"text":"","count":0,"delta":127,"plain":0}',
    b'{"text":"A]\\"b","count":1,"delta":0,"plain":1}',
    '{"text":"\u00e9t\u00e9","count":1,"delta":0,"plain":1}'.encode(),
    b'{"text":"x","count":18446744073709551615,"delta":-128,"plain":99999999999999999999999}',
    b'{"text":"x","count":18446744073709551616,"delta":0,"plain":0}',
    b'{"text":"x","count":99999999999999999999,"delta":0,"plain":0}',
    b'{"text":"x","count":1,"delta":128,"plain":0}',
    b'{"text":"x","count":-1,"delta":0,"plain":0}',
    b'{"text":"x","count":01,"delta":0,"plain":0}',
    b'{"text":"x","count":1.0,"delta":0,"plain":0}',
    b'{"count":1,"text":"x","delta":0,"plain":0}',
    b' {"text":"x","count":1,"delta":0,"plain":0} ',
    b'{"text":"x","count":1,"delta":0}',
    b'{"text":"x","count":1,"delta":0,"plain":0,"more":[1]}',
    b'{"text":"\x01","count":1,"delta":0,"plain":0}',
    b'{"text":"x","count":1,"delta":0,"plain":0}x',
    b"\xff",
    b"",
]

AMOUNTS = [
    b'{"amount":0}',
    b'{"amount":7}',
    b'{"amount":1234567890}',
    b'{"amount":18446744073709551615}',
    b'{"amount":18446744073709551616}',
    b'{"amount":99999999999999999999}',
    b'{"amount":100000000000000000000}',
    b'{"amount":00}',
    b'{"amount":01}',
    b'{"amount":-1}',
    b'{"amount":-0}',
    b'{"amount":+1}',
    b'{"amount":1.0}',
    b'{"amount":1e3}',
    b'{"amount":1_0}',
    b'{"amount": 1}',
    b'{"amount":1 }',
    b'{"amount":}',
    b'{"amount":"1"}',
    '{"amount":\u0661}'.encode(),
    b'{"amount":1}x',
    b'{"amount":1} ',
    b'{"amount":1,"more":2}',
    b'{"amount":1}}',
    b'{"amount":1',
    b'{"amount"',
    b'{"Amount":1}',
    b"{}",
    b"",
]


class ApplyLoopTest(unittest.TestCase):
    def test_one_integer_field_agrees_with_the_decoder(self):
        for cls in (Paid, Checked, Frozen):
            codec = codec_for(cls)
            for data in AMOUNTS:
                with self.subTest(cls=cls.__name__, data=data):
                    try:
                        expected = codec.from_value(parse(data))
                    except WireError:
                        expected = None
                    log = given(Log)
                    error = log.apply_raw(cls.__name__, data)
                    if expected is None:
                        self.assertIsNotNone(error)
                        self.assertEqual(log.state.seen, [])
                    else:
                        self.assertIsNone(error)
                        self.assertEqual(log.state.seen, [expected])
                        self.assertIs(type(log.state.seen[0].amount), int)
                        if cls is Checked:
                            self.assertEqual(log.state.seen[0].doubled, 2 * expected.amount)

    def test_the_loop_agrees_with_the_decoder(self):
        codec = codec_for(Noted)
        for data in CASES:
            with self.subTest(data=data):
                # The reference: the JSON path alone, without fast paths.
                try:
                    expected = codec.from_value(parse(data))
                except WireError:
                    expected = None
                try:
                    self.assertEqual(codec.from_bytes(data), expected)
                except WireError:
                    self.assertIsNone(expected)
                log = given(Log)
                error = log.apply_raw("Noted", data)
                if expected is None:
                    self.assertIsNotNone(error)
                    self.assertEqual(log.state.seen, [])
                else:
                    self.assertIsNone(error)
                    self.assertEqual(log.state.seen, [expected])
                    self.assertEqual([type(v) for v in vars(log.state.seen[0]).values()],
                                     [str, int, int, int])

    def test_events_without_fields(self):
        for data, ok in [(b"null", True), (b"", True), (b"{}", True), (b" null", True),
                         (b"[]", False), (b"nul", False)]:
            with self.subTest(data=data):
                log = given(Log)
                self.assertEqual(log.apply_raw("Ping", data) is None, ok)
                self.assertEqual(log.state.seen, [Ping()] if ok else [])

    def test_a_batch_stops_at_the_first_bad_event(self):
        log = given(Log, Ping(), Noted("a", 1, 0, 0))
        self.assertIsNotNone(log.apply_raw("Noted", b'{"text":1}'))
        self.assertEqual(log.state.seen, [Ping(), Noted("a", 1, 0, 0)])


if __name__ == "__main__":
    unittest.main()
