/**
 * Fakes for the scale benchmark's multi-master phase: a provider that counts start calls per
 * instance and otherwise succeeds, a backlog with a fixed number of waiting jobs, and a fleet
 * without any connected agent. None of them does I/O; the instance store and the pool lock
 * they run against are the real ones, in Redis.
 */
import type { Backlog, Fleet, LaunchRequest, Machine, MachineState, Provider, SuspendMode, SuspendOutcome } from '../src/provisioner';

export class CountingProvider implements Provider {
  readonly kind = 'local';
  /** Start calls per instance id, including calls for machines that were already started. */
  readonly starts = new Map<string, number>();
  /** Ids of every start call in call order (one call may carry several). */
  readonly calls: string[][] = [];
  launches = 0;
  private readonly machines = new Map<string, { state: MachineState; launchedAt: number }>();

  constructor(
    ids: readonly string[],
    /** Simulated latency of one start call (EC2's StartInstances takes a few hundred ms). */
    private readonly startDelayMs = 0,
  ) {
    for (const id of ids) this.machines.set(id, { state: 'stopped', launchedAt: Date.now() });
  }

  async setup(): Promise<void> {}

  async list(): Promise<Machine[]> {
    return [...this.machines].map(([id, m]) => ({ id, state: m.state, privateIp: '127.0.0.1', spot: false, hibernated: false, launchedAt: m.launchedAt }));
  }

  async start(ids: readonly string[]): Promise<void> {
    this.calls.push([...ids]);
    for (const id of ids) {
      this.starts.set(id, (this.starts.get(id) ?? 0) + 1);
      const m = this.machines.get(id);
      if (m) m.state = 'running';
    }
    if (this.startDelayMs > 0) await new Promise((r) => setTimeout(r, this.startDelayMs));
  }

  async suspend(ids: readonly string[], _mode: SuspendMode): Promise<SuspendOutcome[]> {
    return ids.map((id) => {
      const m = this.machines.get(id);
      if (m) m.state = 'stopped';
      return { id, did: m ? 'stopped' : 'failed', reason: m ? null : 'no such machine' };
    });
  }

  async launch(_req: LaunchRequest): Promise<Machine[]> {
    this.launches++;
    return [];
  }

  async terminate(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.machines.delete(id);
  }

  async close(): Promise<void> {}

  totalStarts(): number {
    let n = 0;
    for (const v of this.starts.values()) n += v;
    return n;
  }

  maxStartsPerInstance(): number {
    return Math.max(0, ...this.starts.values());
  }
}

/** A queue monitor that always reports `waiting` jobs of `type`, waiting for `oldestWaitMs`. */
export class FixedBacklog implements Backlog {
  constructor(
    private readonly type: string,
    private readonly waiting: number,
    private readonly oldestWaitMs = 5_000,
  ) {}

  current(type: string) {
    return type === this.type ? { waiting: this.waiting, prioritized: 0, oldestWaitMs: this.oldestWaitMs } : undefined;
  }
}

/** No agent connected anywhere: no idle on-prem executors, no cloud agent on this master. */
export class EmptyFleet implements Fleet {
  idleOnprem(): number {
    return 0;
  }
  idleOn(): number {
    return 0;
  }
  busyWith(): number {
    return 0;
  }
  runningOn(): number | undefined {
    return undefined;
  }
  agentOn(): string | undefined {
    return undefined;
  }
  setDraining(): boolean {
    return false;
  }
  disconnect(): void {}
  notice(): boolean {
    return false;
  }
  preempt(): void {}
}
