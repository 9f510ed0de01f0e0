// The console: orders, an order's timeline with time travel, live events and
// the cluster, from the API of the node that served the page. Views are
// chosen by the URL's hash (#/orders, #/orders/{id}, #/live, #/cluster).

import { api, askAgain, authFetch, ApiError, forgetToken, token } from './api.js';
import { foldEvents, mergeEvents } from './fold.js';
import { subscribe } from './sse.js';

const $ = (sel) => document.querySelector(sel);

/** h builds an element; children are nodes or text (never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '');
const fmtMoney = (n) => (n === undefined ? '' : Number(n).toFixed(2));
const statusBadge = (s) => h('span', { class: 'status', 'data-status': s || '' }, s || '');

// ---- banner (the API's error messages) ----

function showError(err) {
  const b = $('#banner');
  const prefix = err instanceof ApiError ? `${err.status}${err.code ? ' ' + err.code : ''}: ` : '';
  b.querySelector('.banner-text').textContent = prefix + (err.message || String(err));
  b.hidden = false;
}
function clearError() { $('#banner').hidden = true; }
$('#banner .banner-close').addEventListener('click', clearError);

// ---- owners: X-Order-Owner of every order the page has read ----

const owners = new Map(); // orderId -> node id
const ownerSeen = new Map(); // orderId -> when its owner was read (ms)
const ownerTTL = 30000; // an owner changes only on failover: read it again after this

function noteOwner(id, headers) {
  const o = headers.get('X-Order-Owner');
  if (o) { owners.set(id, o); ownerSeen.set(id, Date.now()); }
  return o;
}

/**
 * lookupOwners reads GET /orders/{id} (four at a time) to learn the owner of
 * each id not read in the last ownerTTL; onEach gets every id's owner.
 */
async function lookupOwners(ids, onEach) {
  const fresh = (id) => owners.has(id) && Date.now() - ownerSeen.get(id) < ownerTTL;
  for (const id of ids) if (fresh(id)) onEach(id, owners.get(id));
  const queue = ids.filter((id) => !fresh(id));
  const worker = async () => {
    while (queue.length) {
      const id = queue.shift();
      try {
        const r = await api(`/orders/${encodeURIComponent(id)}`);
        onEach(id, noteOwner(id, r.headers));
      } catch { onEach(id, undefined); }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

// ---- views ----

let current = null; // {name, stop()} of the view shown

function route() {
  const hash = location.hash || '#/orders';
  if (current && current.stop) current.stop();
  clearError();
  const m = /^#\/orders\/([^/]+)$/.exec(hash);
  let name = 'orders';
  if (m) name = 'order';
  else if (hash === '#/live') name = 'live';
  else if (hash === '#/cluster') name = 'cluster';
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === (name === 'order' ? 'orders' : name));
  current = { name };
  if (name === 'orders') current.stop = showOrders();
  if (name === 'order') current.stop = showOrder(decodeURIComponent(m[1]));
  if (name === 'live') current.stop = showLive();
  if (name === 'cluster') current.stop = showCluster();
}
window.addEventListener('hashchange', route);

// ---- orders ----

const list = { cursors: [''], page: 0, next: '', rows: [] };

function itemRow(i) {
  return h('div', { class: 'item' },
    h('input', { name: 'productId', value: `prod-${i}`, required: true, 'aria-label': 'product id' }),
    h('input', { name: 'name', value: i === 1 ? 'Laptop' : `Item ${i}`, 'aria-label': 'name' }),
    h('input', { name: 'quantity', type: 'number', min: 1, value: 1, required: true, 'aria-label': 'quantity' }),
    h('input', { name: 'price', type: 'number', min: 0.01, step: 0.01, value: '999.99', required: true, 'aria-label': 'price' }),
    h('button', { type: 'button', class: 'link', 'aria-label': 'remove item', onclick: (e) => e.target.closest('.item').remove() }, '×'));
}
$('#create-form .items').append(itemRow(1));
$('#add-item').addEventListener('click', () => $('#create-form .items').append(itemRow($('#create-form .items').children.length)));

$('#create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const items = [...f.querySelectorAll('.item')].map((row) => ({
    productId: row.querySelector('[name=productId]').value,
    name: row.querySelector('[name=name]').value,
    quantity: Number(row.querySelector('[name=quantity]').value),
    price: Number(row.querySelector('[name=price]').value),
  }));
  const btn = $('#create-submit');
  btn.disabled = true;
  try {
    const r = await api('/orders', { method: 'POST', body: { customerId: f.customerId.value, items }, headers: { 'Idempotency-Key': crypto.randomUUID() } });
    noteOwner(r.body.orderId, r.headers);
    location.hash = `#/orders/${encodeURIComponent(r.body.orderId)}`;
  } catch (err) { showError(err); } finally { btn.disabled = false; }
});

