"""The order's rules, under plain CPython: ``python3 -m unittest`` (the
build puts ``guest-sdk/python/src`` on the path). The built component is
checked against tests/scenarios/order by the host's tests."""

import unittest

from aether_guest.testing import given, given_state

from order import (
    MAX_ITEMS,
    AddItem,
    Cancel,
    Cancelled,
    ItemAdded,
    ItemRemoved,
    Line,
    Order,
    RemoveItem,
    Ship,
    Shipped,
    Status,
    Submit,
    Submitted,
)

TEA = ItemAdded("tea", 2, 450)
CUP = ItemAdded("cup", 1, 1200)


class OrderTest(unittest.TestCase):
    def test_add_items_to_a_new_order(self):
        (given(Order)
            .when(AddItem("tea", 2, 450))
            .then_events(TEA)
            .then_view({
                "status": "draft",
                "lines": [{"sku": "tea", "quantity": 2, "unit_price": 450}],
                "total": 900,
            }))

    def test_adding_an_item_again_adds_to_its_quantity(self):
        given(Order, TEA).when(AddItem("tea", 3, 450)).then_events(
            ItemAdded("tea", 3, 450)
        ).then_state(Order(lines=[Line("tea", 5, 450)]))

    def test_a_quantity_of_zero_is_rejected(self):
        given(Order).when(AddItem("tea", 0, 450)).then_rejected("invalid-quantity")

    def test_an_order_holds_a_bounded_number_of_items(self):
        full = given(Order, *[ItemAdded(f"sku-{i}", 1, 1) for i in range(MAX_ITEMS)])
        full.when(AddItem("one-more", 1, 1)).then_rejected("too-many-items")
        full.when(AddItem("sku-0", 1, 1)).then_events(ItemAdded("sku-0", 1, 1))

    def test_remove_an_item(self):
        given(Order, TEA, CUP).when(RemoveItem("tea")).then_events(
            ItemRemoved("tea")
        ).then_state(Order(lines=[Line("cup", 1, 1200)]))

    def test_removing_an_unknown_item_is_rejected(self):
        given(Order, TEA).when(RemoveItem("cup")).then_rejected(
            "unknown-item", "cup is not in the order"
        )

    def test_submit_records_the_total(self):
        given(Order, TEA, CUP).when(Submit()).then_events(Submitted(2100))

    def test_an_empty_order_cannot_be_submitted(self):
        given(Order, TEA, ItemRemoved("tea")).when(Submit()).then_rejected("empty-order")

    def test_a_submitted_order_cannot_change(self):
        submitted = given(Order, TEA, Submitted(900))
        for command in [AddItem("cup", 1, 1200), RemoveItem("tea"), Submit()]:
            submitted.when(command).then_rejected("order-not-editable", "the order is submitted")

    def test_ship_a_submitted_order(self):
        given(Order, TEA, Submitted(900)).when(Ship("post", "RR123")).then_events(
            Shipped("post", "RR123")
        ).then_state(lambda order: self.assertIs(order.status, Status.SHIPPED))

    def test_the_tracking_number_is_optional(self):
        outcome = given(Order, TEA, Submitted(900)).when_raw("Ship", {"carrier": "post"})
        outcome.then_events(Shipped("post"))
        self.assertEqual(outcome.wire[0].data, b'{"carrier":"post","tracking":null}')

    def test_only_a_submitted_order_ships(self):
        given(Order, TEA).when(Ship("post")).then_rejected(
            "not-submitted", "a draft order cannot ship"
        )

    def test_cancel_before_shipping(self):
        for history in [(TEA,), (TEA, Submitted(900))]:
            given(Order, *history).when(Cancel("changed my mind")).then_events(
                Cancelled("changed my mind")
            ).then_view({
                "status": "cancelled",
                "lines": [{"sku": "tea", "quantity": 2, "unit_price": 450}],
                "total": 900,
            })

    def test_a_shipped_or_cancelled_order_cannot_be_cancelled(self):
        for last in [Shipped("post"), Cancelled("no")]:
            given(Order, TEA, Submitted(900), last).when(Cancel("late")).then_rejected(
                "not-cancellable"
            )

    def test_malformed_commands_are_rejected(self):
        order = given(Order)
        for data in [
            {"sku": "tea", "quantity": -1, "unit_price": 1},
            {"sku": "tea", "quantity": 2**32, "unit_price": 1},
            {"sku": 7, "quantity": 1, "unit_price": 1},
            {"sku": "tea", "quantity": 1},
        ]:
            order.when_raw("AddItem", data).then_rejected("malformed-command")

    def test_snapshots_restore(self):
        state = Order(Status.SUBMITTED, [Line("tea", 2, 450), Line("cup", 1, 1200)])
        scenario = given_state(state)
        self.assertEqual(
            scenario.resource.snapshot(),
            b'{"status":"submitted","lines":[{"sku":"tea","quantity":2,"unit_price":450},'
            b'{"sku":"cup","quantity":1,"unit_price":1200}]}',
        )
        scenario.when(Ship("post")).then_events(Shipped("post"))


if __name__ == "__main__":
    unittest.main()
