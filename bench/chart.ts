/**
 * The bench draws its own chart (no plotting dependency): an SVG with two panels of grouped
 * bars — latency p50 and p99 per target at the fixed rates (B, F), and server CPU µs per
 * delivery per target for every workload that delivers messages — medians, with min–max
 * whiskers over the runs.
 */
import { TARGET_LABELS, TARGETS, type Target } from './lib/types.ts';
import type { BenchResult } from './orchestrator.ts';
import { fmt, metricSummary, type Environment, type Summary } from './report.ts';
import type { Workload } from './workloads.ts';

const COLORS: Record<Target, { main: string; light: string }> = {
  realtime: { main: '#2563eb', light: '#93c5fd' },
  socketio: { main: '#059669', light: '#6ee7b7' },
  ws: { main: '#6b7280', light: '#d1d5db' },
};

interface Bar {
  target: Target;
  /** Secondary bars (p99) are drawn lighter. */
  secondary: boolean;
  value: Summary;
}

interface Group {
  label: string;
  bars: Bar[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface PanelOptions {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
  unit: string;
  log: boolean;
}

function panel(groups: Group[], o: PanelOptions): string {
  const parts: string[] = [];
  const left = o.x + 58;
  const right = o.x + o.width - 10;
  const top = o.y + 34;
  const bottom = o.y + o.height - 46;
  parts.push(`<text x="${o.x + 4}" y="${o.y + 16}" font-size="14" font-weight="600">${esc(o.title)}</text>`);
  const values = groups.flatMap((g) => g.bars.flatMap((b) => [b.value.median, b.value.max, b.value.min])).filter((v) => Number.isFinite(v) && v > 0);
  if (values.length === 0) {
    parts.push(`<text x="${left}" y="${(top + bottom) / 2}" font-size="12" fill="#6b7280">no data</text>`);
    return parts.join('\n');
  }
  const maxV = Math.max(...values);
  const minV = Math.min(...values);
  let scale: (v: number) => number;
  let ticks: number[];
  if (o.log) {
    // A decade of room below the smallest bar, so it stays visible.
    const floor = 10 ** Math.floor(Math.log10(minV));
    const lo = minV / floor < 2 ? floor / 10 : floor;
    const hi = 10 ** Math.ceil(Math.log10(maxV));
    scale = (v) => bottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (bottom - top);
    ticks = [];
    for (let e = Math.round(Math.log10(lo)); e <= Math.round(Math.log10(hi)); e += 1) ticks.push(10 ** e);
  } else {
    const step = niceStep(maxV / 5);
    const hi = Math.ceil(maxV / step) * step;
    scale = (v) => bottom - (v / hi) * (bottom - top);
    ticks = [];
    for (let t = 0; t <= hi + step / 2; t += step) ticks.push(t);
  }
  for (const t of ticks) {
    const y = scale(t);
    parts.push(`<line x1="${left}" x2="${right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#374151">${esc(Number.isInteger(t) ? t.toLocaleString('en-US') : fmt(t))}</text>`);
  }
  parts.push(`<text transform="translate(${o.x + 14} ${(top + bottom) / 2}) rotate(-90)" font-size="11" text-anchor="middle" fill="#374151">${esc(o.unit)}${o.log ? ' (log scale)' : ''}</text>`);
  parts.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#9ca3af"/>`);
  const groupWidth = (right - left) / groups.length;
  groups.forEach((g, gi) => {
    const gx = left + gi * groupWidth;
    const n = Math.max(1, g.bars.length);
    const barWidth = Math.min(34, (groupWidth * 0.8) / n);
    const start = gx + (groupWidth - barWidth * n) / 2;
    g.bars.forEach((b, bi) => {
      const x = start + bi * barWidth;
      const color = b.secondary ? COLORS[b.target].light : COLORS[b.target].main;
      const v = b.value.median;
      if (Number.isFinite(v) && v > 0) {
        const y = scale(v);
        parts.push(`<rect x="${(x + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${Math.max(0, bottom - y).toFixed(1)}" fill="${color}"><title>${esc(`${TARGET_LABELS[b.target]} ${g.label}${b.secondary ? ' p99' : ''}: ${fmt(v)} ${o.unit} (min ${fmt(b.value.min)}, max ${fmt(b.value.max)})`)}</title></rect>`);
        if (b.value.n > 1 && b.value.max > b.value.min) {
          const cx = x + barWidth / 2;
          const y1 = scale(b.value.min);
          const y2 = scale(b.value.max);
          parts.push(`<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y1.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="#111827" stroke-width="1"/>`);
          parts.push(`<line x1="${(cx - 3).toFixed(1)}" x2="${(cx + 3).toFixed(1)}" y1="${y2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="#111827" stroke-width="1"/>`);
          parts.push(`<line x1="${(cx - 3).toFixed(1)}" x2="${(cx + 3).toFixed(1)}" y1="${y1.toFixed(1)}" y2="${y1.toFixed(1)}" stroke="#111827" stroke-width="1"/>`);
        }
        const label = fmt(v);
        parts.push(`<text x="${(x + barWidth / 2).toFixed(1)}" y="${(Math.min(y, scale(b.value.max)) - 4).toFixed(1)}" font-size="${barWidth < 20 ? 8 : 10}" text-anchor="middle" fill="#111827">${esc(label)}</text>`);
      } else {
        parts.push(`<text x="${(x + barWidth / 2).toFixed(1)}" y="${bottom - 4}" font-size="9" text-anchor="middle" fill="#9ca3af">n/a</text>`);
      }
    });
    parts.push(`<text x="${(gx + groupWidth / 2).toFixed(1)}" y="${bottom + 16}" font-size="12" text-anchor="middle" fill="#111827">${esc(g.label)}</text>`);
  });
  return parts.join('\n');
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function toSvg(result: BenchResult, env: Environment): string {
  const targets = TARGETS.filter((t) => result.cases.some((c) => c.target === t));
  const find = (t: Target, w: Workload, v = '') => result.cases.find((c) => c.target === t && c.workload === w && c.variant === v);
  const summary = (t: Target, w: Workload, key: string, v = ''): Summary => {
    const c = find(t, w, v);
    return c && c.runs.length ? metricSummary(c, key) : { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  };

  const latencyGroups: Group[] = [];
  for (const rate of result.sizes.B.rates) {
    if (!targets.some((t) => find(t, 'B', `${rate} msgs/s`))) continue;
    latencyGroups.push({
      label: `B · ${rate}/s`,
      bars: targets.flatMap((t) => [
        { target: t, secondary: false, value: summary(t, 'B', 'p50Ms', `${rate} msgs/s`) },
        { target: t, secondary: true, value: summary(t, 'B', 'p99Ms', `${rate} msgs/s`) },
      ]),
    });
  }
  if (targets.some((t) => find(t, 'F'))) {
    latencyGroups.push({
      label: `F · ${result.sizes.F.rate}/s`,
      bars: targets.flatMap((t) => [
        { target: t, secondary: false, value: summary(t, 'F', 'p50Ms') },
        { target: t, secondary: true, value: summary(t, 'F', 'p99Ms') },
      ]),
    });
  }

  const cpuGroups: Group[] = [];
  const cpuCase = (label: string, w: Workload, key: string, v = '') => {
    if (!targets.some((t) => find(t, w, v))) return;
    cpuGroups.push({ label, bars: targets.map((t) => ({ target: t, secondary: false, value: summary(t, w, key, v) })) });
  };
  cpuCase('A flood', 'A', 'cpuUsPerDelivery');
  for (const rate of result.sizes.B.rates) cpuCase(`B ${rate}/s`, 'B', 'cpuUsPerDelivery', `${rate} msgs/s`);
  cpuCase('D rooms', 'D', 'cpuUsPerDelivery');
  cpuCase('E acked', 'E', 'cpuUsPerAckedDelivery');
  cpuCase('F hot', 'F', 'cpuUsPerDelivery');

  const width = 980;
  const panelHeight = 300;
  const headerHeight = 64;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${headerHeight + panelHeight * 2 + 30}" viewBox="0 0 ${width} ${headerHeight + panelHeight * 2 + 30}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`);
  parts.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  parts.push(`<text x="12" y="22" font-size="16" font-weight="700">Realtime broadcast benchmark — ${esc(env.date.slice(0, 10))}${result.quick ? ' (quick smoke size)' : ''}</text>`);
  parts.push(`<text x="12" y="40" font-size="11" fill="#4b5563">${esc(`${env.cpuModel}, ${env.cores} cores · Node ${env.node} · medians of ${result.runs} run(s), whiskers min–max · ${result.pinning}`)}</text>`);
  // legend
  let lx = 12;
  for (const t of targets) {
    parts.push(`<rect x="${lx}" y="48" width="12" height="10" fill="${COLORS[t].main}"/><text x="${lx + 16}" y="57" font-size="11">${esc(TARGET_LABELS[t])}</text>`);
    lx += 16 + TARGET_LABELS[t].length * 6.2 + 16;
  }
  parts.push(`<text x="${lx}" y="57" font-size="11" fill="#4b5563">latency: dark = p50, light = p99</text>`);
  parts.push(panel(latencyGroups, { x: 0, y: headerHeight, width, height: panelHeight, title: 'Latency from send to receipt at fixed rates (lower is better)', unit: 'ms', log: true }));
  const cpuValues = cpuGroups.flatMap((g) => g.bars.map((b) => b.value.median)).filter((v) => Number.isFinite(v) && v > 0);
  const wideRange = cpuValues.length > 0 && Math.max(...cpuValues) / Math.min(...cpuValues) > 30;
  parts.push(panel(cpuGroups, { x: 0, y: headerHeight + panelHeight + 10, width, height: panelHeight, title: 'Server CPU per delivery (lower is better; independent of the load generator)', unit: 'µs', log: wideRange }));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
