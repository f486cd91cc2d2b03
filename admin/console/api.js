// The node's admin HTTP API (docs/operations.md, "Web console"): one function
// per endpoint. Every failure becomes an ApiError carrying the API's error
// code and message, so a view can show exactly what the node said.

export class ApiError extends Error {
  // status: the HTTP status, 0 when the node could not be reached.
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(path, signal) {
  let res;
  try {
    res = await fetch(path, { signal, headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', `cannot reach the node (${e.message})`);
  }
  const text = await res.text();
  if (res.ok) return { res, text };
  let error = null;
  try {
    error = JSON.parse(text).error;
  } catch {
    // not the API's error JSON: fall back to the status line and body below
  }
  throw new ApiError(res.status, error?.code ?? `http_${res.status}`,
    error?.message ?? (text.trim().slice(0, 300) || res.statusText || 'request failed'));
}

async function getJson(path, signal) {
  const { res, text } = await request(path, signal);
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', `${path} did not answer with JSON`);
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const info = (signal) => getJson('/api/info', signal);

export const ready = (signal) =>
  fetch('/health/ready', { signal, cache: 'no-store' }).then((r) => r.json());

// { events, next, end }; direction 'forward' | 'backward'; from omitted = the API's default.
export const readLog = ({ from, direction, limit }, signal) =>
  getJson(`/api/log${query({ from, direction, limit })}`, signal);

// { stream, events, next, last_revision }
export const readStream = (name, { from, direction, limit }, signal) =>
  getJson(`/api/streams/${encodeURIComponent(name)}${query({ from, direction, limit })}`, signal);

export const readEvent = (position, signal) => getJson(`/api/events/${position}`, signal);

export const groups = (signal) => getJson('/api/groups', signal);

export const metricsText = async (signal) => (await request('/metrics', signal)).text;

// The EventSource URL of a live tail: the log, or one stream; from omitted = new events only.
export const tailUrl = ({ stream, from }) => `/api/tail${query({ stream, from })}`;

// Prometheus text format 0.0.4 -> Map(name -> [{ labels, value }]). Comments,
// HELP and TYPE lines are skipped; label values are unescaped.
export function parseMetrics(text) {
  const out = new Map();
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split('\n')) {
    if (!raw || raw.startsWith('#')) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(label)) {
      labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    }
    const value = Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

// The value of an unlabelled sample, or undefined.
export function metric(metrics, name) {
  return metrics?.get(name)?.[0]?.value;
}
