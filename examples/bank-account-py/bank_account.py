"""A bank account that cannot be overdrawn: the Python twin of
``examples/bank-account`` (Rust), rule for rule and message for message.

Rules, each with the rejection code it produces:

=============================  ==================================  ======================
command                        rejected when                       code
=============================  ==================================  ======================
any                            the account is closed               ``account-closed``
``Open``                       the account is already open         ``already-open``
``Deposit``/``Withdraw``/      the account was never opened        ``not-open``
``Close``
``Deposit``/``Withdraw``       the amount is 0                     ``invalid-amount``
``Deposit``                    the balance would overflow (u64)    ``invalid-amount``
``Withdraw``                   the amount exceeds the balance      ``insufficient-funds``
=============================  ==================================  ======================

This module is plain Python with no import from the generated bindings, so
it runs (and is unit tested) under ordinary CPython; ``app.py`` adapts it to
the WIT resource.

Wire format (the same bytes as the Rust SDK, ``guest-sdk/src/lib.rs``):

- ``command-type`` / ``event-type`` is the variant name: commands ``Open``,
  ``Deposit``, ``Withdraw``, ``Close``; events ``Opened``, ``Deposited``,
  ``Withdrawn``, ``Closed``.
- ``content-type`` is ``application/json`` (case and parameters such as
  ``; charset=utf-8`` are ignored when reading).
- ``data`` is compact JSON of the variant's fields in declaration order,
  e.g. ``{"owner":"Ada"}`` or ``{"amount":100}``; a variant without fields
  is ``null`` (``{}`` and empty data are accepted when reading).
- Amounts are u64: a negative, fractional or too large amount does not
  decode (``malformed-command``), like serde's ``u64``.
- Decoding accepts and refuses exactly what the Rust SDK does, with the
  same ``malformed-command`` and ``apply-error`` messages (``wire.py``).

Snapshots are the JSON of the state in declaration order
(``{"status":"open","owner":"Ada","balance":70}``, what ``serde_json``
writes for the Rust ``BankAccount``), so a snapshot from either component
restores in the other. ``view`` is the same JSON with its keys sorted.

Nothing here reads a clock, a random source or the environment: replaying
the same events always gives the same state.
"""

from wire import CONTENT_TYPE, U64_MAX, WireError, decode, is_json, json_string, read_struct

NEW = "new"
OPEN = "open"
CLOSED = "closed"

# Variant name -> (field name, field kind), or None for a variant without fields.
_COMMANDS = {
    "Open": ("owner", "string"),
    "Deposit": ("amount", "u64"),
    "Withdraw": ("amount", "u64"),
    "Close": None,
}
_EVENTS = {
    "Opened": ("owner", "string"),
    "Deposited": ("amount", "u64"),
    "Withdrawn": ("amount", "u64"),
    "Closed": None,
}
_VERBS = {"Open": "open", "Deposit": "deposit", "Withdraw": "withdraw", "Close": "close"}


