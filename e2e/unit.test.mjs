// Unit tests of the console's pure modules, in Node (no browser):
//   node --experimental-detect-module --test unit.test.mjs

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';

import { foldEvents, mergeEvents } from '../http/ui/fold.js';
import { SSEParser, subscribe } from '../http/ui/sse.js';

const created = { type: 'OrderCreated', version: 1, orderId: 'o1', customerId: 'c', items: [{ productId: 'p', name: 'n', quantity: 2, price: 1.5 }], total: 3, createdAt: '2026-12-02T07:00:00Z' };
const paid = { type: 'OrderPaid', version: 2, orderId: 'o1', paymentMethod: 'card', paidAt: '2026-12-02T07:00:01Z' };
const shipped = { type: 'OrderShipped', version: 3, orderId: 'o1', trackingNumber: 'T', shippedAt: '2026-12-02T07:00:02Z' };
const cancelled = { type: 'OrderCancelled', version: 3, orderId: 'o1', reason: 'r', cancelledAt: '2026-12-02T07:00:02Z' };

test('foldEvents gives the order as of each version', () => {
  assert.equal(foldEvents([]), null);
  assert.deepEqual(foldEvents([created, paid, shipped], 1), { orderId: 'o1', customerId: 'c', items: created.items, status: 'Pending', total: 3, createdAt: created.createdAt, version: 1 });
  assert.equal(foldEvents([created, paid, shipped], 2).status, 'Paid');
  assert.equal(foldEvents([created, paid, shipped], 2).paymentMethod, 'card');
  assert.equal(foldEvents([created, paid, shipped], 2).trackingNumber, undefined);
  const all = foldEvents([shipped, created, paid, paid]); // any order, duplicates
  assert.equal(all.status, 'Shipped');
  assert.equal(all.version, 3);
  assert.equal(all.trackingNumber, 'T');
  const c = foldEvents([created, paid, cancelled]);
  assert.equal(c.status, 'Cancelled');
  assert.equal(c.cancelReason, 'r');
});

test('foldEvents refuses a gap, an unknown type, a second creation', () => {
  assert.throws(() => foldEvents([created, shipped]), /version 2 is missing/);
  assert.throws(() => foldEvents([created, { ...paid, type: 'OrderLost' }]), /unknown event type "OrderLost"/);
  assert.throws(() => foldEvents([created, { ...created, version: 2 }]), /OrderCreated at version 2/);
  assert.throws(() => foldEvents([paid]), /version 1 is missing/);
});

test('mergeEvents keeps each version once, in order', () => {
  assert.deepEqual(mergeEvents([paid], [created, paid]).map((e) => e.version), [1, 2]);
});

function parse(chunks) {
  const out = [];
  const comments = [];
  const p = new SSEParser((m) => out.push(m), (c) => comments.push(c));
  for (const c of chunks) p.feed(c);
  return { out, comments, p };
}

test('SSEParser follows the event-stream rules, in chunks of any size', () => {
  const stream = ': hello\r\nid: 7\r\nevent: OrderPaid\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:no space\n\nid: 8\nretry: 1500\nevent: X\ndata\n\n:hb\rdata: last\r\r';
  const want = [
    { id: '7', event: 'OrderPaid', data: '{"a":\n1}' },
    { id: '7', event: 'message', data: 'no space' },
    { id: '8', event: 'X', data: '' },
    { id: '8', event: 'message', data: 'last' },
  ];
  for (const size of [1, 2, 3, 7, stream.length]) {
    const chunks = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.slice(i, i + size));
    const { out, comments, p } = parse(chunks);
    assert.deepEqual(out, want, `chunks of ${size}`);
    assert.deepEqual(comments, [' hello', 'hb'], `comments, chunks of ${size}`);
    assert.equal(p.retry, 1500);
  }
  // No blank line yet: nothing dispatched; an event without data is not dispatched.
  assert.deepEqual(parse(['data: x\n']).out, []);
  assert.deepEqual(parse(['event: E\n\n']).out, []);
});

test('subscribe reconnects after a drop with Last-Event-ID', async () => {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push(req.headers['last-event-id'] || '');
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    if (seen.length === 1) {
      res.end('retry: 10\nid: a1\nevent: OrderCreated\ndata: {"version":1}\n\nid: a2\ndata: {"version":2}\n\n');
    } else {
      res.write(': heartbeat\n\nid: a3\ndata: {"version":3}\n\n');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const ctl = new AbortController();
  const events = [];
  const states = [];
  const done = subscribe('/events', {
    fetchFn: (path, init) => fetch(base + path, init), signal: ctl.signal,
    onState: (s) => states.push(s),
    onEvent: (m) => { events.push(m); if (events.length === 3) ctl.abort(); },
  });
  await done;
  server.closeAllConnections();
  server.close();
  assert.deepEqual(events.map((m) => [m.id, m.data.version]), [['a1', 1], ['a2', 2], ['a3', 3]]);
  assert.equal(events[0].event, 'OrderCreated');
  assert.deepEqual(seen, ['', 'a2'], 'the second request resumes from the last id');
  assert.ok(states.includes('reconnecting'));
});

test('subscribe stops on 404 (no stream on this node)', async () => {
  const server = createServer((req, res) => { res.writeHead(404); res.end('{}'); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const states = [];
  await subscribe('/events', {
    fetchFn: (path, init) => fetch(`http://127.0.0.1:${server.address().port}${path}`, init), signal: new AbortController().signal,
    onState: (s) => states.push(s), onEvent: () => {},
  });
  server.close();
  assert.deepEqual(states, ['connecting', 'unsupported']);
});
