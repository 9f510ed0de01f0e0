// Folding an order's events into the order, as the server does: the state
// after the events up to a version is what GET /orders/{id}?asOf=<version>
// answers. Pure functions, no DOM: e2e/unit.test.mjs tests them with Node.

/** Order fields each event type sets, with the status it moves the order to. */
const appliers = {
  OrderCreated: (o, e) => Object.assign(o, {
    orderId: e.orderId, customerId: e.customerId, items: e.items || [], status: 'Pending',
    total: e.total, createdAt: e.createdAt,
  }),
  OrderPaid: (o, e) => Object.assign(o, { status: 'Paid', paymentMethod: e.paymentMethod, paidAt: e.paidAt }),
  OrderShipped: (o, e) => Object.assign(o, { status: 'Shipped', trackingNumber: e.trackingNumber, shippedAt: e.shippedAt }),
  OrderDelivered: (o, e) => Object.assign(o, { status: 'Delivered', deliveredAt: e.deliveredAt }),
  OrderCancelled: (o, e) => Object.assign(o, { status: 'Cancelled', cancelReason: e.reason, cancelledAt: e.cancelledAt }),
};

/**
 * foldEvents returns the order as of version upTo (all events when upTo is
 * undefined), or null before its first event. Events may come in any order
 * and more than once (a resumed stream): each version counts once. It throws
 * on a gap or an unknown event type, which the page shows instead of a state
 * it cannot vouch for.
 */
export function foldEvents(events, upTo = Infinity) {
  const byVersion = new Map();
  for (const e of events) if (e.version <= upTo) byVersion.set(e.version, e);
  const versions = [...byVersion.keys()].sort((a, b) => a - b);
  let order = null;
  for (const [i, v] of versions.entries()) {
    if (v !== i + 1) throw new Error(`event version ${i + 1} is missing (next is ${v})`);
    const e = byVersion.get(v);
    const apply = appliers[e.type];
    if (!apply) throw new Error(`unknown event type ${JSON.stringify(e.type)} at version ${v}`);
    if ((v === 1) !== (e.type === 'OrderCreated')) throw new Error(`${e.type} at version ${v}`);
    order = apply(order || {}, e);
    order.version = v;
  }
  if (order) for (const k of Object.keys(order)) if (order[k] === undefined || order[k] === '') delete order[k];
  return order;
}

/** mergeEvents adds events to a list kept sorted by version, each version once. */
export function mergeEvents(list, more) {
  const byVersion = new Map(list.map((e) => [e.version, e]));
  for (const e of more) byVersion.set(e.version, e);
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}
