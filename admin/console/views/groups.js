// #/groups: consumer groups and their lag, refreshed every 2 s.
import * as api from '../api.js';
import { errorBox, fill, h, num } from '../dom.js';

const REFRESH_MS = 2000;

function table(groups) {
  const cols = ['Name', 'Source', 'Strategy', 'Members', 'Lag (events)', 'Lag (seconds)', 'In flight', 'Parked'];
  return h('table', { class: 'groups', testid: 'groups-table' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
    h('tbody', {}, groups.map((g) => h('tr', { testid: 'group-row', dataset: { name: g.name } },
      h('td', { testid: 'group-name' }, g.name),
      h('td', {}, h('code', {}, g.source)),
      h('td', {}, g.strategy),
      h('td', { class: 'num' }, num(g.members)),
      h('td', { class: `num ${g.lag_events > 0 ? 'warn' : ''}`, testid: 'group-lag-events' }, num(g.lag_events)),
      h('td', { class: 'num', testid: 'group-lag-seconds' }, g.lag_seconds === null ? '–' : g.lag_seconds.toFixed(1)),
      h('td', { class: 'num' }, num(g.in_flight)),
      h('td', { class: `num ${g.parked > 0 ? 'bad' : ''}`, testid: 'group-parked' }, num(g.parked))))));
}

export function mount(root, { signal }) {
  const out = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  fill(root, h('h1', {}, 'Consumer groups'), out);
  let timer = null;
  async function refresh() {
    try {
      const { groups } = await api.groups(signal);
      fill(out, groups.length ? table(groups) : h('p', { class: 'empty', testid: 'groups-empty' },
        'No consumer groups yet. Create one with ', h('code', {}, 'annal group create NAME --stream S'),
        ' (see docs/consumer-groups.md).'));
    } catch (e) {
      if (e.name === 'AbortError') return;
      fill(out, errorBox(e, 'Reading consumer groups'));
    }
    if (!signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => clearTimeout(timer);
}
