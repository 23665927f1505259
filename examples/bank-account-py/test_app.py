"""Unit tests for the Python bank account, under plain CPython:

    cd examples/bank-account-py && python3 -m unittest -v

The generated bindings (``wit_world``, ``componentize_py_types``) exist only
inside componentize-py, so small stand-ins with the same shapes are put in
``sys.modules`` before ``app`` is imported. The same behaviour is checked on
the built component by ``aether test <component> tests/scenarios/bank-account``.
"""

import sys
import types
import unittest
from dataclasses import dataclass


def _install_binding_stubs():
    if "wit_world" in sys.modules:
        return

    @dataclass(frozen=True)
    class Err(Exception):
        value: object

    @dataclass
    class NewEvent:
        event_type: str
        content_type: str
        data: bytes

    @dataclass
    class Rejection:
        code: str
        message: str

    @dataclass
    class ApplyError:
        version: int
        message: str

    def module(name, **attributes):
        created = types.ModuleType(name)
        created.__dict__.update(attributes)
        sys.modules[name] = created
        return created

    module("componentize_py_types", Err=Err)
    module("wit_world")
    module("wit_world.exports", Handler=type("Handler", (), {}))
    module("wit_world.exports.handler", Aggregate=type("Aggregate", (), {}))
    module("wit_world.imports")
    module(
        "wit_world.imports.types",
        NewEvent=NewEvent,
        Rejection=Rejection,
        ApplyError=ApplyError,
    )


_install_binding_stubs()

import app  # noqa: E402
import bank_account  # noqa: E402
import wire  # noqa: E402
from componentize_py_types import Err  # noqa: E402

JSON = "application/json"
U64_MAX = 2**64 - 1


@dataclass
class Event:
    version: int
    event_type: str
    content_type: str
    data: bytes
    timestamp_ms: int = 1_700_000_000_000


@dataclass
class Command:
    command_type: str
    content_type: str
    data: bytes


def events(*pairs):
    return [Event(i + 1, t, JSON, d.encode()) for i, (t, d) in enumerate(pairs)]


OPENED = ("Opened", '{"owner":"Ada"}')


def given(*pairs):
    aggregate = app.Aggregate("acc-1")
    aggregate.apply(events(*pairs))
    return aggregate


def open_with(balance):
    return given(OPENED, ("Deposited", f'{{"amount":{balance}}}'))


class Scenario(unittest.TestCase):
    def decide(self, aggregate, command_type, data, content_type=JSON):
        data = data.encode() if isinstance(data, str) else data
        return aggregate.handle(Command(command_type, content_type, data))

    def assert_events(self, aggregate, command_type, data, expected):
        decided = self.decide(aggregate, command_type, data)
        self.assertEqual(
            [(e.event_type, e.content_type, e.data.decode()) for e in decided],
            [(t, JSON, d) for t, d in expected],
        )

    def assert_rejected(self, aggregate, command_type, data, code, message=None, content_type=JSON):
        with self.assertRaises(Err) as caught:
            self.decide(aggregate, command_type, data, content_type)
        rejection = caught.exception.value
        self.assertEqual(rejection.code, code, rejection.message)
        if message is not None:
            self.assertEqual(rejection.message, message)
        return rejection.message

    def assert_view(self, aggregate, expected):
        self.assertEqual(aggregate.view(), expected)


