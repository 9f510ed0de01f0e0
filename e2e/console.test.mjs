// End-to-end tests of the console at /ui/ in headless Chromium (Debian's
// chromium package, driven by playwright-core; no browser download). The
// nodes are started by console_test.go (go test -tags e2e ./e2e/), which
// passes their URLs in the environment:
//   E2E_URLS         the three members of a cluster, comma-separated
//   E2E_TOKEN_URL    a node started with --api-token E2E_TOKEN
//   E2E_CHROMIUM     the browser (default /usr/bin/chromium)
//   E2E_SCREENSHOTS  where the screenshots go (default ./screenshots)

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

const urls = (process.env.E2E_URLS || '').split(',').filter(Boolean);
const tokenURL = process.env.E2E_TOKEN_URL;
const apiToken = process.env.E2E_TOKEN;
const shots = process.env.E2E_SCREENSHOTS || 'screenshots';
if (urls.length !== 3 || !tokenURL || !apiToken) {
  throw new Error('E2E_URLS (three nodes), E2E_TOKEN_URL and E2E_TOKEN must be set: run go test -tags e2e ./e2e/');
}
mkdirSync(shots, { recursive: true });

// The state the live feed must reach: 'live' (GET /events, Server-Sent
// Events). E2E_FEED=polling accepts the console's fallback for a node
// without the stream.
const feedState = process.env.E2E_FEED || 'live';

const desktop = { width: 1280, height: 800 };
const phone = { width: 390, height: 844 };

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
after(async () => { await browser?.close(); });

/** newPage opens a page in a context of its own (its own sessionStorage), failing on any page error. */
async function newPage(viewport, ctxOptions = {}) {
  const ctx = await browser.newContext({ viewport, ...ctxOptions });
  ctx.setDefaultTimeout(10000);
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(new Error(m.text())); });
  return page;
}

function noErrors(page) {
  // 4xx answers the test provokes are logged by Chromium as console errors ("Failed to load resource").
  const real = page.errors.filter((e) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(e.message));
  assert.deepEqual(real.map(String), [], 'errors in the page');
}

