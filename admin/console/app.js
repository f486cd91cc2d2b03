// The console's entry point: hash routing (#/status, #/log, #/streams/NAME,
// #/events/POS, #/tail, #/groups), one view mounted at a time, and the
// header's node badge. A view's mount(root, ctx) may return a cleanup
// function; ctx.signal is aborted when the view is left.
import { errorBox, fill, h } from './dom.js';
import * as sampler from './sampler.js';
import * as event from './views/event.js';
import * as groups from './views/groups.js';
import * as log from './views/log.js';
import * as status from './views/status.js';
import * as stream from './views/stream.js';
import * as tail from './views/tail.js';

const ROUTES = [
  // [pattern over the path, view, nav entry]
  [/^\/(?:status)?$/, status, 'status'],
  [/^\/log$/, log, 'log'],
  [/^\/streams(?:\/(.+))?$/, stream, 'streams'],
  [/^\/events(?:\/(\d+))?$/, event, 'events'],
  [/^\/tail$/, tail, 'tail'],
  [/^\/groups$/, groups, 'groups'],
];

const root = document.getElementById('view');
let current = null;  // { controller, cleanup }

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/status';
  const [path, q = ''] = raw.split('?', 2);
  return { path, query: new URLSearchParams(q) };
}

async function route() {
  if (current) {
    current.controller.abort();
    current.cleanup?.();
  }
  const controller = new AbortController();
  current = { controller, cleanup: null };
  const { path, query } = parseHash();
  for (const [pattern, view, nav] of ROUTES) {
    const m = pattern.exec(path);
    if (!m) continue;
    let params;
    try {
      params = m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
    } catch {
      break;  // a malformed %-escape: treat as an unknown address
    }
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.route === nav);
    root.dataset.view = nav;
    const cleanup = await view.mount(root, { params, query, signal: controller.signal });
    if (current?.controller === controller) current.cleanup = cleanup;
    else cleanup?.();  // left while mounting
    return;
  }
  root.dataset.view = 'unknown';
  fill(root, errorBox({ code: 'unknown_page', message: `no console page at #${path}` }, 'Console'),
    h('p', {}, h('a', { href: '#/status' }, 'Go to the status page')));
}

function badge({ latest }) {
  const el = document.querySelector('[data-testid="node-badge"]');
  if (latest.error) {
    el.textContent = `unreachable: ${latest.error.message}`;
    el.className = 'node-badge bad';
    return;
  }
  const i = latest.info;
  const problem = i.writer !== 'ok' ? 'writer FAILED' : !i.ready ? 'not ready' : null;
  el.textContent = `${i.server_version} · end ${i.durable_end.toLocaleString('en-US')}${problem ? ` · ${problem}` : ''}`;
  el.className = `node-badge ${problem ? 'bad' : 'good'}`;
}

window.addEventListener('hashchange', route);
sampler.subscribe(badge);
sampler.start();
route();
