// Publish-to-browser latency: the time from a create's 201 (the order's
// first event is journaled) to the event's row in the console's live view,
// in headless Chromium, through another member than the one written to.
// Started by TestConsoleLatency (E2E_LATENCY=<orders> go test -tags e2e
// -run TestConsoleLatency -v ./e2e/), which passes the nodes as for
// console.test.mjs. It writes at a bounded rate (E2E_RATE orders/s,
// default 20) and prints p50, p99 and max.

import { chromium } from 'playwright-core';

const urls = (process.env.E2E_URLS || '').split(',').filter(Boolean);
const n = Number(process.env.E2E_LATENCY || 200);
const rate = Number(process.env.E2E_RATE || 20);
if (urls.length < 2) throw new Error('E2E_URLS (two nodes or more) must be set: run go test -tags e2e -run TestConsoleLatency ./e2e/');

const browser = await chromium.launch({
  executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${urls[1]}/ui/#/live`);
  await page.locator('#feed-state[data-state=live]').waitFor();
  // Record, in the page, when each OrderCreated row first appears.
  await page.evaluate(() => {
    window.shownAt = {};
    new MutationObserver(() => {
      const now = Date.now();
      for (const tr of document.querySelectorAll('#live-body tr[data-type=OrderCreated]')) window.shownAt[tr.dataset.order] ??= now;
    }).observe(document.querySelector('#live-body'), { childList: true });
  });

  const acked = {};
  const start = Date.now();
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / rate;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    const res = await fetch(`${urls[0]}/orders`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ customerId: `lat-${i}`, items: [{ productId: 'p', name: 'n', quantity: 1, price: 1 }] }),
    });
    const body = await res.json();
    if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(body)}`);
    acked[body.orderId] = Date.now();
  }
  const deadline = Date.now() + 15000;
  let shown;
  for (;;) {
    shown = await page.evaluate(() => window.shownAt);
    if (Object.keys(acked).every((id) => shown[id]) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const missing = Object.keys(acked).filter((id) => !shown[id]);
  const ms = Object.keys(acked).filter((id) => shown[id]).map((id) => Math.max(0, shown[id] - acked[id])).sort((a, b) => a - b);
  const q = (p) => ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)];
  console.log(`publish-to-browser latency over ${ms.length} events (${rate}/s, created on ${urls[0]}, shown by ${urls[1]}): p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${ms[ms.length - 1]} ms; ${missing.length} not shown within 15 s`);
  if (missing.length) process.exitCode = 1;
} finally {
  await browser.close();
}
