"""A bank account that cannot be overdrawn: the Python twin of
``examples/bank-account`` (Rust), rule for rule.

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
"""

from dataclasses import dataclass
from enum import Enum

from aether_guest import Aggregate, Rejection, export, u64

U64_MAX = 2**64 - 1


class Status(str, Enum):
    """Where an account is in its life."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


# --- commands: what callers can ask of an account ---------------------------


@dataclass
class Open:
    owner: str


@dataclass
class Deposit:
    amount: u64


@dataclass
class Withdraw:
    amount: u64


@dataclass
class Close:
    pass


Command = Open | Deposit | Withdraw | Close


# --- events: what happened to an account -------------------------------------


@dataclass
class Opened:
    owner: str


@dataclass
class Deposited:
    amount: u64


@dataclass
class Withdrawn:
    amount: u64


@dataclass
class Closed:
    pass


Event = Opened | Deposited | Withdrawn | Closed

_VERBS = {Open: "open", Deposit: "deposit", Withdraw: "withdraw", Close: "close"}


@dataclass
class BankAccount(Aggregate):
    """The account's state."""

    status: Status = Status.NEW
    owner: str = ""
    balance: u64 = 0

    def handle(self, command: Command) -> list[Event]:
        if self.status is Status.CLOSED:
            raise Rejection("account-closed", "the account is closed and accepts no more commands")
        match command:
            case Open(owner=owner):
                if self.status is Status.OPEN:
                    raise Rejection("already-open", f"the account is already open for {self.owner}")
                return [Opened(owner)]
            case _ if self.status is Status.NEW:
                verb = _VERBS[type(command)]
                raise Rejection("not-open", f"cannot {verb}: the account is not open yet")
            case Deposit(amount=amount):
                check_amount(amount)
                if self.balance + amount > U64_MAX:
                    raise Rejection(
                        "invalid-amount", f"cannot deposit {amount}: the balance would overflow"
                    )
                return [Deposited(amount)]
            case Withdraw(amount=amount):
                check_amount(amount)
                if amount > self.balance:
                    raise Rejection(
                        "insufficient-funds",
                        f"cannot withdraw {amount}: the balance is {self.balance}",
                    )
                return [Withdrawn(amount)]
            case Close():
                return [Closed()]

    def apply(self, event: Event) -> None:
        # Saturating: replay must never fail, even on a stream this version
        # of the rules would not have produced.
        match event:
            case Deposited(amount=amount):
                balance = self.balance + amount
                self.balance = balance if balance <= U64_MAX else U64_MAX
            case Withdrawn(amount=amount):
                balance = self.balance - amount
                self.balance = balance if balance >= 0 else 0
            case Opened(owner=owner):
                self.status = Status.OPEN
                self.owner = owner
            case Closed():
                self.status = Status.CLOSED


def check_amount(amount: int) -> None:
    if amount == 0:
        raise Rejection("invalid-amount", "the amount must be more than 0")


export(BankAccount)
