/**
 * The report of bench/cache-vs-nginx.ts: one table of figure | spillway | nginx | ratio |
 * target | result, and the per-round lines under each figure.
 */
import { f1, f2 } from './harness';
import type { Rates } from './cas-nginx';

/** One row; `ok` undefined: reported, no verdict. */
export interface ReportRow {
  figure: string;
  spillway: string;
  nginx: string;
  ratio: string;
  target: string;
  ok: boolean | undefined;
}

export function printReport(rows: readonly ReportRow[]): void {
  const cols: Array<[string, (r: ReportRow) => string, 'l' | 'r']> = [
    ['figure', (r) => r.figure, 'l'],
    ['spillway', (r) => r.spillway, 'r'],
    ['nginx', (r) => r.nginx, 'r'],
    ['ratio', (r) => r.ratio, 'r'],
    ['target', (r) => r.target, 'l'],
    ['result', (r) => (r.ok === undefined ? '' : r.ok ? 'PASS' : 'MISS'), 'l'],
  ];
  const widths = cols.map(([h, get]) => Math.max(h.length, ...rows.map((r) => get(r).length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const cells = (vals: string[]) => `| ${vals.map((v, i) => (cols[i]![2] === 'r' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(' | ')} |`;
  console.log(line);
  console.log(cells(cols.map(([h]) => h)));
  console.log(line);
  for (const r of rows) console.log(cells(cols.map(([, get]) => get(r))));
  console.log(line);
}

/** A figure where more is better (hits/s, MB/s): PASS at `spillway >= target x nginx`. */
export function higherIsBetter(figure: string, r: Pick<Rates, 'medians'>, target: number, fmt: (n: number) => string = f1): ReportRow {
  const s = r.medians.spillway!;
  const n = r.medians.nginx!;
  return { figure, spillway: fmt(s), nginx: fmt(n), ratio: f2(s / n), target: `>= ${target}x nginx`, ok: s / n >= target };
}

/** Per-round lines of a figure: `  label round i: name value  name value ...`. */
export function printRounds(label: string, r: Rates, fmt: (n: number) => string = f1): void {
  console.log(`${label} (median of ${r.rounds.length} round${r.rounds.length === 1 ? '' : 's'}):`);
  const names = Object.keys(r.medians);
  for (const [i, round] of r.rounds.entries()) console.log(`  round ${i + 1}: ${names.map((n) => `${n} ${fmt(round[n]!)}`).join('  ')}`);
}
