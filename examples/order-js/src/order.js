// An order with line items: built as a draft, submitted, then shipped, or
// cancelled before it ships. The same aggregate as examples/order-py.
//
// | command      | rejected when                               | code                 |
// |--------------|---------------------------------------------|----------------------|
// | `AddItem`    | the order is no longer a draft              | `order-not-editable` |
// | `AddItem`    | the quantity is 0, or too large in all      | `invalid-quantity`   |
// | `AddItem`    | the order already has 50 distinct items     | `too-many-items`     |
// | `RemoveItem` | the order is no longer a draft              | `order-not-editable` |
// | `RemoveItem` | the item is not in the order                | `unknown-item`       |
// | `Submit`     | the order is no longer a draft              | `order-not-editable` |
// | `Submit`     | the order has no items                      | `empty-order`        |
// | `Submit`     | the total does not fit in 64 bits           | `total-too-large`    |
// | `Ship`       | the order was not submitted (or is shipped) | `not-submitted`      |
// | `Cancel`     | the order was shipped or already cancelled  | `not-cancellable`    |
//
// Adding an item already in the order adds to its quantity (at the price
// first given). Prices are u64 (BigInts) in the smallest currency unit;
// field names are the wire's (`unit_price`), shared with order-py.

import { Rejection, U64_MAX, defineAggregate, exportAggregate, list, oneOf, optional, string, u32, u64 } from '@aether/guest';

export const MAX_ITEMS = 50;
const U32_MAX = 4294967295;

const Line = { sku: string, quantity: u32, unit_price: u64 };

const total = (order) => order.lines.reduce((sum, line) => sum + BigInt(line.quantity) * line.unit_price, 0n);

function requireDraft(order) {
  if (order.status !== 'draft') throw new Rejection('order-not-editable', `the order is ${order.status}`);
}

export const Order = defineAggregate({
  name: 'Order',
  state: { status: oneOf('draft', 'submitted', 'shipped', 'cancelled'), lines: list(Line) },
  initial: () => ({ status: 'draft', lines: [] }),

  commands: {
    AddItem: Line,
    RemoveItem: { sku: string },
    Submit: null,
    Ship: { carrier: string, tracking: optional(string) },
    Cancel: { reason: string },
  },
  events: {
    ItemAdded: Line,
    ItemRemoved: { sku: string },
    Submitted: { total: u64 },
    Shipped: { carrier: string, tracking: optional(string) },
    Cancelled: { reason: string },
  },

  handle(order, command) {
    switch (command.type) {
      case 'AddItem': {
        requireDraft(order);
        const { sku, quantity, unit_price } = command;
        if (quantity === 0) throw new Rejection('invalid-quantity', 'the quantity must be more than 0');
        const line = order.lines.find((l) => l.sku === sku);
        if (line === undefined && order.lines.length >= MAX_ITEMS) {
          throw new Rejection('too-many-items', `an order holds at most ${MAX_ITEMS} items`);
        }
        if (line !== undefined && line.quantity + quantity > U32_MAX) {
          throw new Rejection('invalid-quantity', `too many of ${sku} in one order`);
        }
        return [{ type: 'ItemAdded', sku, quantity, unit_price }];
      }
      case 'RemoveItem':
        requireDraft(order);
        if (!order.lines.some((l) => l.sku === command.sku)) {
          throw new Rejection('unknown-item', `${command.sku} is not in the order`);
        }
        return [{ type: 'ItemRemoved', sku: command.sku }];
      case 'Submit': {
        requireDraft(order);
        if (order.lines.length === 0) throw new Rejection('empty-order', 'an order without items cannot be submitted');
        const sum = total(order);
        if (sum > U64_MAX) throw new Rejection('total-too-large', `the total ${sum} is too large`);
        return [{ type: 'Submitted', total: sum }];
      }
      case 'Ship':
        if (order.status !== 'submitted') throw new Rejection('not-submitted', `a ${order.status} order cannot ship`);
        return [{ type: 'Shipped', carrier: command.carrier, tracking: command.tracking }];
      case 'Cancel':
        if (order.status === 'shipped' || order.status === 'cancelled') {
          throw new Rejection('not-cancellable', `a ${order.status} order cannot be cancelled`);
        }
        return [{ type: 'Cancelled', reason: command.reason }];
    }
  },

  apply(order, event) {
    switch (event.type) {
      case 'ItemAdded': {
        const line = order.lines.find((l) => l.sku === event.sku);
        if (line === undefined) {
          order.lines.push({ sku: event.sku, quantity: event.quantity, unit_price: event.unit_price });
        } else {
          line.quantity = Math.min(line.quantity + event.quantity, U32_MAX);
        }
        break;
      }
      case 'ItemRemoved':
        order.lines = order.lines.filter((l) => l.sku !== event.sku);
        break;
      case 'Submitted':
        order.status = 'submitted';
        break;
      case 'Shipped':
        order.status = 'shipped';
        break;
      case 'Cancelled':
        order.status = 'cancelled';
        break;
    }
  },

  view: (order) => ({ status: order.status, lines: order.lines, total: total(order) }),
});

/** The exported interface `aether:aggregate/handler@0.4.0`. */
export const handler = exportAggregate(Order);
