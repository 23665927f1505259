"""The apply loop's runs (one ``findall`` for many canonical events) read
exactly what reading the batch event by event with the general decoder
reads: the same events, the same apply-error at the same version, for
batches that mix canonical events with every other kind, and for batches
that break the layout inside a run."""

import random
import struct
import unittest
from dataclasses import dataclass, field

from aether_guest import Aggregate, u64
from aether_guest._aggregate import spec_of
from aether_guest._batch import HEADER_LEN, LENGTHS, malformed, version_at
from aether_guest._codec import i8
from aether_guest.testing import Err, given, write_batch
from test_batch import JSON, Added, Noted, Reset


@dataclass
class Wide:
    """Eleven fields: the run's groups past the tenth are read too."""

    a: int
    b: i8
    c: u64
    d: int
    e: int
    f: int
    g: int
    h: int
    i: int
    j: str
    k: int


@dataclass
class Listed:
    """Never canonical (a list): always the per-event path."""

    items: list[int]


@dataclass
class Log(Aggregate):
    seen: list = field(default_factory=list)
    events = (Added, Noted, Reset, Wide, Listed)
    commands = (Reset,)

    def handle(self, command):
        return []

    def apply(self, event) -> None:
        self.seen.append(event)


@dataclass
class Pings(Aggregate):
    """One event class without fields: a run's tuples have its one length
    group and the rest of the batch's empty one."""

    count: int = 0
    events = (Reset,)
    commands = (Reset,)

    def handle(self, command):
        return []

    def apply(self, event) -> None:
        self.count += 1


WIDE = b'{"a":1,"b":-2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":"ten","k":11}'

# (event type, content type, data): canonical ones and every other kind.
POOL = [
    ("Added", JSON, b'{"amount":0}'),
    ("Added", JSON, b'{"amount":7}'),
    ("Added", JSON, b'{"amount":18446744073709551615}'),
    ("Added", JSON, b'{"amount":18446744073709551616}'),  # canonical shape, out of range
    ("Added", JSON, b'{"amount":1} '),  # a match that is a prefix of the data
    ("Added", JSON, b' {"amount":3}'),
    ("Added", JSON, b'{"amount":01}'),
    ("Added", "application/json; charset=utf-8", b'{"amount":5}'),
    ("Added", "text/plain", b'{"amount":5}'),
    ("Noted", JSON, b'{"text":"abc"}'),
    ("Noted", JSON, b'{"text":""}'),
    ("Noted", JSON, b'{"text":"' + b"x" * 300 + b'"}'),  # data over 255 bytes
    ("Noted", JSON, b'{"text":"' + b"y" * 242 + b'"}'),  # 254 bytes
    ("Noted", JSON, b'{"text":"a\\"b"}'),
    ("Noted", JSON, '{"text":"\u00e9t\u00e9"}'.encode()),
    ("Reset", JSON, b"null"),
    ("Reset", JSON, b""),
    ("Reset", JSON, b"{}"),
    ("Reset", JSON, b"nul"),
    ("Wide", JSON, WIDE),
    ("Wide", JSON, WIDE.replace(b'"b":-2', b'"b":-200')),  # out of range for i8
    ("Listed", JSON, b'{"items":[1,2]}'),
    ("Gone", JSON, b"null"),
]
CANONICAL = [entry for entry in POOL if entry[0] != "Gone" and entry[1] == JSON and entry[2] in (
    b'{"amount":0}', b'{"amount":7}', b'{"text":"abc"}', b"null", WIDE)]


def reference(cls, batch):
    """What the loop must do, read event by event with the general decoder:
    ``(events, apply-error or None)``."""
    spec = spec_of(cls)
    seen, at, prev = [], 0, -1
    while at < len(batch):
        if len(batch) - at < HEADER_LEN:
            return seen, malformed(batch, prev, at, "an event header is cut short")
        type_len, content_len, data_len = LENGTHS(batch, at)
        start = at + HEADER_LEN
        data_start = start + type_len + content_len
        stop = data_start + data_len
        if stop > len(batch):
            return seen, malformed(
                batch, prev, at, "an event's lengths run past the end of the batch")
        try:
            event_type = batch[start:start + type_len].decode()
            content_type = batch[start + type_len:data_start].decode()
        except UnicodeDecodeError:
            return seen, malformed(batch, prev, at, "a type name is not UTF-8")
        try:
            seen.append(spec.decode_event(event_type, content_type, batch[data_start:stop]))
        except ValueError as error:
            return seen, (version_at(batch, at), str(error))
        prev, at = at, stop
    return seen, None