class Rules(Scenario):
    """The Rust example's tests (examples/bank-account/src/tests.rs), one for one."""

    def test_open_a_new_account(self):
        account = given()
        self.assert_events(account, "Open", '{"owner":"Ada"}', [OPENED])
        account.apply(events(OPENED))
        self.assert_view(account, '{"balance":0,"owner":"Ada","status":"open"}')

    def test_open_an_open_account_is_rejected(self):
        account = given(OPENED)
        self.assert_rejected(
            account, "Open", '{"owner":"Bob"}', "already-open", "the account is already open for Ada"
        )
        self.assertEqual(account._account.owner, "Ada")

    def test_anything_but_open_before_open_is_rejected(self):
        for command_type, data, verb in [
            ("Deposit", '{"amount":5}', "deposit"),
            ("Withdraw", '{"amount":1}', "withdraw"),
            ("Close", "null", "close"),
        ]:
            account = given()
            self.assert_rejected(
                account, command_type, data, "not-open", f"cannot {verb}: the account is not open yet"
            )
            self.assertEqual(account._account.status, "new")

    def test_deposit_adds_to_the_balance(self):
        account = open_with(70)
        self.assert_events(account, "Deposit", '{"amount":30}', [("Deposited", '{"amount":30}')])
        account.apply([Event(3, "Deposited", JSON, b'{"amount":30}')])
        self.assertEqual(account._account.balance, 100)

    def test_withdraw_takes_from_the_balance(self):
        account = open_with(70)
        self.assert_events(account, "Withdraw", '{"amount":70}', [("Withdrawn", '{"amount":70}')])
        account.apply([Event(3, "Withdrawn", JSON, b'{"amount":70}')])
        self.assertEqual(account._account.balance, 0)

    def test_zero_amounts_are_rejected(self):
        for command_type in ["Deposit", "Withdraw"]:
            self.assert_rejected(
                open_with(70),
                command_type,
                '{"amount":0}',
                "invalid-amount",
                "the amount must be more than 0",
            )

    def test_deposit_that_overflows_the_balance_is_rejected(self):
        self.assert_rejected(
            open_with(U64_MAX),
            "Deposit",
            '{"amount":1}',
            "invalid-amount",
            "cannot deposit 1: the balance would overflow",
        )
        self.assert_rejected(
            open_with(1),
            "Deposit",
            f'{{"amount":{U64_MAX}}}',
            "invalid-amount",
            f"cannot deposit {U64_MAX}: the balance would overflow",
        )
        self.assert_events(
            open_with(1), "Deposit", f'{{"amount":{U64_MAX - 1}}}', [("Deposited", f'{{"amount":{U64_MAX - 1}}}')]
        )

    def test_withdrawing_more_than_the_balance_is_rejected(self):
        account = open_with(70)
        self.assert_rejected(
            account,
            "Withdraw",
            '{"amount":200}',
            "insufficient-funds",
            "cannot withdraw 200: the balance is 70",
        )
        self.assertEqual(account._account.balance, 70)

    def test_close_an_open_account(self):
        account = open_with(70)
        self.assert_events(account, "Close", "null", [("Closed", "null")])
        account.apply([Event(3, "Closed", JSON, b"null")])
        self.assertEqual(account._account.status, "closed")
        self.assert_view(account, '{"balance":70,"owner":"Ada","status":"closed"}')

    def test_a_closed_account_rejects_everything(self):
        for command_type, data in [
            ("Open", '{"owner":"Bob"}'),
            ("Deposit", '{"amount":1}'),
            ("Withdraw", '{"amount":1}'),
            ("Close", "null"),
        ]:
            self.assert_rejected(
                given(OPENED, ("Closed", "null")),
                command_type,
                data,
                "account-closed",
                "the account is closed and accepts no more commands",
            )

    def test_replay_rebuilds_the_state(self):
        account = given(
            OPENED,
            ("Deposited", '{"amount":100}'),
            ("Withdrawn", '{"amount":30}'),
            ("Deposited", '{"amount":5}'),
        )
        self.assert_events(account, "Withdraw", '{"amount":75}', [("Withdrawn", '{"amount":75}')])
        account.apply([Event(5, "Withdrawn", JSON, b'{"amount":75}')])
        self.assert_view(account, '{"balance":0,"owner":"Ada","status":"open"}')

    def test_apply_saturates(self):
        account = given(
            OPENED,
            ("Deposited", f'{{"amount":{U64_MAX}}}'),
            ("Deposited", '{"amount":5}'),
        )
        self.assertEqual(account._account.balance, U64_MAX)
        account.apply([Event(4, "Withdrawn", JSON, f'{{"amount":{U64_MAX}}}'.encode())])
        account.apply([Event(5, "Withdrawn", JSON, b'{"amount":3}')])
        self.assertEqual(account._account.balance, 0)

    def test_view_before_any_event(self):
        self.assert_view(given(), '{"balance":0,"owner":"","status":"new"}')

    def test_the_wire_format_of_events(self):
        self.assertEqual(bank_account.encode_event("Opened", "Ada"), b'{"owner":"Ada"}')
        self.assertEqual(bank_account.encode_event("Withdrawn", 7), b'{"amount":7}')
        self.assertEqual(bank_account.encode_event("Closed", None), b"null")
        # serde_json's escapes: short forms, \u00xx for other control
        # characters, non-ASCII and DEL as they are.
        self.assertEqual(
            bank_account.encode_event("Opened", 'é"\\\n\x01\x7f/'),
            '{"owner":"é\\"\\\\\\n\\u0001\x7f/"}'.encode(),
        )


