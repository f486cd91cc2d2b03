// How an event looks: a table row in lists, a full record on its own page.
import { h, time } from './dom.js';

export const streamHref = (name) => `#/streams/${encodeURIComponent(name)}`;

// One of data / data_text / data_base64 (same for metadata), as readable
// text; JSON pretty-printed, or on one line when compact.
export function payload(event, field, compact = false) {
  if (field in event) return { kind: 'json', text: JSON.stringify(event[field], null, compact ? 0 : 2) };
  if (`${field}_text` in event) return { kind: 'text', text: event[`${field}_text`] };
  if (`${field}_base64` in event) {
    const b64 = event[`${field}_base64`];
    const size = Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
    return { kind: `binary, ${size} bytes, base64`, text: b64 };
  }
  return null;
}

function payloadBlock(event, field, testid) {
  const p = payload(event, field);
  if (!p) return h('span', { class: 'muted' }, '(empty)');
  return h('div', {},
    p.kind === 'json' ? null : h('span', { class: 'kind' }, p.kind),
    h('pre', { class: 'data', testid }, p.text));
}

// In a table row: JSON on one line; a click pretty-prints it (and back).
function compactPayload(event, field, testid) {
  const p = payload(event, field, true);
  if (!p) return h('span', { class: 'muted' }, '(empty)');
  if (p.kind !== 'json') return payloadBlock(event, field, testid);
  const pre = h('pre', { class: 'data', testid, title: 'click to pretty-print' }, p.text);
  pre.addEventListener('click', () => {
    const pretty = pre.classList.toggle('pretty');
    pre.textContent = payload(event, field, !pretty).text;
  });
  return pre;
}

const tagList = (tags) =>
  tags?.length ? h('span', { class: 'tags' }, tags.map((t) => h('span', { class: 'tag' }, t))) : '';

// A table of events; showStream: false hides the stream column (a stream's own view).
export function eventTable(events, { showStream = true, testid = 'events' } = {}) {
  const head = ['Position', showStream && 'Stream', 'Rev', 'Type', 'Time (UTC)', 'Tags', 'Data'];
  return h('table', { class: 'events', testid },
    h('thead', {}, h('tr', {}, head.filter(Boolean).map((c) => h('th', {}, c)))),
    h('tbody', {}, events.map((e) => eventRow(e, showStream))));
}

export function eventRow(e, showStream = true) {
  return h('tr', { testid: 'event-row', dataset: { position: e.position, stream: e.stream, revision: e.revision } },
    h('td', { class: 'num' }, h('a', { href: `#/events/${e.position}`, testid: 'event-position' }, e.position)),
    showStream ? h('td', {}, h('a', { href: streamHref(e.stream), testid: 'event-stream' }, e.stream)) : null,
    h('td', { class: 'num' }, e.revision),
    h('td', { testid: 'event-type' }, e.type),
    h('td', { class: 'nowrap' }, time(e.timestamp)),
    h('td', {}, tagList(e.tags)),
    h('td', { class: 'data-cell' }, compactPayload(e, 'data', 'event-data')));
}

// Every field of one event.
export function eventDetail(e) {
  const row = (label, value, testid) => [h('dt', {}, label), h('dd', { testid }, value)];
  const optional = (v) => v ?? h('span', { class: 'muted' }, 'none');
  return h('article', { class: 'event-detail', testid: 'event-detail', dataset: { position: e.position } },
    h('h2', {}, `Event ${e.position}`, ' ', h('span', { class: 'muted' }, e.type)),
    h('dl', {},
      row('Position', e.position, 'detail-position'),
      row('Stream', h('a', { href: streamHref(e.stream) }, e.stream), 'detail-stream'),
      row('Revision', e.revision, 'detail-revision'),
      row('Type', e.type, 'detail-type'),
      row('Time (UTC)', time(e.timestamp), 'detail-time'),
      row('Id', h('code', {}, e.id), 'detail-id'),
      row('Tags', tagList(e.tags) || h('span', { class: 'muted' }, 'none'), 'detail-tags'),
      row('Correlation id', optional(e.correlation_id), 'detail-correlation'),
      row('Causation id', optional(e.causation_id), 'detail-causation')),
    h('h3', {}, 'Data'), payloadBlock(e, 'data', 'detail-data'),
    h('h3', {}, 'Metadata'), payloadBlock(e, 'metadata', 'detail-metadata'));
}

// Oldest / Older / Newer / Latest links; an absent href renders a disabled button.
export function pager({ oldest, older, newer, latest }, summary) {
  const link = (href, label, testid) =>
    href ? h('a', { class: 'button', href, testid }, label)
      : h('span', { class: 'button disabled', testid, 'aria-disabled': 'true' }, label);
  return h('div', { class: 'pager' },
    link(oldest, '⇤ Oldest', 'page-oldest'), link(older, '← Older', 'page-older'),
    h('span', { class: 'muted', testid: 'page-summary' }, summary),
    link(newer, 'Newer →', 'page-newer'), link(latest, 'Latest ⇥', 'page-latest'));
}

// The links of a page of events read from a sequence of dense numbers (log
// positions or stream revisions): shown ascending, older = backward from one
// before the first, newer = forward from one after the last. last: the last
// number that exists (end - 1, or last_revision), or -1 when there is none;
// key: an event's number (position or revision).
export function pageLinks(base, events, { from, last, key }) {
  const sep = base.includes('?') ? '&' : '?';
  const lo = events.length ? key(events[0]) : Math.min(from ?? last + 1, last + 1);
  const hi = events.length ? key(events[events.length - 1]) : lo - 1;
  return {
    oldest: lo > 0 ? `${base}${sep}from=0&dir=forward` : undefined,
    older: lo > 0 ? `${base}${sep}from=${lo - 1}&dir=backward` : undefined,
    newer: hi < last ? `${base}${sep}from=${hi + 1}&dir=forward` : undefined,
    latest: hi < last ? base : undefined,
  };
}