// listSeq numbers the list's loads: only the newest one renders, so that an
// answer to an older filter or page that arrives late cannot replace it.
let listSeq = 0;

async function loadOrders() {
  const seq = ++listSeq;
  const status = $('#filter-status').value;
  const q = new URLSearchParams({ limit: $('#filter-limit').value });
  if (status) q.set('status', status);
  const cursor = list.cursors[list.page];
  if (cursor) q.set('cursor', cursor);
  try {
    const r = await api(`/orders?${q}`);
    if (seq !== listSeq) return;
    list.rows = r.body;
    list.next = r.headers.get('X-Next-Cursor') || '';
    renderOrders();
    lookupOwners(list.rows.map((o) => o.orderId), (id, owner) => {
      const cell = document.querySelector(`#orders-body tr[data-id="${CSS.escape(id)}"] .owner`);
      if (cell) cell.textContent = owner || '?';
    });
  } catch (err) { if (seq === listSeq) showError(err); }
}

function renderOrders() {
  const body = $('#orders-body');
  body.replaceChildren(...list.rows.map((o) => h('tr', { 'data-id': o.orderId },
    h('td', { 'data-label': 'Order' }, h('a', { href: `#/orders/${encodeURIComponent(o.orderId)}` }, h('code', {}, o.orderId))),
    h('td', { 'data-label': 'Customer' }, o.customerId),
    h('td', { 'data-label': 'Status' }, statusBadge(o.status)),
    h('td', { 'data-label': 'Total', class: 'num' }, fmtMoney(o.total)),
    h('td', { 'data-label': 'Items', class: 'num' }, o.itemCount),
    h('td', { 'data-label': 'Version', class: 'num' }, o.version),
    h('td', { 'data-label': 'Updated' }, fmtTime(o.updatedAt)),
    h('td', { 'data-label': 'Owner', class: 'owner' }, owners.get(o.orderId) || '…'))));
  $('#orders-empty').hidden = list.rows.length > 0;
  $('#page-next').disabled = !list.next;
  $('#page-first').disabled = list.page === 0;
  $('#page-info').textContent = `page ${list.page + 1}`;
}

$('#filter-status').addEventListener('change', () => { list.cursors = ['']; list.page = 0; loadOrders(); });
$('#filter-limit').addEventListener('change', () => { list.cursors = ['']; list.page = 0; loadOrders(); });
$('#page-first').addEventListener('click', () => { list.page = 0; loadOrders(); });
$('#page-next').addEventListener('click', () => {
  if (!list.next) return;
  list.cursors[list.page + 1] = list.next;
  list.page++;
  loadOrders();
});

function showOrders() {
  loadOrders();
  // New events refresh the list (at most once a second).
  let pending = null;
  const off = onFeed(() => { pending ??= setTimeout(() => { pending = null; loadOrders(); }, 1000); });
  return () => { off(); clearTimeout(pending); };
}

// ---- one order: state, actions, timeline, time travel ----

const orderFields = [
  ['customerId', 'Customer'], ['status', 'Status'], ['total', 'Total', fmtMoney], ['items', 'Items', (items) => items.map((i) => `${i.quantity} × ${i.name || i.productId} @ ${fmtMoney(i.price)}`).join(', ')],
  ['createdAt', 'Created', fmtTime], ['paymentMethod', 'Payment'], ['paidAt', 'Paid', fmtTime], ['trackingNumber', 'Tracking'],
  ['shippedAt', 'Shipped', fmtTime], ['deliveredAt', 'Delivered', fmtTime], ['cancelReason', 'Cancel reason'], ['cancelledAt', 'Cancelled', fmtTime], ['version', 'Version'],
];

function renderFields(dl, o) {
  dl.replaceChildren();
  if (!o) return;
  for (const [k, label, fmt] of orderFields) {
    if (o[k] === undefined) continue;
    dl.append(h('dt', {}, label), h('dd', { 'data-field': k }, k === 'status' ? statusBadge(o[k]) : fmt ? fmt(o[k]) : String(o[k])));
  }
}