class Rejection(Exception):
    """A business decision not to carry out a command (WIT ``rejection``)."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}"


class ApplyFailure(Exception):
    """A stored event that cannot be applied (WIT ``apply-error``, without its version)."""


class BankAccount:
    """The account's state: ``status`` (``new``, ``open``, ``closed``),
    ``owner`` (empty before opening) and ``balance`` (a u64)."""

    __slots__ = ("status", "owner", "balance")

    def __init__(self, status=NEW, owner="", balance=0):
        self.status = status
        self.owner = owner
        self.balance = balance

    def __eq__(self, other):
        return isinstance(other, BankAccount) and (
            (self.status, self.owner, self.balance) == (other.status, other.owner, other.balance)
        )

    def __repr__(self):
        return f"BankAccount({self.status!r}, {self.owner!r}, {self.balance!r})"

    # --- domain logic ---------------------------------------------------

    def decide(self, command_type, value):
        """Decides a decoded command; returns ``[(event_type, value), ...]``
        or raises :class:`Rejection`. Never changes the state."""
        status = self.status
        if status == CLOSED:
            raise Rejection("account-closed", "the account is closed and accepts no more commands")
        if command_type == "Open":
            if status == NEW:
                return [("Opened", value)]
            raise Rejection("already-open", f"the account is already open for {self.owner}")
        if status == NEW:
            raise Rejection(
                "not-open", f"cannot {_VERBS[command_type]}: the account is not open yet"
            )
        if command_type == "Deposit":
            _check_amount(value)
            if self.balance + value > U64_MAX:
                raise Rejection(
                    "invalid-amount", f"cannot deposit {value}: the balance would overflow"
                )
            return [("Deposited", value)]
        if command_type == "Withdraw":
            _check_amount(value)
            if value > self.balance:
                raise Rejection(
                    "insufficient-funds",
                    f"cannot withdraw {value}: the balance is {self.balance}",
                )
            return [("Withdrawn", value)]
        # Close
        return [("Closed", None)]

    def evolve(self, event_type, value):
        """Folds one decoded event into the state. Saturating, like the Rust
        version: replay never fails, even on a stream these rules would not
        have produced."""
        if event_type == "Opened":
            self.status = OPEN
            self.owner = value
        elif event_type == "Deposited":
            balance = self.balance + value
            self.balance = balance if balance <= U64_MAX else U64_MAX
        elif event_type == "Withdrawn":
            balance = self.balance - value
            self.balance = balance if balance >= 0 else 0
        else:  # Closed
            self.status = CLOSED

    # --- the WIT methods, on plain values ---------------------------------

    def handle(self, command_type, content_type, data):
        """``handler.aggregate.handle``: returns ``[(event_type, content_type,
        data), ...]`` or raises :class:`Rejection`, including the SDK's own
        ``unsupported-content-type`` and ``malformed-command``."""
        if not is_json(content_type):
            raise Rejection(
                "unsupported-content-type",
                f'cannot read a "{command_type}" command with content type '
                f'"{content_type}": expected {CONTENT_TYPE}',
            )
        try:
            value = decode(_COMMANDS, "Command", command_type, data)
        except WireError as error:
            raise Rejection("malformed-command", str(error)) from None
        return [
            (event_type, CONTENT_TYPE, encode_event(event_type, event_value))
            for event_type, event_value in self.decide(command_type, value)
        ]

    def apply(self, event_type, content_type, data):
        """Applies one stored event; raises :class:`ApplyFailure` (the state
        unchanged) if it cannot be read."""
        if not is_json(content_type):
            raise ApplyFailure(
                f'unsupported content type "{content_type}" for event "{event_type}": '
                f"expected {CONTENT_TYPE}"
            )
        try:
            value = decode(_EVENTS, "Event", event_type, data)
        except WireError as error:
            raise ApplyFailure(f"cannot apply event: {error}") from None
        self.evolve(event_type, value)

    def snapshot(self):
        """The state as bytes, exactly what serde_json writes for the Rust state."""
        return (
            f'{{"status":"{self.status}","owner":{json_string(self.owner)},'
            f'"balance":{self.balance}}}'
        ).encode("utf-8")

    def restore(self, state):
        """Replaces the state with a snapshot's; raises :class:`ValueError`
        with the reason (the state unchanged) if it does not decode."""
        try:
            status, owner, balance = read_struct(
                bytes(state),
                "struct BankAccount",
                (("status", "status"), ("owner", "string"), ("balance", "u64")),
            )
        except ValueError as error:
            raise ValueError(f"cannot restore the snapshot: {error}") from None
        self.status, self.owner, self.balance = status, owner, balance

    def view(self):
        """The state as JSON for readers, keys sorted (like serde_json's ``Value``)."""
        return (
            f'{{"balance":{self.balance},"owner":{json_string(self.owner)},'
            f'"status":"{self.status}"}}'
        )


def _check_amount(amount):
    if amount == 0:
        raise Rejection("invalid-amount", "the amount must be more than 0")


# --- wire format (see wire.py) --------------------------------------------------


def encode_event(event_type, value):
    """The ``data`` of an event: compact JSON of its fields in declaration order."""
    spec = _EVENTS[event_type]
    if spec is None:
        return b"null"
    field, kind = spec
    encoded = json_string(value) if kind == "string" else str(value)
    return f'{{"{field}":{encoded}}}'.encode("utf-8")
