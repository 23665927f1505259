"""The bank account's rules, under plain CPython: ``python3 -m unittest``
(the build puts ``guest-sdk/python/src`` on the path). The built component
is checked against tests/scenarios/bank-account by the host's tests."""

import unittest

from aether_guest.testing import given

from bank_account import (
    U64_MAX,
    BankAccount,
    Close,
    Closed,
    Deposit,
    Deposited,
    Open,
    Opened,
    Status,
    Withdraw,
    Withdrawn,
)


def open_with(balance):
    return given(BankAccount, Opened("Ada"), Deposited(balance))


class BankAccountTest(unittest.TestCase):
    def test_open_a_new_account(self):
        (given(BankAccount)
            .when(Open("Ada"))
            .then_events(Opened("Ada"))
            .then_view({"status": "open", "owner": "Ada", "balance": 0}))

    def test_open_an_open_account_is_rejected(self):
        (given(BankAccount, Opened("Ada"))
            .when(Open("Bob"))
            .then_rejected("already-open", "the account is already open for Ada")
            .then_state(lambda account: self.assertEqual(account.owner, "Ada")))

    def test_anything_but_open_before_open_is_rejected(self):
        for command in [Deposit(1), Withdraw(1), Close()]:
            (given(BankAccount)
                .when(command)
                .then_rejected("not-open")
                .then_state(BankAccount()))

    def test_deposit_adds_to_the_balance(self):
        open_with(70).when(Deposit(30)).then_events(Deposited(30)).then_state(
            BankAccount(Status.OPEN, "Ada", 100)
        )

    def test_withdraw_takes_from_the_balance(self):
        open_with(70).when(Withdraw(70)).then_events(Withdrawn(70)).then_state(
            BankAccount(Status.OPEN, "Ada", 0)
        )

    def test_zero_amounts_are_rejected(self):
        for command in [Deposit(0), Withdraw(0)]:
            open_with(70).when(command).then_rejected(
                "invalid-amount", "the amount must be more than 0"
            )

    def test_deposit_that_overflows_the_balance_is_rejected(self):
        open_with(U64_MAX).when(Deposit(1)).then_rejected("invalid-amount")

    def test_withdrawing_more_than_the_balance_is_rejected(self):
        (open_with(70)
            .when(Withdraw(200))
            .then_rejected("insufficient-funds", "cannot withdraw 200: the balance is 70")
            .then_state(lambda account: self.assertEqual(account.balance, 70)))

    def test_close_an_open_account(self):
        open_with(70).when(Close()).then_events(Closed()).then_state(
            lambda account: self.assertIs(account.status, Status.CLOSED)
        )

    def test_a_closed_account_rejects_everything(self):
        for command in [Open("Bob"), Deposit(1), Withdraw(1), Close()]:
            given(BankAccount, Opened("Ada"), Closed()).when(command).then_rejected(
                "account-closed"
            )

    def test_replay_rebuilds_the_state(self):
        (given(BankAccount, Opened("Ada"), Deposited(100), Withdrawn(30), Deposited(5))
            .when(Withdraw(75))
            .then_events(Withdrawn(75))
            .then_view({"status": "open", "owner": "Ada", "balance": 0}))

    def test_malformed_commands_are_rejected(self):
        account = open_with(70)
        account.when_raw("Teleport", {}).then_rejected("malformed-command")
        for data in ['{"amount":"lots"}', '{"amount":-5}', '{"amount":1.5}', "{}", "[1"]:
            account.when_raw("Deposit", data).then_rejected("malformed-command")
        account.when_raw("Deposit", '{"amount":5}', "text/plain").then_rejected(
            "unsupported-content-type"
        )
        account.when_raw("Deposit", ' { "amount" : 5 } ').then_events(Deposited(5))

    def test_events_use_the_documented_wire_format(self):
        outcome = given(BankAccount).when(Open("Ada"))
        self.assertEqual(outcome.wire[0].event_type, "Opened")
        self.assertEqual(outcome.wire[0].data, b'{"owner":"Ada"}')
        outcome = open_with(70).when(Withdraw(7))
        self.assertEqual(outcome.wire[0].data, b'{"amount":7}')
        self.assertEqual(open_with(7).when(Close()).wire[0].data, b"null")

    def test_snapshots_are_the_state_in_declaration_order(self):
        account = open_with(70)
        self.assertEqual(
            account.resource.snapshot(), b'{"status":"open","owner":"Ada","balance":70}'
        )


if __name__ == "__main__":
    unittest.main()