const eventDetails = (e) => [
  e.customerId && `customer ${e.customerId}`, e.total !== undefined && `total ${fmtMoney(e.total)}`, e.paymentMethod && `by ${e.paymentMethod}`,
  e.trackingNumber && `tracking ${e.trackingNumber}`, e.reason && `reason: ${e.reason}`,
].filter(Boolean).join(', ');
const eventTime = (e) => e.createdAt || e.paidAt || e.shippedAt || e.deliveredAt || e.cancelledAt;

function showOrder(id) {
  const path = `/orders/${encodeURIComponent(id)}`;
  const ctl = new AbortController();
  const st = { events: [], order: null, asOf: undefined, follow: true, serverAsOf: undefined };
  $('#order-id').textContent = id;
  $('#order-owner').textContent = owners.get(id) || '?';
  for (const el of ['#order-now', '#order-asof', '#timeline']) $(el).replaceChildren();
  $('#order-status').replaceChildren();

  const render = () => {
    const o = st.order;
    $('#order-status').replaceChildren(statusBadge(o && o.status));
    $('#order-version').textContent = o ? o.version : '';
    renderFields($('#order-now'), o);
    const max = st.events.length ? st.events[st.events.length - 1].version : 1;
    const slider = $('#asof-slider');
    slider.max = String(max);
    if (st.follow || st.asOf === undefined) st.asOf = max;
    slider.value = String(st.asOf);
    renderTimeline();
    renderAsOf();
  };

  const renderTimeline = () => {
    $('#timeline').replaceChildren(...st.events.map((e) => h('li', {
      'data-version': e.version, class: e.version <= st.asOf ? 'past' : 'future',
      onclick: () => { st.asOf = e.version; st.follow = e.version === st.events.length; render(); },
    }, h('span', { class: 'v' }, `v${e.version}`), ' ', h('strong', {}, e.type), ' ', h('span', { class: 'muted' }, fmtTime(eventTime(e))), ' ', eventDetails(e))));
  };

  // The state as of the slider: folded here from the history, and the
  // server's answer to ?asOf= when the node has it (they must agree).
  let asOfSeq = 0;
  const renderAsOf = async () => {
    const v = st.asOf;
    const seq = ++asOfSeq;
    let folded = null;
    let foldError = '';
    try { folded = foldEvents(st.events, v); } catch (err) { foldError = err.message; }
    const e = st.events.find((x) => x.version === v);
    $('#asof-label').textContent = e ? `as of version ${v} of ${st.events.length}: ${e.type}, ${fmtTime(eventTime(e))}` : '';
    const warn = $('#asof-warning');
    warn.hidden = !foldError;
    warn.textContent = foldError;
    let shown = folded;
    let source = 'folded from the history in this page';
    if (st.serverAsOf !== false && st.events.length) {
      try {
        const r = await api(`${path}?asOf=${v}`);
        if (seq !== asOfSeq) return;
        st.serverAsOf = true;
        shown = r.body;
        source = `GET ${path}?asOf=${v}`;
        const diff = folded ? differences(canonical(folded), canonical(r.body)) : [];
        if (diff.length) {
          warn.hidden = false;
          warn.textContent = `The server's ?asOf= answer differs from the history folded in the page: ${diff.join(', ')}.`;
        }
      } catch (err) {
        if (seq !== asOfSeq) return;
        // An older node refuses the unknown parameter (400): fold here.
        if (err instanceof ApiError && err.status === 400 && /unknown query parameter/.test(err.message)) st.serverAsOf = false;
        else if (err instanceof ApiError) showError(err);
      }
    }
    if (seq !== asOfSeq) return;
    $('#asof-source').textContent = `(${source})`;
    $('#order-asof').dataset.version = String(v);
    renderFields($('#order-asof'), shown);
  };

  $('#asof-slider').oninput = (ev) => {
    st.asOf = Number(ev.target.value);
    st.follow = st.asOf === Number(ev.target.max);
    renderTimeline();
    renderAsOf();
  };

  const refresh = async () => {
    try {
      const [o, hist] = await Promise.all([api(path), api(`${path}/history`)]);
      st.order = o.body;
      $('#order-owner').textContent = noteOwner(id, o.headers) || '?';
      st.events = mergeEvents(st.events, hist.body);
      render();
    } catch (err) { showError(err); }
  };

  for (const form of document.querySelectorAll('#view-order form.action')) {
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      clearError();
      const body = {};
      for (const input of form.querySelectorAll('input')) body[input.name] = input.value;
      const btn = form.querySelector('button');
      btn.disabled = true;
      try {
        const r = await api(`${path}/${form.dataset.op}`, { method: 'POST', body, headers: { 'Idempotency-Key': crypto.randomUUID() } });
        st.order = r.body;
        $('#order-owner').textContent = noteOwner(id, r.headers) || '?';
        render();
        if (!feedIsLive(orderFeed)) refresh();
      } catch (err) { showError(err); } finally { btn.disabled = false; }
    };
  }

  // The order's own stream: its history, then its live events.
  const orderFeed = { state: 'off' };
  const setFeed = (s) => { orderFeed.state = s; const el = $('#order-feed'); el.dataset.state = s; el.textContent = s; };
  refresh();
  subscribe(`${path}/events`, {
    fetchFn: authFetch, signal: ctl.signal,
    onState: (s) => { if (s === 'unsupported') setFeed('polling'); else setFeed(s); },
    onEvent: (m) => {
      if (!m.data || typeof m.data !== 'object' || m.data.orderId !== id) return;
      const before = st.events.length;
      st.events = mergeEvents(st.events, [m.data]);
      if (st.events.length === before) return;
      try { st.order = { ...foldEvents(st.events) }; } catch { /* the warning shows it */ }
      render();
      api(path).then((r) => { st.order = r.body; $('#order-owner').textContent = noteOwner(id, r.headers) || '?'; render(); }).catch(() => {});
    },
  }).then(() => {
    if (ctl.signal.aborted) return;
    // No stream on this node: follow the order by polling.
    const t = setInterval(refresh, 1500);
    ctl.signal.addEventListener('abort', () => clearInterval(t));
  });
  return () => ctl.abort();
}