class Decoding(Scenario):
    def test_content_type(self):
        account = given()
        for content_type in ["application/json", "Application/JSON", "application/json; charset=utf-8", " application/json ;x"]:
            decided = self.decide(account, "Open", '{"owner":"Ada"}', content_type)
            self.assertEqual([(e.event_type, e.data) for e in decided], [("Opened", b'{"owner":"Ada"}')], content_type)
        self.assert_rejected(
            account,
            "Open",
            "owner=Ada",
            "unsupported-content-type",
            'cannot read a "Open" command with content type "text/plain": expected application/json',
            content_type="text/plain",
        )
        self.assert_rejected(account, "Open", "{}", "unsupported-content-type", content_type="application/jsonx")
        self.assert_rejected(account, "Open", "{}", "unsupported-content-type", content_type="application/\u212aSON")

    def test_unknown_command_type(self):
        self.assert_rejected(
            given(),
            "Foo",
            "{}",
            "malformed-command",
            'unknown type "Foo", expected one of "Open", "Deposit", "Withdraw", "Close"',
        )
        # Commands are not events.
        self.assert_rejected(given(), "Opened", '{"owner":"Ada"}', "malformed-command")

    def test_malformed_data(self):
        account = open_with(70)
        # Each message is what the Rust SDK (serde_json) says for the same bytes.
        cases = {
            "{}": "missing field `amount` at line 1 column 2",
            '{"amount":-1}': "invalid value: integer `-1`, expected u64 at line 1 column 12",
            '{"amount":-0}': "invalid type: floating point `-0.0`, expected u64 at line 1 column 12",
            '{"amount":1.5}': "invalid type: floating point `1.5`, expected u64 at line 1 column 13",
            '{"amount":1e2}': "invalid type: floating point `100.0`, expected u64 at line 1 column 13",
            '{"amount":1.5e-7}': "invalid type: floating point `1.5e-7`, expected u64 at line 1 column 16",
            '{"amount":"5"}': 'invalid type: string "5", expected u64 at line 1 column 13',
            '{"amount":true}': "invalid type: boolean `true`, expected u64 at line 1 column 14",
            '{"amount":null}': "invalid type: null, expected u64 at line 1 column 14",
            f'{{"amount":{U64_MAX + 1}}}': "invalid type: floating point `1.8446744073709552e+19`, expected u64 at line 1 column 30",
            '{"amount":1,"amount":2}': "duplicate field `amount` at line 1 column 20",
            "5": "invalid type: integer `5`, expected struct variant Command::Deposit at line 1 column 1",
            "null": "invalid type: null, expected struct variant Command::Deposit at line 1 column 4",
            "[]": "invalid length 0, expected struct variant Command::Deposit with 1 element at line 1 column 2",
            "[1,2]": "trailing characters at line 1 column 4",
            '{"amount":NaN}': "expected value at line 1 column 11",
            '{"amount":1} x': "trailing characters at line 1 column 14",
            "": "EOF while parsing a value at line 1 column 0",
            "{": "EOF while parsing an object at line 1 column 1",
            '{"amount":': "EOF while parsing a value at line 1 column 10",
            '{"owner":"Ada': "EOF while parsing a string at line 1 column 13",
            '{"amount"\n 5}': "expected `:` at line 2 column 2",
            "1" * 5000: "number out of range at line 1 column 5000",
            "[" * 200 + "]" * 200: "invalid type: sequence, expected u64 at line 1 column 1",
            "\ufeff{}": "expected value at line 1 column 1",
        }
        cases = {data: f'invalid data for "Deposit": {message}' for data, message in cases.items()}
        for data, message in cases.items():
            with self.subTest(data=data[:40]):
                self.assert_rejected(account, "Deposit", data, "malformed-command", message)
        self.assert_rejected(account, "Open", '{"owner":5}', "malformed-command",
                             'invalid data for "Open": invalid type: integer `5`, expected a string at line 1 column 10')
        self.assert_rejected(account, "Open", '{"owner":"\\ud800"}', "malformed-command",
                             'invalid data for "Open": unexpected end of hex escape at line 1 column 17')
        self.assert_rejected(account, "Open", b'{"owner":"\xff"}', "malformed-command",
                             'invalid data for "Open": invalid unicode code point at line 1 column 11')

    def test_lenient_where_serde_is(self):
        account = open_with(70)
        for data in [
            b' { "amount" : 5 }\n',
            b'{"other":[1,{"x":"\\ud800"}],"amount":5}',
            b"[5]",
            # Invalid UTF-8 inside a field that is not read is ignored, as by serde_json.
            b'{"x":"\xff","amount":5}',
        ]:
            with self.subTest(data=data):
                decided = self.decide(account, "Deposit", data)
                self.assertEqual(decided[0].data, b'{"amount":5}')
        # 0 decodes (and is refused by the rules); -0 is a float to serde_json.
        self.assert_rejected(account, "Deposit", '{"amount":0}', "invalid-amount")
        self.assert_rejected(account, "Deposit", '{"amount":-0}', "malformed-command")

    def test_close_accepts_null_empty_and_empty_object(self):
        for data in ["null", "", "  ", "{}", " { } ", "null ", "\x0c"]:
            with self.subTest(data=data):
                self.assert_events(open_with(70), "Close", data, [("Closed", "null")])
        self.assert_rejected(
            open_with(70), "Close", '{"a":1}', "malformed-command",
            'invalid data for "Close": invalid length 1, expected an empty object at line 1 column 4',
        )
        self.assert_rejected(
            open_with(70), "Close", "1", "malformed-command",
            'invalid data for "Close": invalid type: integer `1`, expected null (the variant has no content) at line 1 column 1',
        )
        self.assert_rejected(open_with(70), "Close", "[]", "malformed-command")

    def test_malformed_command_on_a_closed_account_is_malformed(self):
        self.assert_rejected(given(OPENED, ("Closed", "null")), "Deposit", "{}", "malformed-command")

    def test_opened_decodes_unicode_owner(self):
        account = given(("Opened", '{"owner":"\\u00e9 \\ud83d\\ude00"}'))
        self.assertEqual(account._account.owner, "é 😀")
        self.assert_view(account, '{"balance":0,"owner":"é 😀","status":"open"}')


