// Polls /api/info and /metrics every 2 s for the whole page's life, so the
// status chart has history when its view opens and the header badge stays
// current. Rates come from counter differences between samples.
import * as api from './api.js';

export const INTERVAL_MS = 2000;
export const WINDOW_MS = 5 * 60 * 1000;

const listeners = new Set();
let started = false;

// latest: { t, info, metrics, error }; samples: oldest first, within WINDOW_MS.
export const state = { latest: null, samples: [] };

function histogramDelta(prev, cur, name) {
  const sum = api.metric(cur, `${name}_sum`) - api.metric(prev, `${name}_sum`);
  const count = api.metric(cur, `${name}_count`) - api.metric(prev, `${name}_count`);
  return count > 0 ? sum / count : null;
}

function derive(prev, cur) {
  if (!prev?.info || !cur.info) return { appendsPerSec: null, eventsPerSec: null, meanAppendSec: null };
  const dt = (cur.t - prev.t) / 1000;
  const per = (k) => Math.max(0, cur.info[k] - prev.info[k]) / dt;
  return {
    appendsPerSec: per('appends_total'),
    eventsPerSec: per('events_appended_total'),
    meanAppendSec: prev.metrics && cur.metrics ? histogramDelta(prev.metrics, cur.metrics, 'annal_append_duration_seconds') : null,
  };
}

async function tick() {
  const t = Date.now();
  const sample = { t };
  try {
    const [info, text] = await Promise.all([api.info(), api.metricsText().catch(() => null)]);
    sample.info = info;
    sample.metrics = text === null ? null : api.parseMetrics(text);
  } catch (e) {
    sample.error = e;
  }
  const prev = state.samples.at(-1);
  // A failed sample is kept as a gap in the chart.
  Object.assign(sample, derive(prev?.error ? null : prev, sample));
  state.samples.push(sample);
  while (state.samples.length && state.samples[0].t < t - WINDOW_MS) state.samples.shift();
  state.latest = sample;
  for (const fn of listeners) fn(state);
}

async function loop() {
  await tick();
  setTimeout(loop, INTERVAL_MS);
}

export function start() {
  if (started) return;
  started = true;
  loop();
}

// Calls fn(state) after every sample (and now, if one exists); returns the unsubscribe.
export function subscribe(fn) {
  listeners.add(fn);
  if (state.latest) fn(state);
  return () => listeners.delete(fn);
}
