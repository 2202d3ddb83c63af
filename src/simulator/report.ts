import { formatDuration } from './duration';
import type { SimulationResult, WaitStats } from './stats';

type Cell = { text: string; value: number | null; best?: boolean };

const wait = (ms: number | null): Cell => ({ text: ms === null ? '-' : formatDuration(ms), value: ms });
const num = (n: number, digits = 0): Cell => ({ text: n.toFixed(digits), value: n });
const plain = (text: string): Cell => ({ text, value: null });

/** Marks the lowest value of each marked column among `rows` (when there is more than one row). */
function markBest(rows: Cell[][], columns: readonly number[]): void {
  if (rows.length < 2) return;
  for (const c of columns) {
    const values = rows.map((r) => r[c]!.value).filter((v): v is number => v !== null);
    if (values.length < 2) continue;
    const min = Math.min(...values);
    if (values.every((v) => v === min)) continue;
    for (const r of rows) if (r[c]!.value === min) r[c]!.best = true;
  }
}

function table(header: readonly string[], rows: readonly Cell[][]): string {
  const text = rows.map((r) => r.map((c) => (c.best ? `${c.text}*` : c.text)));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...text.map(line)].join('\n') + '\n';
}

const waits = (w: WaitStats): Cell[] => [wait(w.p50Ms), wait(w.p95Ms), wait(w.maxMs)];

/**
 * The comparison of policies as two tables: queue waits per job type (on-prem and cloud) and
 * what the pools did and cost. `*` marks the best (lowest) value of a column among the
 * policies, within a job type for waits.
 */
export function formatReport(results: readonly SimulationResult[], currency = 'USD'): string {
  const out: string[] = [];
  const r0 = results[0];
  if (!r0) return '';
  const jobs = r0.types.reduce((n, t) => n + t.jobs, 0);
  out.push(`simulated ${new Date(r0.startedAt).toISOString()} to ${new Date(Math.max(...results.map((r) => r.endedAt))).toISOString()}, ${jobs} jobs, ${results.length} polic${results.length === 1 ? 'y' : 'ies'}\n`);
  for (const r of results) out.push(`  ${r.policy}: ${r.spec || '(the config as it is)'}\n`);
  out.push('\nQUEUE WAIT (p50 / p95 / max; * best among the policies)\n');
  const waitRows: Cell[][] = [];
  for (const t of r0.types.map((x) => x.type)) {
    const group = results.map((r) => {
      const s = r.types.find((x) => x.type === t)!;
      return [plain(t), plain(r.policy), ...waits(s.onprem), ...waits(s.cloud), plain(String(s.overflowed)), plain(s.neverRan ? String(s.neverRan) : '-')];
    });
    markBest(group, [2, 3, 4, 5, 6, 7]);
    waitRows.push(...group);
  }
  out.push(table(['type', 'policy', 'on-prem p50', 'p95', 'max', 'cloud p50', 'p95', 'max', 'overflowed', 'never ran'], waitRows));
  out.push(`\nPOOLS (all pools together; cost of the running hours in ${currency})\n`);
  const poolRows = results.map((r) => {
    const sum = (f: (p: SimulationResult['pools'][number]) => number) => r.pools.reduce((n, p) => n + f(p), 0);
    return [
      plain(r.policy),
      plain(r.pools.map((p) => p.pool).join(',') || '-'),
      wait(r.all.p95Ms),
      num(sum((p) => p.runningHours), 1),
      num(sum((p) => p.suspendedHours), 1),
      num(sum((p) => p.wakes)),
      num(sum((p) => p.launches)),
      r.cost === null ? plain('-') : num(r.cost, 2),
    ];
  });
  markBest(poolRows, [2, 3, 5, 6, 7]);
  out.push(table(['policy', 'pools', 'wait p95', 'instance-h running', 'suspended', 'wakes', 'launches', 'cost'], poolRows));
  return out.join('');
}
