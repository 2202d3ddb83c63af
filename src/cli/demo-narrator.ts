import type { LogEntry } from '../lib';
import type { BuildRecord } from '../master';

/** Provisioner events a newcomer should see, as one friendly line each. */
const NARRATION: Partial<Record<string, (e: LogEntry) => string>> = {
  'instance.waking': (e) => `  cloud: waking ${(e.instanceIds as string[]).join(', ')} (${String(e.reason)})`,
  'instance.launching': (e) => `  cloud: launching ${String(e.count)} new instance(s)`,
  'instance.registered': (e) => `  cloud: ${String(e.instanceId)} is up, its agent registered`,
  'instance.draining': (e) => `  cloud: draining ${String(e.instanceId)} (${String(e.reason)})`,
  'instance.suspended': (e) => `  cloud: ${String(e.instanceId)} suspended (${String(e.mode)})`,
  'instance.boot-timeout': (e) => `  cloud: ${String(e.instanceId)} failed to boot (${String(e.reason)})`,
};

/** A log entry as the demos print it: a cloud event's line, and warnings and errors as they are. */
export function narrateLogEntry(e: LogEntry, out: NodeJS.WritableStream): void {
  if (e.level === 'error' || e.level === 'warn') out.write(`  ${e.level}: ${e.event} ${JSON.stringify(e)}\n`);
  const line = NARRATION[e.event]?.(e);
  if (line) out.write(line + '\n');
}

export interface DemoNarratorOptions {
  out: NodeJS.WritableStream;
  /** Every build gets its line; else only unexpected failures do, and a summary comes every few seconds. */
  verbose: boolean;
  /** Jobs the sample load makes fail on purpose, and how (said on their lines). */
  deliberate: ReadonlyMap<string, string>;
  /** Jobs waiting now, over every job type. */
  waiting: () => Promise<number>;
  now: () => number;
}

/**
 * What `spillway demo` prints: cloud events always (they are the point of the demo), and
 * either every build (`--verbose`) or a summary line every few seconds, so the cloud's wake /
 * suspend stands out instead of scrolling by among build lines.
 */
export class DemoNarrator {
  private ok = 0;
  private failed = 0;
  private failedOnPurpose = 0;
  private onprem = 0;
  private cloud = 0;
  private readonly started: number;
  private lastSummary = '';

  constructor(private readonly o: DemoNarratorOptions) {
    this.started = o.now();
  }

  get finished(): number {
    return this.ok + this.failed;
  }

  /** For the logger's sink: a cloud event's line, and warnings and errors as they are. */
  logEntry(e: LogEntry): void {
    narrateLogEntry(e, this.o.out);
  }

  build(b: BuildRecord): void {
    const success = b.result === 'success';
    const onPurpose = !success ? this.o.deliberate.get(b.id) : undefined;
    if (success) this.ok++;
    else this.failed++;
    if (onPurpose) this.failedOnPurpose++;
    if (b.location === 'cloud') this.cloud++;
    else this.onprem++;
    if (this.o.verbose || (!success && !onPurpose)) this.o.out.write(formatBuild(b, onPurpose) + '\n');
  }

  /** The summary line, printed unless nothing changed since the last one (or in `--verbose`, where builds speak for themselves). */
  async summary(force = false): Promise<void> {
    if (this.o.verbose && !force) return;
    const waiting = await this.o.waiting().catch(() => null);
    const body = this.counts(waiting);
    if (body === this.lastSummary && !force) return;
    this.lastSummary = body;
    const sec = Math.round((this.o.now() - this.started) / 1000);
    this.o.out.write(`  [${String(sec).padStart(3)}s] ${body}\n`);
  }

  /** The closing words: how many builds, how many failed and whether on purpose. */
  closing(): string {
    const why = this.failed === 0 ? '' : this.failedOnPurpose === this.failed ? ' (all deliberate)' : ` (${this.failedOnPurpose} deliberate)`;
    return `spillway demo: ${this.finished} build(s) finished, ${this.failed} not successful${why}; stopping`;
  }

  private counts(waiting: number | null): string {
    const fails = this.failed === 0 ? '0 failed' : `${this.failed} failed (${this.failedOnPurpose === this.failed ? 'all' : this.failedOnPurpose} deliberate)`;
    return `builds: ${this.ok} ok, ${fails} · ran on-prem ${this.onprem}, cloud ${this.cloud} · waiting ${waiting ?? '?'}`;
  }
}

export function formatBuild(b: BuildRecord, deliberate?: string): string {
  const mark = b.result === 'success' ? 'ok  ' : 'FAIL';
  const where = b.location === 'cloud' ? `CLOUD ${b.instanceId ?? ''}`.trim() : 'on-prem';
  const wait = b.waitMs === null ? '-' : `${b.waitMs}ms`;
  const ran = b.durationMs === null ? '-' : `${b.durationMs}ms`;
  const result = b.result === 'success' ? 'exited 0' : deliberate ? `(deliberate: ${deliberate})` : (b.reason ?? b.result ?? '');
  const id = b.id.length <= 10 ? b.id.padEnd(10) : `${b.id.slice(0, 9)}…`;
  return `  ${mark} ${b.type.padEnd(8)} ${id}  ${b.agent.padEnd(14)} ${where.padEnd(21)} waited ${wait.padStart(6)}  ran ${ran.padStart(6)}  ${result}`;
}