/** canonical drops what a fold and the server may spell differently (absent vs empty). */
function canonical(o) {
  const out = {};
  for (const k of Object.keys(o).sort()) if (o[k] !== '' && o[k] !== undefined && o[k] !== null) out[k] = k.endsWith('At') ? Date.parse(o[k]) : o[k];
  return out;
}

/** differences names the fields in which two orders differ. */
function differences(a, b) {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k} (${JSON.stringify(a[k])} here, ${JSON.stringify(b[k])} from the server)`);
}

// ---- the live feed: every event of the cluster, from GET /events ----

const feed = { state: 'off', events: [], listeners: new Set(), received: 0 };
const feedIsLive = (f) => f.state === 'live';

function onFeed(fn) { feed.listeners.add(fn); return () => feed.listeners.delete(fn); }

function setFeedState(s, detail) {
  feed.state = s;
  const el = $('#feed-state');
  el.dataset.state = s;
  el.textContent = `feed: ${s}`;
  el.title = detail ? `the live feed: ${detail}` : 'the live feed';
}

function feedEvent(e, receivedAt = new Date()) {
  feed.received++;
  feed.events.unshift({ e, receivedAt });
  if (feed.events.length > 200) feed.events.length = 200;
  for (const fn of feed.listeners) fn(e);
}

function startFeed() {
  const ctl = new AbortController();
  subscribe('/events', {
    fetchFn: authFetch, signal: ctl.signal,
    onState: (s, d) => setFeedState(s === 'live' ? 'live' : s, d),
    onEvent: (m) => { if (m.data && typeof m.data === 'object' && m.data.orderId) feedEvent(m.data); },
  }).then(() => { if (!ctl.signal.aborted) pollFeed(ctl.signal); });
}

/**
 * pollFeed stands in for GET /events on a node that has no stream: it reads
 * the newest orders every 1.5 s and the history of those that changed.
 */
async function pollFeed(signal) {
  setFeedState('polling', 'this node has no /events stream');
  const known = new Map();
  let first = true;
  while (!signal.aborted) {
    try {
      const r = await api('/orders?limit=50');
      for (const o of r.body) {
        const was = known.get(o.orderId);
        known.set(o.orderId, o.version);
        if (first || was === o.version) continue;
        const hist = await api(`/orders/${encodeURIComponent(o.orderId)}/history`);
        for (const e of hist.body) if (e.version > (was || 0)) feedEvent(e);
      }
      first = false;
    } catch { /* shown by the views */ }
    await new Promise((res) => setTimeout(res, 1500));
  }
}

// ---- live view ----

async function loadStats() {
  try {
    const r = await api('/stats');
    const s = r.body;
    const card = (label, value, key) => h('div', { class: 'stat', 'data-stat': key }, h('span', { class: 'stat-value' }, value), h('span', { class: 'stat-label' }, label));
    const cards = [card('orders', s.totalOrders, 'totalOrders'), card('revenue', fmtMoney(s.totalRevenue), 'totalRevenue')];
    for (const st of ['Pending', 'Paid', 'Shipped', 'Delivered', 'Cancelled']) cards.push(card(st.toLowerCase(), s.byStatus[st] || 0, st));
    if (s.outbox) cards.push(card('outbox lag', s.outbox.lag, 'outboxLag'));
    if (s.readModel) cards.push(card('read model applied', s.readModel.applied, 'applied'));
    $('#stats').replaceChildren(...cards);
    return s;
  } catch (err) { showError(err); return null; }
}

function renderLive() {
  const rows = feed.events.map(({ e, receivedAt }) => h('tr', { 'data-order': e.orderId, 'data-type': e.type, 'data-version': e.version },
    h('td', { 'data-label': 'Received' }, receivedAt.toLocaleTimeString()),
    h('td', { 'data-label': 'Event' }, h('strong', {}, e.type)),
    h('td', { 'data-label': 'Order' }, h('a', { href: `#/orders/${encodeURIComponent(e.orderId)}` }, h('code', {}, e.orderId))),
    h('td', { 'data-label': 'Version', class: 'num' }, e.version),
    h('td', { 'data-label': 'Details' }, eventDetails(e))));
  $('#live-body').replaceChildren(...rows);
  $('#live-empty').hidden = rows.length > 0;
  $('#live-count').textContent = `(${feed.received} since this page opened)`;
}

