// Small DOM and formatting helpers shared by the views. Text is always set
// as text (never parsed as HTML), so event data cannot inject markup.

// h('a', { href: '#/log', class: 'x', dataset: { testid: 'y' } }, 'text', child...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// Replaces an element's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// An error as the API gave it: its code, HTTP status and message.
export function errorBox(err, what) {
  const code = err.code ?? 'error';
  const status = err.status ? ` (HTTP ${err.status})` : '';
  return h('div', { class: 'error', role: 'alert', testid: 'error', dataset: { code } },
    h('strong', {}, what ? `${what}: ` : ''),
    h('code', { testid: 'error-code' }, code), status, ' — ',
    h('span', { testid: 'error-message' }, err.message));
}

export const empty = (text, testid = 'empty') => h('p', { class: 'empty', testid }, text);

export const loading = () => h('p', { class: 'muted' }, 'Loading…');

export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds === undefined || seconds === null) return '–';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m ${ss}s`;
  if (mm) return `${mm}m ${ss}s`;
  return `${seconds < 10 ? seconds.toFixed(1) : s}s`;
}

export const num = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US'));

export function rate(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

// "2026-12-08T01:02:03.456789Z" -> "2026-12-08 01:02:03.456" (UTC; full value in the title).
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d{1,3})?/.exec(iso);
  return h('time', { datetime: iso, title: iso }, m ? `${m[1]} ${m[2]}${m[3] ?? ''}` : iso);
}

// Reads a non-negative integer from a query value; undefined if absent or not one.
export function intParam(value) {
  return value !== null && value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}
