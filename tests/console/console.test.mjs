// The web console (admin/console) in headless Chromium against a real annald:
// appends with the annal CLI, then checks what each view shows and saves a
// screenshot of it. Every wait is for a condition in the page, with a timeout.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launch, screenshotDir } from './browser.mjs';
import { annal, startNode } from './node.mjs';

const TIMEOUT = 10000;
const tid = (id) => `[data-testid="${id}"]`;

describe('the web console', { timeout: 60000 }, () => {
  let node, browser, page, shots;
  const pageErrors = [];
  const appended = [];  // what the log holds, by position

  async function append(stream, type, data, ...tags) {
    const out = await annal(node, 'append', stream, '--type', type, '--data', JSON.stringify(data),
      ...tags.flatMap((t) => ['--tag', t]));
    const revision = appended.filter((e) => e.stream === stream).length;
    // The node is fresh and appends one at a time, so positions are 0, 1, 2, ...
    assert.equal(out.position, appended.length, `annal append ${stream}: ${JSON.stringify(out)}`);
    appended.push({ position: appended.length, stream, revision, type, data, tags });
    return appended.at(-1);
  }

  // Waits until fn(arg) is true in the page; on timeout says what and shows the view.
  async function waitFor(what, fn, arg) {
    try {
      await page.waitForFunction(fn, arg, { timeout: TIMEOUT });
    } catch (e) {
      const view = await page.locator('#view').innerText().catch(() => '(no view)');
      throw new Error(`timed out waiting for ${what}; the view shows:\n${view.slice(0, 1500)}`, { cause: e });
    }
  }

  const waitText = (id, want) => waitFor(`${id} to read ${JSON.stringify(want)}`,
    ([sel, w]) => document.querySelector(sel)?.textContent.trim() === w, [tid(id), want]);

  const waitTextMatches = (id, re) => waitFor(`${id} to match ${re}`,
    ([sel, src]) => new RegExp(src).test(document.querySelector(sel)?.textContent ?? ''), [tid(id), re.source]);

  // The rows of an event table, as the value of one data- attribute each.
  const waitRows = (table, attr, want) => waitFor(`${table} rows' ${attr} to be ${JSON.stringify(want)}`,
    ([sel, a, w]) => JSON.stringify([...document.querySelectorAll(`${sel} [data-testid="event-row"]`)]
      .map((r) => Number(r.dataset[a]))) === w, [tid(table), attr, JSON.stringify(want)]);

  const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);
  const open = (hash) => page.goto(`${node.url}/${hash}`);
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });

  before(async () => {
    shots = screenshotDir();
    node = await startNode();
    // 30 events: order-1 gets 23 (two types), order-2 gets 7 (positions 3, 7, ... 27).
    for (let i = 0; i < 30; i++) {
      if (i % 4 === 3) await append('order-2', 'OrderShipped', { order: 2, n: i, carrier: 'dhl' }, 'region:us');
      else await append('order-1', i % 2 ? 'OrderPaid' : 'OrderPlaced', { order: 1, n: i, items: [{ sku: 'A-1', qty: i }] }, 'region:eu');
    }
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => pageErrors.push(e));
  });

  after(async () => {
    await browser?.close();
    await node?.close();
    assert.deepEqual(pageErrors.map(String), [], 'the console threw in the page');
  });

  it('shows the durable end and the metrics on the status view', async () => {
    await open('#/status');
    await waitText('status-durable-end', '30');
    await waitText('status-appends-total', '30');
    await waitText('status-events-total', '30');
    await waitText('status-writer', 'ok');
    await waitText('status-ready', 'yes');
    await waitTextMatches('status-version', /^annal /);
    await waitTextMatches('node-badge', /end 30/);
    // A rate needs two samples; the chart draws a line once it has them.
    await waitTextMatches('metric-events-rate', /^\d/);
    await waitFor('the chart to draw its lines', (sel) => document.querySelectorAll(`${sel} path`).length === 2, tid('status-chart'));
    await shot('status');
  });

  it('lists the log in position order and pages forward and back', async () => {
    await open('#/log?from=0&dir=forward');
    await waitRows('log-events', 'position', range(0, 20));
    const first = page.locator(`${tid('log-events')} ${tid('event-row')}`).first();
    assert.equal(await first.locator(tid('event-type')).innerText(), appended[0].type);
    assert.deepEqual(JSON.parse(await first.locator(tid('event-data')).innerText()), appended[0].data);
    await shot('log');
    await page.click(tid('page-newer'));
    await waitRows('log-events', 'position', range(20, 30));
    assert.equal(await page.getAttribute(tid('page-newer'), 'aria-disabled'), 'true', 'no newer page at the end');
    await page.click(tid('page-older'));
    await waitRows('log-events', 'position', range(0, 20));
    await page.click(tid('page-latest'));
    await waitRows('log-events', 'position', range(10, 30));
    assert.match(page.url(), /#\/log$/);
  });

  it("shows a stream's events, reached from the log, and pages through them", async () => {
    await open('#/log?from=3&dir=forward');
    await waitRows('log-events', 'position', range(3, 23));
    await page.locator(`${tid('log-events')} ${tid('event-stream')}`).first().click();
    await waitText('stream-title', 'order-2');
    await waitRows('stream-events', 'revision', range(0, 7));
    const data = await page.locator(`${tid('stream-events')} ${tid('event-data')}`).allInnerTexts();
    assert.deepEqual(data.map((d) => JSON.parse(d)), appended.filter((e) => e.stream === 'order-2').map((e) => e.data));
    await shot('stream');
    await open('#/streams/order-1');
    await waitRows('stream-events', 'revision', range(3, 23));
    await page.click(tid('page-older'));
    await waitRows('stream-events', 'revision', range(0, 3));
    await page.click(tid('page-newer'));
    await waitRows('stream-events', 'revision', range(3, 23));
  });

  it("looks up an event by position and shows that event's data", async () => {
    await open('#/events');
    await page.fill(tid('event-lookup-position'), '7');
    await page.click(`${tid('event-lookup')} button`);
    await waitText('detail-position', '7');
    const e = appended[7];
    await waitText('detail-stream', e.stream);
    await waitText('detail-revision', String(e.revision));
    await waitText('detail-type', e.type);
    assert.deepEqual(JSON.parse(await page.innerText(tid('detail-data'))), e.data);
    assert.match(await page.innerText(tid('detail-tags')), /region:us/);
    await shot('event');
  });

  it('shows an event appended after the tail page opened', async () => {
    await open('#/tail');
    await waitText('tail-state', 'live');
    const e = await append('order-3', 'LateArrival', { order: 3, late: true });
    await waitRows('tail-list', 'position', [e.position]);
    const row = page.locator(`${tid('tail-list')} ${tid('event-row')}`).first();
    assert.equal(await row.locator(tid('event-type')).innerText(), 'LateArrival');
    assert.deepEqual(JSON.parse(await row.locator(tid('event-data')).innerText()), e.data);
    await shot('tail');
    // A stream's tail shows that stream's events only.
    await open('#/tail?stream=order-3');
    await waitText('tail-state', 'live');
    await append('order-1', 'OrderPaid', { order: 1, n: 99 });
    const mine = await append('order-3', 'LateArrival', { order: 3, n: 2 });
    await waitRows('tail-list', 'position', [mine.position]);
  });

  it('shows no groups, then a group and its lag once one is created', async () => {
    await open('#/groups');
    await waitFor('the empty state', (sel) => !!document.querySelector(sel), tid('groups-empty'));
    await annal(node, 'group', 'create', 'billing', '--stream', 'order-2');
    await waitFor('the group billing', (sel) => !!document.querySelector(sel), `${tid('group-row')}[data-name="billing"]`);
    await waitText('group-lag-events', '7');
    await shot('groups');
  });

  it('shows an unknown stream as an error with its code and message', async () => {
    await open('#/streams/no-such-stream');
    await waitText('error-code', 'stream_not_found');
    await waitTextMatches('error-message', /no-such-stream/);
    await shot('error');
    await open('#/events/100000');
    await waitText('error-code', 'event_not_found');
  });
});