function showLive() {
  renderLive();
  loadStats();
  let pending = null;
  // The read model behind /stats follows the events a few milliseconds
  // behind the stream: read it shortly after an event, and again a second on.
  let again = null;
  let frame = 0; // one render a frame, however many events arrive
  const off = onFeed(() => {
    frame ||= requestAnimationFrame(() => { frame = 0; renderLive(); });
    pending ??= setTimeout(() => { pending = null; loadStats(); }, 200);
    clearTimeout(again);
    again = setTimeout(loadStats, 1000);
  });
  const t = setInterval(loadStats, 2000);
  return () => { off(); clearInterval(t); clearTimeout(pending); clearTimeout(again); cancelAnimationFrame(frame); };
}

// ---- cluster view ----

async function loadCluster() {
  let info; let stats; let health;
  try {
    [info, stats] = await Promise.all([api('/'), api('/stats')]);
  } catch (err) { showError(err); return; }
  try { health = await api('/health'); } catch (err) {
    // 503 is an answer too: the report says what is down.
    health = err instanceof ApiError && err.status === 503 ? null : undefined;
    if (health === undefined) showError(err);
  }
  const i = info.body;
  renderFields2($('#node-info'), [
    ['Node', i.nodeId], ['Mode', i.mode], ['Transport', i.transport],
    ['Persistence', i.persistence && `${i.persistence.name}${i.persistence.durability ? ` (${i.persistence.durability})` : ''}`],
    ['Routing view', i.view && `${i.view.digest} over ${i.view.members} members`], ['Started', fmtTime(i.startedAt)], ['Version', i.version],
  ]);
  if (!list.rows.length) {
    try { list.rows = (await api('/orders?limit=20')).body; } catch { /* shown elsewhere */ }
  }
  const shown = list.rows;
  await lookupOwners(shown.map((o) => o.orderId), () => {});
  const parts = (stats.body.outbox && stats.body.outbox.partitions) || [];
  const members = i.members || [];
  const memberOf = (addr) => members.find((m) => m.address === addr);
  $('#members-body').replaceChildren(...members.map((m) => {
    const node = m.nodeId || m.id;
    const ownsOrders = shown.filter((o) => owners.get(o.orderId) === node).length;
    const drains = parts.filter((p) => p.owner === m.address).map((p) => p.partition);
    return h('tr', { 'data-node': node, class: node === i.nodeId ? 'self' : '' },
      h('td', { 'data-label': 'Node' }, h('span', {}, h('strong', {}, node), node === i.nodeId ? ' (this node)' : '')),
      h('td', { 'data-label': 'Address' }, h('code', {}, m.address)),
      h('td', { 'data-label': 'Member id' }, h('code', { class: 'small' }, m.id)),
      h('td', { 'data-label': 'Kinds' }, (m.kinds || []).join(', ')),
      h('td', { 'data-label': 'Orders shown', class: 'num owns' }, ownsOrders),
      h('td', { 'data-label': 'Partitions', class: 'drains' }, drains.length ? drains.join(', ') : '–'));
  }));
  $('#partitions-body').replaceChildren(...parts.map((p) => {
    const m = memberOf(p.owner);
    return h('tr', { 'data-partition': p.partition },
      h('td', { 'data-label': 'Partition', class: 'num' }, p.partition),
      h('td', { 'data-label': 'Drained by', class: 'owner' }, m ? (m.nodeId || m.id) : (p.owner || '?'), m ? h('span', { class: 'muted' }, ` ${p.owner}`) : ''),
      h('td', { 'data-label': 'Checkpoint', class: 'num' }, p.checkpoint),
      h('td', { 'data-label': 'Head', class: 'num' }, p.head),
      h('td', { 'data-label': 'Lag', class: 'num lag' }, p.lag));
  }));
  $('#owners-empty').hidden = shown.length > 0;
  $('#owners-body').replaceChildren(...shown.map((o) => h('tr', { 'data-id': o.orderId },
    h('td', { 'data-label': 'Order' }, h('a', { href: `#/orders/${encodeURIComponent(o.orderId)}` }, h('code', {}, o.orderId))),
    h('td', { 'data-label': 'Status' }, statusBadge(o.status)),
    h('td', { 'data-label': 'Owner', class: 'owner' }, owners.get(o.orderId) || '?'))));
  if (health !== undefined) renderHealth(health && health.body);
}

