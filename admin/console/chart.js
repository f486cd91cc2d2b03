// A hand-drawn SVG line chart of rates over a time window (no library).
const NS = 'http://www.w3.org/2000/svg';
const H = 200, PAD = { left: 52, right: 12, top: 12, bottom: 24 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// 1, 2, 5, 10, 20, 50, ... at or above v (at least 1).
function niceMax(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const label = (v) => (v >= 10000 ? `${(v / 1000).toFixed(0)}k` : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : `${+v.toFixed(2)}`);

// series: [{ name, color, points: [{ t (ms), v (number or null for a gap) }] }],
// drawn over the windowMs before now, width user units wide (the pixels it
// will take, so text is not stretched). Returns a new <svg> element.
export function lineChart(series, { windowMs, width = 800, now = Date.now(), testid } = {}) {
  const W = Math.max(300, Math.round(width));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
  if (testid) root.dataset.testid = testid;
  root.setAttribute('aria-label', series.map((s) => s.name).join(' and ') + ' over time');
  const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.v ?? 0))));
  const xs = (t) => x0 + ((t - (now - windowMs)) / windowMs) * (x1 - x0);
  const ys = (v) => y0 - (v / max) * (y0 - y1);

  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, y = ys(v);
    root.append(svg('line', { x1: x0, x2: x1, y1: y, y2: y, class: i ? 'grid' : 'axis' }));
    root.append(svg('text', { x: x0 - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, label(v)));
  }
  const minutes = Math.round(windowMs / 60000);
  for (let m = 0; m <= minutes; m++) {
    const x = xs(now - m * 60000);
    root.append(svg('text', { x, y: H - 6, 'text-anchor': m ? 'middle' : 'end', class: 'tick' }, m ? `−${m} min` : 'now'));
  }
  for (const s of series) {
    let d = '', pen = false;
    for (const p of s.points) {
      if (p.v === null || p.v === undefined || p.t < now - windowMs) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${xs(p.t).toFixed(1)},${ys(p.v).toFixed(1)}`;
      pen = true;
    }
    if (d) root.append(svg('path', { d, stroke: s.color, class: 'line' }));
  }
  return root;
}
