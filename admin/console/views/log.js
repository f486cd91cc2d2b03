// #/log?from=P&dir=forward|backward: the global log, a page at a time, shown
// in position order. Default: the latest page.
import * as api from '../api.js';
import { errorBox, fill, h, intParam, loading } from '../dom.js';
import { eventTable, pageLinks, pager } from '../events.js';

export const PAGE = 20;

function jumpForm(value) {
  const input = h('input', { type: 'number', min: 0, name: 'from', placeholder: 'position', value, testid: 'log-from' });
  return h('form', {
    class: 'inline', testid: 'log-jump',
    onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = input.value === '' ? '#/log' : `#/log?from=${input.value}&dir=forward`;
    },
  }, h('label', {}, 'From position ', input), h('button', {}, 'Go'));
}

export async function mount(root, { query, signal }) {
  const from = intParam(query.get('from'));
  const direction = query.get('dir') === 'forward' ? 'forward' : 'backward';
  const out = h('div', {}, loading());
  fill(root, h('h1', {}, 'Log'), jumpForm(from ?? ''), out);
  let page;
  try {
    page = await api.readLog({ from, direction, limit: PAGE }, signal);
  } catch (e) {
    if (e.name !== 'AbortError') fill(out, errorBox(e, 'Reading the log'));
    return;
  }
  const events = direction === 'backward' ? [...page.events].reverse() : page.events;
  const links = pageLinks('#/log', events, { from, last: page.end - 1, key: (e) => e.position });
  const summary = events.length
    ? `positions ${events[0].position}–${events.at(-1).position} of ${page.end}`
    : `no events here (the log ends at ${page.end})`;
  fill(out, pager(links, summary),
    events.length ? eventTable(events, { testid: 'log-events' }) : h('p', { class: 'empty', testid: 'empty' },
      page.end === 0 ? 'The log is empty: nothing has been appended yet.' : summary));
}