class CarefulReader(unittest.TestCase):
    """The C json fast path and the serde_json port must agree on clean input."""

    def test_the_reader_reads_what_the_fast_path_reads(self):
        fields = (("status", "status"), ("owner", "string"), ("balance", "u64"))
        for data in [
            b'{"status":"open","owner":"Ada","balance":70}',
            b' {"balance":18446744073709551615 ,"x":[1,{"y":[]}],"owner":"\xc3\xa9 \\\" \\n","status":"closed"}\n',
        ]:
            with self.subTest(data=data):
                reader = wire._Reader(data)
                slow = reader.struct("struct BankAccount", fields)
                reader.end()
                self.assertEqual(slow, wire._fast_struct(data, fields))

    def test_escapes_take_the_careful_path(self):
        self.assertIs(wire._fast_parse(b'{"owner":"\\u00e9"}'), wire._Unusual)
        self.assertEqual(
            wire.decode(bank_account._COMMANDS, "Command", "Open", b'{"owner":"\\u00e9\\ud83d\\ude00"}'),
            "\u00e9\U0001f600",
        )

    def test_floats_print_as_serde_json_prints_them(self):
        for value, text in [(1.5, "1.5"), (100.0, "100.0"), (1e15, "1000000000000000.0"), (1e16, "1e+16"),
                            (1.5e-7, "1.5e-7"), (1e-5, "0.00001"), (1.5e-5, "0.000015"), (1e-4, "0.0001"), (-0.0, "-0.0")]:
            self.assertEqual(wire._float_text(value), text)


