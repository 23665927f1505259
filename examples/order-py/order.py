"""An order with line items: built as a draft, submitted, then shipped, or
cancelled before it ships.

=================  ===========================================  =====================
command            rejected when                                code
=================  ===========================================  =====================
``AddItem``        the order is no longer a draft               ``order-not-editable``
``AddItem``        the quantity is 0, or too large in all       ``invalid-quantity``
``AddItem``        the order already has 50 distinct items      ``too-many-items``
``RemoveItem``     the order is no longer a draft               ``order-not-editable``
``RemoveItem``     the item is not in the order                 ``unknown-item``
``Submit``         the order is no longer a draft               ``order-not-editable``
``Submit``         the order has no items                       ``empty-order``
``Submit``         the total does not fit in 64 bits            ``total-too-large``
``Ship``           the order was not submitted (or is shipped)  ``not-submitted``
``Cancel``         the order was shipped or already cancelled   ``not-cancellable``
=================  ===========================================  =====================

Adding an item already in the order adds to its quantity (at the price
first given). Prices are in the smallest currency unit.
"""

from dataclasses import dataclass, field
from enum import Enum

from aether_guest import Aggregate, Rejection, export, u32, u64

MAX_ITEMS = 50
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


class Status(str, Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


@dataclass
class Line:
    sku: str
    quantity: u32
    unit_price: u64


# --- commands ------------------------------------------------------------------


@dataclass
class AddItem:
    sku: str
    quantity: u32
    unit_price: u64


@dataclass
class RemoveItem:
    sku: str


@dataclass
class Submit:
    pass


@dataclass
class Ship:
    carrier: str
    tracking: str | None = None


@dataclass
class Cancel:
    reason: str


# --- events --------------------------------------------------------------------


@dataclass
class ItemAdded:
    sku: str
    quantity: u32
    unit_price: u64


@dataclass
class ItemRemoved:
    sku: str


@dataclass
class Submitted:
    total: u64


@dataclass
class Shipped:
    carrier: str
    tracking: str | None = None


@dataclass
class Cancelled:
    reason: str


@dataclass
class Order(Aggregate):
    status: Status = Status.DRAFT
    lines: list[Line] = field(default_factory=list)

    def line(self, sku: str) -> Line | None:
        return next((line for line in self.lines if line.sku == sku), None)

    def total(self) -> int:
        return sum(line.quantity * line.unit_price for line in self.lines)

    def handle(
        self, command: AddItem | RemoveItem | Submit | Ship | Cancel
    ) -> list[ItemAdded | ItemRemoved | Submitted | Shipped | Cancelled]:
        match command:
            case AddItem(sku, quantity, unit_price):
                self.require_draft()
                if quantity == 0:
                    raise Rejection("invalid-quantity", "the quantity must be more than 0")
                line = self.line(sku)
                if line is None and len(self.lines) >= MAX_ITEMS:
                    raise Rejection("too-many-items", f"an order holds at most {MAX_ITEMS} items")
                if line is not None and line.quantity + quantity > U32_MAX:
                    raise Rejection("invalid-quantity", f"too many of {sku} in one order")
                return [ItemAdded(sku, quantity, unit_price)]
            case RemoveItem(sku):
                self.require_draft()
                if self.line(sku) is None:
                    raise Rejection("unknown-item", f"{sku} is not in the order")
                return [ItemRemoved(sku)]
            case Submit():
                self.require_draft()
                if not self.lines:
                    raise Rejection("empty-order", "an order without items cannot be submitted")
                total = self.total()
                if total > U64_MAX:
                    raise Rejection("total-too-large", f"the total {total} is too large")
                return [Submitted(total)]
            case Ship(carrier, tracking):
                if self.status is not Status.SUBMITTED:
                    raise Rejection("not-submitted", f"a {self.status.value} order cannot ship")
                return [Shipped(carrier, tracking)]
            case Cancel(reason):
                if self.status in (Status.SHIPPED, Status.CANCELLED):
                    raise Rejection(
                        "not-cancellable", f"a {self.status.value} order cannot be cancelled"
                    )
                return [Cancelled(reason)]

    def require_draft(self) -> None:
        if self.status is not Status.DRAFT:
            raise Rejection("order-not-editable", f"the order is {self.status.value}")

    def apply(self, event: ItemAdded | ItemRemoved | Submitted | Shipped | Cancelled) -> None:
        match event:
            case ItemAdded(sku, quantity, unit_price):
                line = self.line(sku)
                if line is None:
                    self.lines.append(Line(sku, quantity, unit_price))
                else:
                    line.quantity = min(line.quantity + quantity, U32_MAX)
            case ItemRemoved(sku):
                self.lines = [line for line in self.lines if line.sku != sku]
            case Submitted():
                self.status = Status.SUBMITTED
            case Shipped():
                self.status = Status.SHIPPED
            case Cancelled():
                self.status = Status.CANCELLED

    def view(self):
        return {"status": self.status, "lines": self.lines, "total": self.total()}


export(Order)