def applied(cls, batch):
    """``(events, apply-error or None)`` as the apply loop reads the batch."""
    scenario = given(cls)
    try:
        scenario.resource.apply(batch)
        error = None
    except Err as err:
        error = err.value.version, err.value.message
    state = scenario.state
    return (state.seen if cls is Log else state.count), error


def batch_of(entries, first=1):
    return write_batch([(first + index, *entry, 0) for index, entry in enumerate(entries)])


class ApplyRunsTest(unittest.TestCase):
    def check(self, batch):
        expected, error = reference(Log, batch)
        self.assertEqual(applied(Log, batch), (expected, error))

    def test_mixed_batches_read_as_event_by_event(self):
        rng = random.Random(17)
        for round in range(400):
            pool = CANONICAL if round % 4 == 0 else POOL
            entries = [rng.choice(pool) for _ in range(rng.randint(1, 40))]
            with self.subTest(round=round):
                self.check(batch_of(entries, rng.randint(1, 2**40)))

    def test_canonical_batches_apply_whole(self):
        entries = CANONICAL * 50
        expected, error = reference(Log, batch_of(entries))
        self.assertIsNone(error)
        self.assertEqual(len(expected), len(entries))
        self.assertEqual(applied(Log, batch_of(entries)), (expected, None))
        # They are read by runs: the run's pattern matches every one of them.
        run = given(Log).resource.apply.__globals__["_run"]
        self.assertEqual(len(CANONICAL), 5)
        self.assertEqual(len(run(batch_of(entries), 0)), len(entries))

    def test_runs_come_back_after_many_events_they_cannot_read(self):
        # More non-canonical events in a row than the loop tries runs for,
        # then canonical ones: everything is still read, in order.
        slow = [("Listed", JSON, b'{"items":[%d]}' % n) for n in range(20)]
        fast = [("Added", JSON, b'{"amount":%d}' % n) for n in range(20)]
        for entries in (slow + fast, fast + slow + fast, (fast[:1] + slow[:1]) * 15):
            with self.subTest(size=len(entries)):
                seen, error = applied(Log, batch_of(entries))
                self.assertIsNone(error)
                self.assertEqual(seen, reference(Log, batch_of(entries))[0])
                self.assertEqual(len(seen), len(entries))

    def test_a_batch_that_breaks_its_layout_inside_a_run(self):
        rng = random.Random(5)
        entries = CANONICAL * 4
        good = batch_of(entries, 100)
        offsets, at = [], 0
        while at < len(good):
            offsets.append(at)
            type_len, content_len, data_len = LENGTHS(good, at)
            at += HEADER_LEN + type_len + content_len + data_len
        for round in range(300):
            batch = bytearray(good)
            at = rng.choice(offsets)
            kind = round % 4
            if kind == 0:  # the data's length off by a little either way
                off = rng.choice([-2, -1, 1, 2, 300])
                struct.pack_into("<I", batch, at + 24, LENGTHS(good, at)[2] + off)
            elif kind == 1:  # a type name's length
                struct.pack_into("<I", batch, at + 16, LENGTHS(good, at)[0] + rng.choice([-1, 1]))
            elif kind == 2:  # cut anywhere
                del batch[rng.randrange(1, len(batch)):]
            else:  # a byte of a header's lengths or of the names
                batch[at + rng.randrange(16, 40)] ^= 1 << rng.randrange(8)
            with self.subTest(round=round, kind=kind):
                self.check(bytes(batch))

    def test_an_aggregate_with_one_event_class_without_fields(self):
        null, empty, braces = (("Reset", JSON, data) for data in (b"null", b"", b"{}"))
        for entries in ([null] * 30, [null, empty, braces] * 5):
            with self.subTest(size=len(entries)):
                self.assertEqual(applied(Pings, batch_of(entries)), (len(entries), None))
        count, error = applied(Pings, batch_of([null] * 3 + [("Reset", JSON, b"[]")]))
        self.assertEqual((count, error[0]), (3, 4))


if __name__ == "__main__":
    unittest.main()
