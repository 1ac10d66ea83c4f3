/* global document -- browser script (eslint's config targets Node) */
// A small SVG time-series chart: latency (p50, p99) on the left axis in ms, message rate on the
// right axis in msg/s, time along the bottom. No library; redrawn from scratch on every poll.

const SVG = 'http://www.w3.org/2000/svg';
const PAD = { top: 26, right: 56, bottom: 26, left: 56 };

/** An SVG element with attributes (presentation attributes, never `style`: the CSP forbids it). */
function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The smallest "round" step (1, 2, 2.5, 5 × 10^n) at least `raw`. */
function niceStep(raw) {
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw * 0.9999) ?? 10 * pow;
}

/** `steps + 1` round ticks from 0 covering `max` (at least 0…1). */
export function niceTicks(max, steps) {
  const step = niceStep(Math.max(max, 1e-9) / steps);
  return Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

/** Splits points into runs without gaps longer than `gapMs` (a pause or an outage breaks the line). */
function runs(points, key, gapMs) {
  const out = [];
  let current = [];
  let last = null;
  for (const p of points) {
    if (p[key] === null || (last !== null && p.t - last > gapMs)) {
      if (current.length) out.push(current);
      current = [];
    }
    if (p[key] !== null) current.push(p);
    last = p.t;
  }
  if (current.length) out.push(current);
  return out;
}

/**
 * Draws `points` ({ t, p50, p99, rate }, oldest first) into `container`.
 * `opts`: { windowMs, gapMs, formatMs, formatRate, formatTime, onHover(point | null) }.
 */
export function drawChart(container, points, opts) {
  const width = Math.max(320, container.clientWidth);
  const height = Math.max(180, container.clientHeight || 240);
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart-svg' });
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const end = points.length ? points[points.length - 1].t : Date.now();
  const start = end - opts.windowMs;
  const x = (t) => PAD.left + ((t - start) / opts.windowMs) * plotW;
  const shown = points.filter((p) => p.t >= start);

  // Both axes share the grid: four steps each, each with its own round step.
  const latTicks = niceTicks(Math.max(1, ...shown.map((p) => p.p99 ?? 0)), 4);
  const rateTicks = niceTicks(Math.max(1, ...shown.map((p) => p.rate ?? 0)), 4);
  const latMax = latTicks[latTicks.length - 1];
  const rateMax = rateTicks[rateTicks.length - 1];
  const yLat = (v) => PAD.top + plotH - (v / latMax) * plotH;
  const yRate = (v) => PAD.top + plotH - (v / rateMax) * plotH;

  // Grid and left axis (ms) on the latency ticks; right axis labels at the same heights.
  latTicks.forEach((v, i) => {
    const y = yLat(v);
    svg.append(el('line', { x1: PAD.left, x2: PAD.left + plotW, y1: y, y2: y, class: i === 0 ? 'axis-line' : 'grid' }));
    svg.append(el('text', { x: PAD.left - 8, y: y + 4, 'text-anchor': 'end', class: 'tick p50-tick' }, opts.formatMs(v)));
  });
  rateTicks.forEach((v) => {
    svg.append(el('text', { x: PAD.left + plotW + 8, y: yRate(v) + 4, class: 'tick rate-tick' }, opts.formatRate(v)));
  });
  svg.append(el('text', { x: 4, y: 11, class: 'axis-title' }, 'latency (ms)'));
  svg.append(el('text', { x: PAD.left + plotW + 8, y: 11, class: 'axis-title rate-tick' }, 'msg/s'));

  // Time axis: a label every minute, on the minute.
  for (let t = Math.ceil(start / 60_000) * 60_000; t <= end; t += 60_000) {
    const tx = x(t);
    svg.append(el('line', { x1: tx, x2: tx, y1: PAD.top, y2: PAD.top + plotH, class: 'grid vgrid' }));
    svg.append(el('text', { x: tx, y: height - 8, 'text-anchor': 'middle', class: 'tick' }, opts.formatTime(t)));
  }

  if (shown.length < 2) {
    svg.append(el('text', { x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'Collecting samples…'));
  }

  // Message rate as a filled area (right axis), latency lines on top (left axis).
  for (const run of runs(shown, 'rate', opts.gapMs)) {
    const line = run.map((p) => `${x(p.t).toFixed(1)},${yRate(p.rate).toFixed(1)}`).join(' L');
    const base = yRate(0).toFixed(1);
    svg.append(el('path', { d: `M${x(run[0].t).toFixed(1)},${base} L${line} L${x(run[run.length - 1].t).toFixed(1)},${base} Z`, class: 'area rate' }));
    svg.append(el('path', { d: `M${line}`, class: 'line rate' }));
  }
  for (const key of ['p50', 'p99']) {
    for (const run of runs(shown, key, opts.gapMs)) {
      const d = run.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${yLat(p[key]).toFixed(1)}`).join(' ');
      svg.append(el('path', { d, class: `line ${key}` }));
      if (run.length === 1) svg.append(el('circle', { cx: x(run[0].t), cy: yLat(run[0][key]), r: 2.5, class: `dot ${key}` }));
    }
  }

  // Hover: a crosshair and the values of the nearest sample, reported through onHover.
  const cursor = el('line', { y1: PAD.top, y2: PAD.top + plotH, class: 'cursor', visibility: 'hidden' });
  const hit = el('rect', { x: PAD.left, y: PAD.top, width: plotW, height: plotH, class: 'hit' });
  svg.append(cursor, hit);
  hit.addEventListener('mousemove', (event) => {
    const t = start + ((event.offsetX - PAD.left) / plotW) * opts.windowMs;
    let best = null;
    for (const p of shown) if (!best || Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
    if (!best) return;
    cursor.setAttribute('x1', String(x(best.t)));
    cursor.setAttribute('x2', String(x(best.t)));
    cursor.setAttribute('visibility', 'visible');
    opts.onHover?.(best);
  });
  hit.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    opts.onHover?.(null);
  });

  container.replaceChildren(svg);
}