async function shoot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** until polls fn until it returns a truthy value, or fails after ms. */
async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** call calls a node's API from the test itself (not the page). */
async function call(base, path, { method = 'GET', body, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

const text = (page, sel) => page.locator(sel).first().innerText();

let orderId; // created in the page by the first test
let owner;

test('create an order in the page, pay it, see the event arrive live, travel in time', async () => {
  const page = await newPage(desktop);
  const live = await newPage(desktop); // another member's live view
  await live.goto(`${urls[1]}/ui/#/live`);
  await live.locator(`#feed-state[data-state=${feedState}]`).waitFor();

  await page.goto(`${urls[0]}/ui/`);
  await page.locator('#view-orders').waitFor();
  await page.fill('#create-form [name=customerId]', 'e2e-customer');
  await page.fill('#create-form .item [name=quantity]', '2');
  await page.fill('#create-form .item [name=price]', '12.50');
  await page.click('#create-submit');
  await page.waitForURL(/#\/orders\/[0-9a-f]+$/);
  orderId = decodeURIComponent(page.url().split('#/orders/')[1]);
  assert.equal(await text(page, '#order-id'), orderId);
  await page.locator('#order-status [data-status=Pending]').waitFor();
  assert.equal(await text(page, '#order-now [data-field=total]'), '25.00');
  owner = await until('the owner', async () => { const o = await text(page, '#order-owner'); return o !== '?' && o; });
  const direct = await call(urls[2], `/orders/${orderId}`);
  assert.equal(owner, direct.headers.get('X-Order-Owner'), 'the owner shown is the X-Order-Owner of the order');
  await page.locator(`#order-feed[data-state=${feedState}]`).waitFor();

  // The creation reaches the other member's live view without a reload.
  await live.locator(`#live-body tr[data-order="${orderId}"][data-type=OrderCreated]`).waitFor();

  const paidAt = Date.now();
  await page.click('form.action[data-op=pay] button');
  await page.locator('#order-status [data-status=Paid]').waitFor();
  await live.locator(`#live-body tr[data-order="${orderId}"][data-type=OrderPaid]`).waitFor();
  console.log(`OrderPaid shown in another member's live view ${Date.now() - paidAt} ms after the click`);
  await page.locator('#timeline li[data-version="2"]').waitFor();
  await until('the stats to count the paid order', async () => Number(await text(live, '[data-stat=Paid] .stat-value')) >= 1);

  await page.fill('form.action[data-op=ship] input', 'TRACK-E2E');
  await page.click('form.action[data-op=ship] button');
  await page.locator('#order-status [data-status=Shipped]').waitFor();
  await page.locator('#timeline li[data-version="3"]').waitFor();

  // A refused transition shows the API's own message.
  const refusal = page.waitForResponse((r) => r.url().endsWith(`/orders/${orderId}/pay`) && r.request().method() === 'POST');
  await page.click('form.action[data-op=pay] button');
  const res = await refusal;
  assert.equal(res.status(), 409);
  const { error } = await res.json();
  await page.locator('#banner:not([hidden])').waitFor();
  assert.match(await text(page, '#banner .banner-text'), new RegExp(`409 invalid_transition: ${error.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  await page.click('#banner .banner-close');

  // Time travel: the slider shows the order as of each version.
  const disagreements = [];
  const want = { 1: ['Pending', undefined], 2: ['Paid', 'card'], 3: ['Shipped', 'card'] };
  for (const v of [1, 2, 3, 1]) {
    await page.fill('#asof-slider', String(v));
    await page.locator(`#order-asof[data-version="${v}"] [data-field=status]`).waitFor();
    assert.equal(await text(page, '#order-asof [data-field=status]'), want[v][0], `status as of version ${v}`);
    assert.equal(await page.locator('#order-asof [data-field=paymentMethod]').count(), want[v][1] ? 1 : 0, `payment as of version ${v}`);
    assert.equal(await page.locator('#order-asof [data-field=trackingNumber]').count(), v >= 3 ? 1 : 0, `tracking as of version ${v}`);
    assert.equal(await page.locator('#timeline li.future').count(), 3 - v, `events after version ${v}`);
    // Checked at the end, so that the tests after this one still get a delivered order.
    if (await page.locator('#asof-warning').isVisible()) disagreements.push(`version ${v}: ${await text(page, '#asof-warning')}`);
  }
  assert.match(await text(page, '#asof-label'), /as of version 1 of 3: OrderCreated/);
  assert.ok(await page.locator('#banner').isHidden(), 'no error while travelling in time');
  await shoot(page, 'desktop-order');

  // While the slider is in the past, a new event does not move it.
  await page.click('form.action[data-op=deliver] button');
  await page.locator('#timeline li[data-version="4"]').waitFor();
  assert.equal(await page.locator('#asof-slider').inputValue(), '1');
  assert.equal(await text(page, '#order-now [data-field=status]'), 'Delivered');
  await live.locator(`#live-body tr[data-order="${orderId}"][data-type=OrderDelivered]`).waitFor();
  await until('the stats to count the delivered order', async () => Number(await text(live, '[data-stat=Delivered] .stat-value')) === 1);
  await shoot(live, 'desktop-live');
  assert.deepEqual(disagreements, [], 'the fold in the page and the server\'s ?asOf= agree');
  noErrors(page);
  noErrors(live);
  await page.context().close();
  await live.context().close();
});

test('the orders list filters by status and pages', async () => {
  // Six more orders, created through the API of every member.
  const created = [];
  for (let i = 0; i < 6; i++) {
    const r = await call(urls[i % 3], '/orders', { method: 'POST', body: { customerId: `list-${i}`, items: [{ productId: 'p', name: 'Pen', quantity: 1, price: 1.5 + i }] } });
    assert.equal(r.status, 201);
    created.push(r.body.orderId);
  }
  await call(urls[0], `/orders/${created[0]}/pay`, { method: 'POST', body: {} });
  await until('the read model to hold the seven orders', async () => (await call(urls[0], '/orders?limit=100')).body.length >= 7);

  const page = await newPage(desktop);
  await page.goto(`${urls[0]}/ui/#/orders`);
  await page.locator(`#orders-body tr[data-id="${orderId}"]`).waitFor();
  await until('the owners column', async () => (await text(page, `#orders-body tr[data-id="${orderId}"] .owner`)) === owner);

  await page.selectOption('#filter-status', 'Delivered');
  await until('only delivered orders', async () => {
    const statuses = await page.locator('#orders-body .status').allInnerTexts();
    return statuses.length === 1 && statuses[0] === 'Delivered';
  });
  await page.selectOption('#filter-status', 'Pending');
  await until('the five pending orders', async () => (await page.locator('#orders-body tr').count()) === 5);

  await page.selectOption('#filter-status', '');
  await page.selectOption('#filter-limit', '5');
  await until('a first page of five', async () => (await page.locator('#orders-body tr').count()) === 5);
  const first = await page.locator('#orders-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  await page.click('#page-next');
  await until('a second page of two', async () => (await page.locator('#orders-body tr').count()) === 2);
  const second = await page.locator('#orders-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(new Set([...first, ...second]), new Set([orderId, ...created]), 'the two pages hold every order once');
  assert.ok(await page.locator('#page-next').isDisabled(), 'no page after the last');
  await page.click('#page-first');
  await until('the first page again', async () => (await page.locator('#orders-body tr').count()) === 5);
  await page.selectOption('#filter-limit', '20');
  await until('every order on one page', async () => (await page.locator('#orders-body tr').count()) === 7);
  await until('every owner', async () => !(await page.locator('#orders-body .owner').allInnerTexts()).some((o) => !/^node\d$/.test(o)));
  await shoot(page, 'desktop-orders');
  noErrors(page);
  await page.context().close();
});

test('the cluster view of a three-member cluster', async () => {
  const page = await newPage(desktop);
  await page.goto(`${urls[2]}/ui/#/cluster`);
  await until('three members', async () => (await page.locator('#members-body tr').count()) === 3);
  const nodes = await page.locator('#members-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.node).sort());
  assert.deepEqual(nodes, ['node1', 'node2', 'node3']);
  for (const addr of await page.locator('#members-body td[data-label=Address]').allInnerTexts()) assert.match(addr, /^127\.0\.0\.1:\d+$/);
  assert.match(await text(page, '#members-body tr.self'), /node3 \(this node\)/);

  // Which member owns the orders shown, as X-Order-Owner says.
  await until('the owner of the first order', async () => (await text(page, `#owners-body tr[data-id="${orderId}"] .owner`)) === owner);
  const owned = await page.locator('#members-body td.owns').allInnerTexts();
  assert.equal(owned.map(Number).reduce((a, b) => a + b, 0), await page.locator('#owners-body tr').count(), 'every order shown has its member');

  // Who drains which outbox partition, and its lag.
  const parts = await until('outbox partitions', async () => {
    const rows = await page.locator('#partitions-body tr').count();
    return rows > 0 && rows;
  });
  const drainedBy = await page.locator('#partitions-body td.owner').allInnerTexts();
  assert.equal(drainedBy.length, parts);
  for (const d of drainedBy) assert.match(d, /^node\d 127\.0\.0\.1:\d+$/, 'each partition is drained by a member');
  const drains = (await page.locator('#members-body td.drains').allInnerTexts()).flatMap((s) => (s === '–' ? [] : s.split(', ')));
  assert.equal(drains.length, parts, 'every partition is listed at its member');

  // The dependencies and the supervisor's view.
  const comps = await until('health components', async () => {
    const c = await page.locator('#health-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.component));
    return c.length > 0 && c;
  });
  for (const c of ['persistence', 'transport', 'membership']) assert.ok(comps.includes(c), `component ${c} in ${comps}`);
  assert.equal(await text(page, '#health-status'), 'up');
  assert.match(await text(page, '#health-body tr[data-component=persistence] td[data-label=Supervisor]'), /up since/);
  await shoot(page, 'desktop-cluster');
  noErrors(page);
  await page.context().close();
});

test('readable on a phone (390x844)', async () => {
  const page = await newPage(phone, { isMobile: true, hasTouch: true, deviceScaleFactor: 1 });
  for (const [name, hash] of [['orders', '#/orders'], ['order', `#/orders/${orderId}`], ['live', '#/live'], ['cluster', '#/cluster']]) {
    await page.goto(`${urls[0]}/ui/${hash}`);
    await page.locator(`#view-${name}:not([hidden])`).waitFor();
    if (name === 'orders') await page.locator(`#orders-body tr[data-id="${orderId}"] .owner`).filter({ hasText: /^node/ }).waitFor();
    if (name === 'order') await page.locator('#order-asof[data-version="4"] [data-field=status]').waitFor();
    if (name === 'live') {
      await page.locator(`#feed-state[data-state=${feedState}]`).waitFor();
      const r = await call(urls[1], '/orders', { method: 'POST', body: { customerId: 'phone', items: [{ productId: 'p', name: 'Phone case', quantity: 1, price: 9.9 }] } });
      await page.locator(`#live-body tr[data-order="${r.body.orderId}"][data-type=OrderCreated]`).waitFor();
      await until('the stats to count it', async () => Number(await text(page, '[data-stat=totalOrders] .stat-value')) === 8);
    }
    if (name === 'cluster') await until('three members', async () => (await page.locator('#members-body tr').count()) === 3);
    if (name === 'cluster') await page.locator('#health-body tr').first().waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= phone.width, `${name}: the page is ${width} px wide on a ${phone.width} px screen`);
    await shoot(page, `phone-${name}`);
  }
  noErrors(page);
  await page.context().close();
});

test('behind --api-token the page asks for the token once and keeps it for the tab', async () => {
  // The API refuses without it; the console's files do not.
  assert.equal((await call(tokenURL, '/orders')).status, 401);
  assert.equal((await fetch(`${tokenURL}/ui/`)).status, 200);

  const page = await newPage(desktop);
  await page.goto(`${tokenURL}/ui/#/orders`);
  const dialog = page.locator('#token-dialog[open]');
  await dialog.waitFor();
  assert.equal(await page.locator('#token-dialog[open]').count(), 1, 'one prompt for every call that got a 401');
  assert.ok(await page.locator('.token-wrong').isHidden());
  await page.fill('#token-dialog input', `wrong-${apiToken}`);
  await page.click('#token-dialog button[type=submit]');
  await page.locator('#token-dialog[open] .token-wrong:not([hidden])').waitFor();
  await shoot(page, 'desktop-token');
  await page.fill('#token-dialog input', apiToken);
  await page.click('#token-dialog button[type=submit]');
  await dialog.waitFor({ state: 'hidden' });
  await until('the node badge', async () => /^node /.test(await text(page, '#node-badge')));

  // Everything works with it, the live feed included.
  await page.locator(`#feed-state[data-state=${feedState}]`).waitFor();
  await page.click('#create-submit');
  await page.waitForURL(/#\/orders\/[0-9a-f]+$/);
  await page.locator('#order-status [data-status=Pending]').waitFor();
  await page.click('form.action[data-op=pay] button');
  await page.locator('#order-status [data-status=Paid]').waitFor();
  await page.locator('#timeline li[data-version="2"]').waitFor();

  // Kept for the tab: a reload does not ask again ...
  await page.reload();
  await page.locator('#order-status [data-status=Paid]').waitFor();
  assert.equal(await page.locator('#token-dialog[open]').count(), 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('ordersystem.apiToken')), apiToken);
  noErrors(page);
  // ... but another tab's session (a new context) has no token.
  const other = await newPage(desktop);
  await other.goto(`${tokenURL}/ui/#/orders`);
  await other.locator('#token-dialog[open]').waitFor();
  // Cancelled, the prompt stays closed (the feed's retries do not reopen
  // it) until asked for again.
  await other.click('#token-dialog .token-cancel');
  await other.locator('#banner:not([hidden])').waitFor();
  assert.match(await text(other, '#banner .banner-text'), /^401 unauthorized: /);
  await other.locator('#enter-token:not([hidden])').waitFor();
  await other.waitForTimeout(2500);
  assert.equal(await other.locator('#token-dialog[open]').count(), 0, 'the prompt stays closed after a cancel');
  await other.click('#enter-token');
  await other.locator('#token-dialog[open]').waitFor();
  await other.fill('#token-dialog input', apiToken);
  await other.click('#token-dialog button[type=submit]');
  await other.locator(`#feed-state[data-state=${feedState}]`).waitFor({ timeout: 15000 });
  await other.locator('#orders-body tr').first().waitFor();
  await page.context().close();
  await other.context().close();
});
