/**
 * What every benchmark here shares: env knobs, progress lines, a bounded run that stops what it
 * started on every exit path, percentiles, number formatting and the final PASS/MISS table.
 * Kept free of spillway imports so a bench can use it before anything of src is loaded.
 */
import { availableParallelism, cpus, loadavg } from 'node:os';

/**
 * A positive integer from the environment, else `dflt`. `zeroOk` also accepts 0 (a boot or
 * start delay may be switched off); an unset variable is never read as 0.
 */
export function intEnv(name: string, dflt: number, zeroOk = false): number {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isInteger(v) && (v > 0 || (zeroOk && v === 0)) ? v : dflt;
}

/** Progress goes to stderr, so stdout holds the report alone. */
export const say = (s: string): void => {
  process.stderr.write(`[bench] ${s}\n`);
};

// ---------------------------------------------------------------------------------------------
// The bounded run

/**
 * `fn` run at most once: every later call gets the first call's promise, so the budget, a
 * signal and the normal end can all ask for cleanup without stopping things twice.
 */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

export interface RunOptions {
  /** The whole run is stopped past this. */
  budgetMs: number;
  /** Stops everything the run started; must be safe to call more than once. */
  cleanup: () => Promise<void>;
  /** Last resort when `cleanup` itself hangs after the budget ran out: kill what is left. */
  kill: () => void;
  /** After `cleanup` on every way out (e.g. remove the work directory). */
  afterCleanup?: () => void;
  /** After `cleanup` only when the run is cut short (budget, signal, error). */
  afterAbort?: () => void;
  /** Extra diagnostics after a failed run's stack (e.g. the children's last output). */
  onError?: () => void;
}

/**
 * Runs `main` under a watchdog of `budgetMs` and with SIGINT/SIGTERM handlers, then exits with
 * its code. Exit codes: main's on success, 1 when it throws, 3 past the budget, 130 on a
 * signal. Past the budget `kill` runs if cleanup has not finished within 15 s, so a wedged
 * child cannot keep the run alive.
 */
export function runBench(main: () => Promise<number>, o: RunOptions): void {
  const aborted = (): void => {
    o.afterAbort?.();
    o.afterCleanup?.();
  };
  const watchdog = setTimeout(() => {
    say(`run budget of ${o.budgetMs} ms exceeded: stopping everything`);
    const hard = setTimeout(() => {
      o.kill();
      process.exit(3);
    }, 15_000);
    void o.cleanup().finally(() => {
      clearTimeout(hard);
      aborted();
      process.exit(3);
    });
  }, o.budgetMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: stopping everything`);
      void o.cleanup().finally(() => {
        aborted();
        process.exit(130);
      });
    });
  }
  main().then(
    async (code) => {
      clearTimeout(watchdog);
      await o.cleanup();
      o.afterCleanup?.();
      process.exit(code);
    },
    async (err: unknown) => {
      clearTimeout(watchdog);
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      o.onError?.();
      await o.cleanup();
      aborted();
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The machine the figures were taken on

export interface MachineInfo {
  nproc: number;
  cpu: string;
  node: string;
  /** Load averages at start, formatted. */
  load: string;
}

export function machineInfo(): MachineInfo {
  return { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? '?', node: process.version, load: loadavg().map((l) => l.toFixed(2)).join(' ') };
}

/** The report's machine line. */
export const machineLine = (m: MachineInfo): string => `machine: nproc ${m.nproc} (${m.cpu}), node ${m.node}, load average at start ${m.load}`;

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Stats {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * Summary of the finite samples (a missing timestamp yields NaN; it is left out rather than
 * poisoning the sort and the mean). Empty: n 0 and NaN elsewhere (mean 0).
 */
export function stats(xs: number[]): Stats {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, min: s[0] ?? NaN, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), max: s[s.length - 1] ?? NaN, mean };
}

/** The numeric fields of T. */
type NumericKey<T> = { [K in keyof T]: T[K] extends number ? K : never }[keyof T];

/** `stats` of each named field across the samples (one breakdown line per field). */
export function statsOf<T, K extends NumericKey<T>>(samples: readonly T[], keys: readonly K[]): Record<K, Stats> {
  const out = {} as Record<K, Stats>;
  for (const k of keys) out[k] = stats(samples.map((x) => x[k] as number));
  return out;
}

export const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
export const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
export const ms = (n: number): string => (Number.isFinite(n) ? `${Math.round(n)} ms` : 'n/a');

/**
 * One line of a latency breakdown: `name` padded to `width`, then the percentiles (and `min`
 * when asked), each right-aligned to 4, and the mean with `meanFmt`.
 */
export function statsRow(name: string, s: Stats, width: number, opts: { min?: boolean; meanFmt: (n: number) => string }): string {
  const col = (label: string, v: number) => `${label} ${String(v).padStart(4)}  `;
  const min = opts.min ? col('min', s.min) : '';
  return `  ${name.padEnd(width)} ${min}${col('p50', s.p50)}${col('p90', s.p90)}${col('p99', s.p99)}${col('max', s.max)}mean ${opts.meanFmt(s.mean)}`;
}

// ---------------------------------------------------------------------------------------------
// The final table

/** figure, value, target, verdict (undefined: reported, no target). */
export type TableRow = [figure: string, value: string, target: string, ok: boolean | undefined];

export function printTable(rows: readonly TableRow[]): void {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const w2 = Math.max(...rows.map((r) => r[2].length));
  const line = `+-${'-'.repeat(w0)}-+-${'-'.repeat(w1)}-+-${'-'.repeat(w2)}-+------+`;
  console.log(line);
  console.log(`| ${'figure'.padEnd(w0)} | ${'value'.padStart(w1)} | ${'target'.padEnd(w2)} | res  |`);
  console.log(line);
  for (const [a, b, c, ok] of rows) console.log(`| ${a.padEnd(w0)} | ${b.padStart(w1)} | ${c.padEnd(w2)} | ${ok === undefined ? '    ' : ok ? 'PASS' : 'MISS'} |`);
  console.log(line);
}
