// #/status: what the node is and how it is doing, with a live chart of
// appends/s and events/s over the last minutes (from the sampler).
import * as api from '../api.js';
import { lineChart } from '../chart.js';
import { bytes, duration, errorBox, fill, h, num, rate } from '../dom.js';
import * as sampler from '../sampler.js';

const SERIES = [
  { key: 'appendsPerSec', name: 'appends/s', color: '#1f6feb' },
  { key: 'eventsPerSec', name: 'events/s', color: '#d97706' },
];

function card(label, value, testid, cls = '', note = null) {
  return h('div', { class: `card ${cls}` }, h('div', { class: 'label' }, label),
    h('div', { class: 'value', testid }, value), note && h('div', { class: 'note' }, note));
}

function cards(info, latest) {
  const writerOk = info.writer === 'ok';
  const diskLow = info.disk_free_bytes < info.min_free_bytes;
  return h('div', { class: 'cards' },
    card('Durable end', num(info.durable_end), 'status-durable-end'),
    card('Visible end', num(info.visible_end), 'status-visible-end'),
    card('Writer', writerOk ? 'ok' : `FAILED${info.writer_error ? `: ${info.writer_error}` : ''}`,
      'status-writer', writerOk ? 'good' : 'bad'),
    card('Ready', info.ready ? 'yes' : 'NO', 'status-ready', info.ready ? 'good' : 'bad'),
    card('Appends/s', rate(latest.appendsPerSec), 'metric-appends-rate'),
    card('Events/s', rate(latest.eventsPerSec), 'metric-events-rate'),
    card('Mean append latency', latest.meanAppendSec === null ? '–' : `${(latest.meanAppendSec * 1000).toFixed(2)} ms`,
      'metric-append-latency'),
    card('Appends total', num(info.appends_total), 'status-appends-total'),
    card('Events appended', num(info.events_appended_total), 'status-events-total'),
    card('Connections', num(info.connections_open), 'status-connections'),
    card('Requests in flight', num(info.requests_in_flight), 'status-in-flight'),
    card('Subscriptions', num(info.subscriptions_active), 'status-subscriptions'),
    card('Consumer groups', num(info.groups), 'status-groups'),
    card('Disk free', bytes(info.disk_free_bytes), 'status-disk', diskLow ? 'bad' : '',
      `floor ${bytes(info.min_free_bytes)}${diskLow ? ': appends refused' : ''}`));
}

function about(info) {
  const row = (k, v, testid) => [h('dt', {}, k), h('dd', { testid }, v)];
  return h('dl', { class: 'about' },
    row('Version', info.server_version, 'status-version'),
    row('Protocol', info.protocol_version, 'status-protocol'),
    row('Data directory', h('code', {}, info.data_dir), 'status-data-dir'),
    row('Started (UTC)', info.started_at, 'status-started'),
    row('Uptime', duration(info.uptime_seconds), 'status-uptime'),
    row('Segment size', bytes(info.segment_size), 'status-segment-size'),
    row('Metrics', h('a', { href: '/metrics', target: '_blank' }, '/metrics (Prometheus text)')));
}

function chart(samples, width) {
  const series = SERIES.map((s) => ({ ...s, points: samples.map((p) => ({ t: p.t, v: p[s.key] })) }));
  return h('section', { class: 'panel' },
    h('h2', {}, 'Throughput, last 5 minutes ',
      h('span', { class: 'legend' }, SERIES.map((s) => h('span', {}, h('i', { style: `background:${s.color}` }), s.name)))),
    lineChart(series, { windowMs: sampler.WINDOW_MS, width, testid: 'status-chart' }));
}

export function mount(root, { signal }) {
  const failure = h('div');
  const notReady = h('div');
  const body = h('div', {}, h('p', { class: 'muted' }, 'Waiting for the first sample…'));
  fill(root, h('h1', {}, 'Node status'), failure, notReady, body);
  let askedWhy = false;
  const render = ({ latest, samples }) => {
    // The last good figures stay visible under the error.
    fill(failure, latest.error ? errorBox(latest.error, 'Node status') : null);
    if (latest.error) return;
    // The panel's inner width: the page's less its padding and border.
    fill(body, cards(latest.info, latest), chart(samples, root.clientWidth - 30), about(latest.info));
    body.dataset.testid = 'status';
    if (latest.info.ready) {
      fill(notReady);
      askedWhy = false;
    } else if (!askedWhy) {
      askedWhy = true;  // once per not-ready spell: why (from /health/ready)
      api.ready(signal).then((r) => {
        const reasons = r.reasons?.length ? r.reasons.join('; ') : 'no reason given';
        fill(notReady, h('div', { class: 'error', testid: 'not-ready' }, h('strong', {}, 'Not ready: '), reasons));
      }).catch(() => {});
    }
  };
  const unsubscribe = sampler.subscribe(render);
  return unsubscribe;
}
