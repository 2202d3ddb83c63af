import type { BuildRecord } from '../master';

/** One remote action's build, as the remote demo tells it. */
export interface RanAction {
  /** `a07`; `?` when its result named no output the demo knows. */
  action: string;
  jobId: string;
  agent: string;
  location: BuildRecord['location'];
  success: boolean;
}

export interface RemoteNarratorOptions {
  out: NodeJS.WritableStream;
  now: () => number;
  /** The job type remote actions become. */
  jobType: string;
  /** Which demo action a build ran (from the output its result names). */
  actionOf: (b: BuildRecord) => Promise<string | undefined>;
  /** Remote actions waiting and running now. */
  queue: () => Promise<{ waiting: number; running: number }>;
  /** Executors on-prem agents have for remote actions. */
  onpremExecutors: number;
}

/**
 * What `spillway demo --remote` prints while a burst runs: a line per action (where it ran:
 * on-prem or CLOUD and the instance), the backlog once it forms, and a progress line whenever
 * the counts change. Cloud events come through narrateLogEntry, as in the plain demo.
 */
export class RemoteNarrator {
  readonly ran: RanAction[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly started: number;
  private lastProgress = '';
  private backlogSaid = false;

  constructor(private readonly o: RemoteNarratorOptions) {
    this.started = o.now();
  }

  /** A new round: its backlog is said again. */
  round(): void {
    this.backlogSaid = false;
    this.lastProgress = '';
  }

  build(b: BuildRecord): void {
    if (b.type !== this.o.jobType) return;
    const told = this.o
      .actionOf(b)
      .catch(() => undefined)
      .then((action) => {
        const ran: RanAction = { action: action ?? '?', jobId: b.id, agent: b.agent, location: b.location, success: b.result === 'success' };
        this.ran.push(ran);
        this.o.out.write(formatAction(ran, b) + '\n');
      });
    this.pending.add(told);
    void told.finally(() => this.pending.delete(told));
  }

  /** Resolves once every finished build's line is out. */
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  /** The progress line, unless nothing changed; the backlog's line the first time it outgrows on-prem. */
  async progress(): Promise<void> {
    const q = await this.o.queue().catch(() => undefined);
    if (!q) return;
    if (!this.backlogSaid && q.waiting >= 2) {
      this.backlogSaid = true;
      this.o.out.write(
        `  backlog: ${q.waiting} remote actions waiting, ${q.running} running: more than the ${this.o.onpremExecutors} on-prem executors take at once, so the overflow rule (2+ waiting 1s+) asks the cloud pool for instances\n`,
      );
    }
    const t = this.tally();
    if (t.done + q.running + q.waiting === 0) return;
    const body = `remote actions: ${t.done} done (on-prem ${t.onprem}, cloud ${t.cloud}) · running ${q.running} · waiting ${q.waiting}`;
    if (body === this.lastProgress) return;
    this.lastProgress = body;
    const sec = Math.round((this.o.now() - this.started) / 1000);
    this.o.out.write(`  [${String(sec).padStart(3)}s] ${body}\n`);
  }

  tally(): { done: number; onprem: number; cloud: number; failed: number } {
    return {
      done: this.ran.length,
      onprem: this.ran.filter((r) => r.location !== 'cloud').length,
      cloud: this.ran.filter((r) => r.location === 'cloud').length,
      failed: this.ran.filter((r) => !r.success).length,
    };
  }
}

function formatAction(r: RanAction, b: BuildRecord): string {
  const where = b.location === 'cloud' ? `CLOUD ${b.instanceId ?? ''}`.trim() : 'on-prem';
  const wait = b.waitMs === null ? '-' : `${b.waitMs}ms`;
  const ran = b.durationMs === null ? '-' : `${b.durationMs}ms`;
  const result = r.success ? 'ok  ' : 'FAIL';
  const why = r.success ? '' : `  ${b.reason ?? b.result ?? ''}`;
  return `  ${result} action ${r.action.padEnd(4)} ${b.agent.padEnd(14)} ${where.padEnd(21)} waited ${wait.padStart(7)}  ran ${ran.padStart(6)}${why}`;
}