class Apply(Scenario):
    def test_bad_event_stops_the_batch_with_its_version(self):
        account = given()
        batch = events(OPENED, ("Deposited", '{"amount":5}'), ("Deposited", "{}"), ("Deposited", '{"amount":7}'))
        with self.assertRaises(Err) as caught:
            account.apply(batch)
        error = caught.exception.value
        self.assertEqual(error.version, 3)
        self.assertEqual(
            error.message,
            'cannot apply event: invalid data for "Deposited": missing field `amount` at line 1 column 2',
        )
        self.assertEqual(account._account.balance, 5)

    def test_unknown_event_type(self):
        with self.assertRaises(Err) as caught:
            given().apply(events(("Renamed", '"Bob"')))
        self.assertEqual(
            caught.exception.value.message,
            'cannot apply event: unknown type "Renamed", expected one of "Opened", "Deposited", "Withdrawn", "Closed"',
        )

    def test_non_json_event(self):
        with self.assertRaises(Err) as caught:
            given().apply([Event(1, "Opened", "text/plain", b"Ada")])
        self.assertEqual(caught.exception.value.version, 1)
        self.assertEqual(
            caught.exception.value.message,
            'unsupported content type "text/plain" for event "Opened": expected application/json',
        )

    def test_closed_event_accepts_other_spellings(self):
        for data in ["", "{}", "null"]:
            account = given(OPENED, ("Closed", data))
            self.assertEqual(account._account.status, "closed")


class Snapshots(Scenario):
    def test_snapshot_is_serde_json_of_the_rust_state(self):
        self.assertEqual(given().snapshot(), b'{"status":"new","owner":"","balance":0}')
        self.assertEqual(open_with(70).snapshot(), b'{"status":"open","owner":"Ada","balance":70}')

    def test_restore_round_trips(self):
        source = given(("Opened", '{"owner":"Ada \\"L\\" é"}'), ("Deposited", f'{{"amount":{U64_MAX}}}'), ("Closed", "null"))
        target = given()
        target.restore(source.snapshot())
        self.assertEqual(target._account, source._account)
        self.assertEqual(target.view(), source.view())

    def test_restore_accepts_what_serde_accepts(self):
        for data in [
            b' {"balance":1,"owner":"B","status":"open","extra":[1]} ',
            b'["open","B",1]',
            b'{"status":{"open":null},"owner":"B","balance":1}',
        ]:
            account = given()
            account.restore(data)
            self.assertEqual(account._account, bank_account.BankAccount("open", "B", 1))

    def test_restore_of_garbage_leaves_the_state_unchanged(self):
        cases = {
            b"garbage": "expected value at line 1 column 1",
            b"": "EOF while parsing a value at line 1 column 0",
            b'{"status":"open","owner":"Bob"}': "missing field `balance` at line 1 column 31",
            b'{"status":"gone","owner":"Bob","balance":1}': "unknown variant `gone`, expected one of `new`, `open`, `closed` at line 1 column 16",
            b'{"status":"open","owner":"Bob","balance":-1}': "invalid value: integer `-1`, expected u64 at line 1 column 43",
            b'{"status":"open","status":"open","owner":"Bob","balance":1}': "duplicate field `status` at line 1 column 25",
            b"[1]": "expected value at line 1 column 2",
            b"\xff": "expected value at line 1 column 1",
        }
        cases = {data: f"cannot restore the snapshot: {message}" for data, message in cases.items()}
        for data, message in cases.items():
            with self.subTest(data=data):
                account = open_with(70)
                with self.assertRaises(Err) as caught:
                    account.restore(data)
                self.assertEqual(caught.exception.value, message)
                self.assertEqual(account._account, bank_account.BankAccount("open", "Ada", 70))


class Determinism(Scenario):
    def test_replay_is_a_pure_function_of_the_events(self):
        stream = events(OPENED, *[("Deposited", f'{{"amount":{i}}}') for i in range(1, 200)], ("Withdrawn", '{"amount":7}'))
        first, second = given(), given()
        first.apply(stream)
        for event in stream:
            second.apply([event])
        self.assertEqual(first.snapshot(), second.snapshot())
        self.assertEqual(first.view(), '{"balance":19893,"owner":"Ada","status":"open"}')


if __name__ == "__main__":
    unittest.main()