function renderFields2(dl, pairs) {
  dl.replaceChildren(...pairs.filter(([, v]) => v !== undefined && v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

async function renderHealth(report) {
  if (!report) {
    // /health answered 503: read the body anyway.
    const res = await authFetch('/health');
    report = await res.json().catch(() => null);
    if (!report) return;
  }
  $('#health-status').replaceChildren(statusBadge(report.status));
  const comps = Object.entries(report.components || {}).sort(([a], [b]) => a.localeCompare(b));
  $('#health-body').replaceChildren(...comps.map(([name, c]) => h('tr', { 'data-component': name },
    h('td', { 'data-label': 'Component' }, h('strong', {}, name)),
    h('td', { 'data-label': 'Status' }, statusBadge(c.status)),
    h('td', { 'data-label': 'Latency', class: 'num' }, `${Number(c.latencyMs || 0).toFixed(1)} ms`),
    h('td', { 'data-label': 'Supervisor' }, c.monitor
      ? `${c.monitor.up ? 'up' : 'down'} since ${fmtTime(c.monitor.since)}, ${c.monitor.consecutiveFailures} failures, checked ${fmtTime(c.monitor.checkedAt)}${c.monitor.lastError ? `, last error: ${c.monitor.lastError}` : ''}`
      : '–'),
    h('td', { 'data-label': 'Error' }, c.error || ''))));
  const rm = report.readModel;
  renderFields2($('#health-extra'), rm ? [
    ['Read model applied', rm.applied], ['Repaired', rm.repaired], ['Dead-lettered', rm.deadLettered], ['Quarantined', rm.quarantined],
  ] : []);
}

function showCluster() {
  loadCluster();
  const t = setInterval(loadCluster, 3000);
  return () => clearInterval(t);
}

// ---- start ----

$('#forget-token').addEventListener('click', () => { forgetToken(); location.reload(); });
$('#enter-token').addEventListener('click', () => { askAgain(); route(); api('/').catch(showError); });
document.addEventListener('token-prompt', (ev) => {
  $('#enter-token').hidden = ev.detail.ok;
  $('#forget-token').hidden = !ev.detail.ok;
});

async function start() {
  try {
    const r = await api('/');
    $('#node-badge').textContent = r.body.nodeId ? `node ${r.body.nodeId}` : '';
  } catch (err) { showError(err); }
  $('#forget-token').hidden = !token();
  route();
  startFeed();
}
start();
