// #/tail (the log) or #/tail?stream=NAME: events as they are appended, via
// Server-Sent Events on /api/tail, newest first. After a dropped connection
// it reconnects from the event after the last one shown, so none is missed.
import * as api from '../api.js';
import { errorBox, fill, h } from '../dom.js';
import { eventRow, streamHref } from '../events.js';

const KEEP = 500;  // rows kept on the page
const RETRY_MS = 2000;

function pickForm(stream) {
  const input = h('input', { type: 'text', name: 'stream', placeholder: 'empty: every stream',
    value: stream ?? '', testid: 'tail-stream', autocomplete: 'off', spellcheck: 'false' });
  return h('form', {
    class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = input.value ? `#/tail?stream=${encodeURIComponent(input.value)}` : '#/tail';
    },
  }, h('label', {}, 'Stream ', input), h('button', {}, 'Tail'));
}

export function mount(root, { query }) {
  const stream = query.get('stream') || undefined;
  const state = h('span', { class: 'badge', testid: 'tail-state' }, 'connecting');
  const count = h('span', { class: 'muted', testid: 'tail-count' }, '0 events');
  const tbody = h('tbody', { testid: 'tail-list' });
  const problem = h('div');
  let paused = false, received = 0, source = null, retry = null, next;
  const pause = h('button', {
    type: 'button', testid: 'tail-pause',
    onclick: () => { paused = !paused; pause.textContent = paused ? 'Resume' : 'Pause'; },
  }, 'Pause');
  fill(root,
    h('h1', {}, 'Tail ', stream ? h('a', { href: streamHref(stream) }, h('code', {}, stream)) : 'the log'),
    pickForm(stream),
    h('div', { class: 'toolbar' }, state, count, pause,
      h('button', { type: 'button', onclick: () => { tbody.replaceChildren(); } }, 'Clear')),
    problem,
    h('table', { class: 'events' },
      h('thead', {}, h('tr', {}, ['Position', 'Stream', 'Rev', 'Type', 'Time (UTC)', 'Tags', 'Data'].map((c) => h('th', {}, c)))),
      tbody),
    h('p', { class: 'muted' }, 'Only events appended after the page opened are shown. Newest first; the last ',
      String(KEEP), ' are kept.'));

  const setState = (text, cls) => { state.textContent = text; state.className = `badge ${cls}`; };

  function connect() {
    source = new EventSource(api.tailUrl({ stream, from: next }));
    source.onopen = () => setState('live', 'good');
    source.addEventListener('event', (msg) => {
      const e = JSON.parse(msg.data);
      next = (stream ? e.revision : e.position) + 1;
      received++;
      count.textContent = `${received} event${received === 1 ? '' : 's'}`;
      if (paused) return;
      tbody.prepend(eventRow(e));
      while (tbody.rows.length > KEEP) tbody.lastElementChild.remove();
    });
    source.onerror = (msg) => {
      source.close();
      if (msg.data) {
        // The node's `event: error` (a read error or damage): it ended the tail
        // there and would again, so show it and leave the retry to the operator.
        let err = { code: 'error', message: msg.data };
        try { err = JSON.parse(msg.data).error ?? err; } catch { /* shown as text */ }
        setState('stopped', 'bad');
        fill(problem, errorBox(err, 'The node ended the tail'),
          h('button', { type: 'button', onclick: () => { fill(problem); connect(); } }, 'Retry'));
        return;
      }
      // EventSource would reconnect to the same URL (from = the end then), so
      // reconnect ourselves from the next event instead.
      setState(`disconnected, retrying in ${RETRY_MS / 1000} s`, 'bad');
      retry = setTimeout(connect, RETRY_MS);
    };
  }
  connect();
  return () => { clearTimeout(retry); source?.close(); };
}
