/**
 * A tiny aligned-table formatter for terminal output (no dependency): a header row, a rule,
 * then one line per row; numbers align right, everything else left, columns two spaces apart.
 */

export type Cell = string | number | boolean | null | undefined;

export interface Column<TRow> {
  header: string;
  value: (row: TRow) => Cell;
  /** Defaults to right for numbers, left otherwise. */
  align?: 'left' | 'right';
}

export function formatTable<TRow>(rows: readonly TRow[], columns: ReadonlyArray<Column<TRow>>): string {
  const cells = rows.map((row) => columns.map((c) => c.value(row)));
  const text = cells.map((line) => line.map(show));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...text.map((line) => width(line[i]!))));
  const alignOf = (i: number): 'left' | 'right' => columns[i]!.align ?? (cells.length > 0 && cells.every((line) => typeof line[i] === 'number' || line[i] == null) ? 'right' : 'left');
  const render = (line: readonly string[]) =>
    line
      .map((s, i) => (alignOf(i) === 'right' ? pad(s, widths[i]!, 'left') : i === line.length - 1 ? s : pad(s, widths[i]!, 'right')))
      .join('  ')
      .trimEnd();
  const out = [render(columns.map((c) => c.header)), widths.map((w) => '─'.repeat(w)).join('  ')];
  for (const line of text) out.push(render(line));
  return out.join('\n');
}

/** Two columns, label and value: for one record (stats, a room's summary). */
export function formatPairs(pairs: ReadonlyArray<readonly [string, Cell]>): string {
  const w = Math.max(0, ...pairs.map(([label]) => width(label)));
  return pairs.map(([label, value]) => `${pad(label, w, 'right')}  ${show(value)}`.trimEnd()).join('\n');
}

function show(value: Cell): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  return value;
}

function width(s: string): number {
  return [...s].length;
}

function pad(s: string, to: number, side: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, to - width(s)));
  return side === 'left' ? fill + s : s + fill;
}

/** "3s ago", "4m 10s ago", "2h 05m ago" for an ISO date. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  return `${duration((now - new Date(iso).getTime()) / 1000)} ago`;
}

/** 42s, 3m 07s, 2h 05m, 3d 04h. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d ${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

/** 1.5 MiB, 312 KiB, 900 B. */
export function bytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
  return `${n} B`;
}
