// #/streams: pick a stream; #/streams/NAME?from=R&dir=forward|backward: its
// events a page at a time, in revision order. Default: the latest page.
import * as api from '../api.js';
import { errorBox, fill, h, intParam, loading } from '../dom.js';
import { eventTable, pageLinks, pager, streamHref } from '../events.js';
import { PAGE } from './log.js';

function pickForm(name = '') {
  const input = h('input', { type: 'text', name: 'stream', placeholder: 'stream name, e.g. order-1', value: name,
    required: true, testid: 'stream-name', autocomplete: 'off', spellcheck: 'false' });
  return h('form', {
    class: 'inline', testid: 'stream-pick',
    onsubmit: (ev) => {
      ev.preventDefault();
      if (input.value) location.hash = streamHref(input.value);
    },
  }, h('label', {}, 'Stream ', input), h('button', {}, 'Open'));
}

export async function mount(root, { params, query, signal }) {
  const name = params[0];
  if (name === undefined) {
    fill(root, h('h1', {}, 'Streams'), pickForm(),
      h('p', { class: 'muted' }, 'Open a stream by name, or follow a stream link in the log.'));
    root.querySelector('input').focus();
    return;
  }
  const from = intParam(query.get('from'));
  const direction = query.get('dir') === 'forward' ? 'forward' : 'backward';
  const out = h('div', {}, loading());
  fill(root, h('h1', {}, 'Stream ', h('code', { testid: 'stream-title' }, name)), pickForm(name),
    h('p', {}, h('a', { href: `#/tail?stream=${encodeURIComponent(name)}` }, 'Tail this stream live')), out);
  let page;
  try {
    page = await api.readStream(name, { from, direction, limit: PAGE }, signal);
  } catch (e) {
    if (e.name !== 'AbortError') fill(out, errorBox(e, `Reading stream ${name}`));
    return;
  }
  const events = direction === 'backward' ? [...page.events].reverse() : page.events;
  const last = page.last_revision ?? -1;
  const links = pageLinks(streamHref(name), events, { from, last, key: (e) => e.revision });
  const summary = events.length
    ? `revisions ${events[0].revision}–${events.at(-1).revision} of 0–${last}`
    : `no events here (last revision ${last})`;
  fill(out, pager(links, summary),
    events.length ? eventTable(events, { showStream: false, testid: 'stream-events' })
      : h('p', { class: 'empty', testid: 'empty' }, summary));
}
