// #/events: look up an event by position; #/events/POS: that event.
import * as api from '../api.js';
import { errorBox, fill, h, loading } from '../dom.js';
import { eventDetail } from '../events.js';

function lookupForm(value = '') {
  const input = h('input', { type: 'number', min: 0, name: 'position', placeholder: 'position', value,
    required: true, testid: 'event-lookup-position' });
  return h('form', {
    class: 'inline', testid: 'event-lookup',
    onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/events/${input.value}`;
    },
  }, h('label', {}, 'Position ', input), h('button', {}, 'Look up'));
}

export async function mount(root, { params, signal }) {
  const position = params[0];
  const out = h('div');
  fill(root, h('h1', {}, 'Event'), lookupForm(position), out);
  if (position === undefined) {
    root.querySelector('input').focus();
    return;
  }
  fill(out, loading());
  try {
    const event = await api.readEvent(position, signal);
    const p = Number(position);
    fill(out, h('div', { class: 'pager' },
      p > 0 ? h('a', { class: 'button', href: `#/events/${p - 1}`, testid: 'event-prev' }, '← Previous') : null,
      h('a', { class: 'button', href: `#/events/${p + 1}`, testid: 'event-next' }, 'Next →'),
      h('a', { class: 'button', href: `#/log?from=${p}&dir=forward` }, 'In the log')),
    eventDetail(event));
  } catch (e) {
    if (e.name !== 'AbortError') fill(out, errorBox(e, `Event ${position}`));
  }
}
