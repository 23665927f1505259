"""The SDK's codecs: what decodes, what is refused, and the bytes written."""

import json
import unittest
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Optional

from aether_guest import WireError, i8, u8, u64
from aether_guest._codec import codec_for, describe, parse


class Colour(str, Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Inner:
    name: str
    size: u8 = 1


@dataclass
class Everything:
    count: int
    small: i8
    big: u64
    ratio: float
    label: str
    flag: bool
    colour: Colour
    inner: Inner
    items: list[Inner]
    tags: tuple[str, ...]
    table: dict[str, int]
    maybe: Optional[int]
    choice: Literal["a", "b"]
    anything: Any
    note: str = "none"
    extra: list[int] = field(default_factory=list)


@dataclass
class Unit:
    pass


FULL = (
    b'{"count":-3,"small":-128,"big":18446744073709551615,"ratio":1.5,"label":"\xc3\xa9t\xc3\xa9",'
    b'"flag":true,"colour":"blue","inner":{"name":"x","size":255},"items":[{"name":"y","size":1}],'
    b'"tags":["t"],"table":{"k":1},"maybe":null,"choice":"b","anything":[1,{"a":null}],'
    b'"note":"none","extra":[]}'
)


@dataclass
class Counts:
    """Every field an int: written with one bytes formatting."""

    low: int
    small: i8
    big: u64


class CodecTest(unittest.TestCase):
    def test_ints_are_written_as_json_writes_them(self):
        codec = codec_for(Counts)
        for value in (Counts(0, 0, 0), Counts(-(10**30), -128, 2**64 - 1), Counts(7, 127, 1)):
            with self.subTest(value=value):
                data = codec.to_bytes(value)
                fields = {"low": value.low, "small": value.small, "big": value.big}
                self.assertEqual(data, json.dumps(fields, separators=(",", ":")).encode())
                self.assertEqual(codec.to_bytes_copy(value), (data, codec.from_bytes(data)))
        for bad in (Counts(True, 0, 0), Counts(0, 128, 0), Counts(0, 0, -1), Counts(0, 0, 1.0)):
            with self.subTest(bad=bad), self.assertRaises(TypeError):
                codec.to_bytes(bad)
            with self.subTest(bad=bad), self.assertRaises(TypeError):
                codec.to_bytes_copy(bad)

    def test_round_trip_keeps_bytes_and_values(self):
        codec = codec_for(Everything)
        value = codec.from_bytes(FULL)
        self.assertIs(value.colour, Colour.BLUE)
        self.assertEqual(value.inner, Inner("x", 255))
        self.assertEqual(value.tags, ("t",))
        self.assertEqual(value.big, 2**64 - 1)
        self.assertEqual(codec.to_bytes(value), FULL)

    def test_defaults_fill_missing_fields(self):
        value = codec_for(Inner).from_bytes(b' {"name":"x"} ')
        self.assertEqual(value, Inner("x", 1))

    def test_refused(self):
        codec = codec_for(Inner)
        for data in [
            b'{"name":1}',
            b'{"size":1}',
            b'{"name":"x","size":256}',
            b'{"name":"x","size":-1}',
            b'{"name":"x","size":1.0}',
            b'{"name":"x","size":true}',
            b'{"name":"x"} x',
            b"[]",
            b"",
            b"\xff",
            b'{"name":"x","size":NaN}',
        ]:
            with self.subTest(data=data), self.assertRaises(WireError):
                codec.from_bytes(data)

    def test_nested_errors_name_the_field(self):
        with self.assertRaises(WireError) as caught:
            codec_for(Everything).from_bytes(FULL.replace(b'"size":255', b'"size":"big"'))
        self.assertIn("field `inner`: field `size`", str(caught.exception))

    def test_a_class_without_fields(self):
        codec = codec_for(Unit)
        for data in [b"", b"null", b"{}", b" null "]:
            self.assertEqual(codec.from_bytes(data), Unit())
        self.assertEqual(codec.to_bytes(Unit()), b"null")
        with self.assertRaises(WireError):
            codec.from_bytes(b"[]")

    def test_optional_fields_may_be_absent(self):
        @dataclass
        class Note:
            text: Optional[str]
            tag: int | None

        self.assertEqual(codec_for(Note).from_bytes(b"{}"), Note(None, None))
        self.assertEqual(codec_for(Note).to_bytes(Note("a", None)), b'{"text":"a","tag":null}')

    def test_unknown_fields_are_ignored(self):
        self.assertEqual(codec_for(Inner).from_bytes(b'{"name":"x","new":1}'), Inner("x"))

    def test_events_that_do_not_match_their_annotations_do_not_encode(self):
        for bad in [Inner("x", 256), Inner(7), Inner("x", True)]:
            with self.subTest(bad=bad), self.assertRaises(TypeError):
                codec_for(Inner).to_bytes(bad)

    def test_big_integers_keep_every_digit(self):
        self.assertEqual(parse(b"9007199254740993"), 9007199254740993)

    def test_unsupported_types_are_refused_up_front(self):
        @dataclass
        class Bad:
            when: complex

        with self.assertRaises(TypeError):
            codec_for(Bad)

    def test_descriptions_are_stable(self):
        self.assertEqual(describe(Inner), "Inner{name:str,size:int[0,255]}")


if __name__ == "__main__":
    unittest.main()
