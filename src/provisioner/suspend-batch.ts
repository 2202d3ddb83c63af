import type { Logger } from '../lib';
import type { InstanceEvent } from './instance-state';
import type { Provider, SuspendMode, SuspendOutcome } from './provider';

/** What a {@link SuspendBatch} needs of the pool (narrow parts of the scaler's own dependencies). */
export interface SuspendBatchDeps {
  pool: string;
  provider: Pick<Provider, 'suspend'>;
  instances: {
    apply(pool: string, id: string, event: InstanceEvent): Promise<unknown>;
    remove(pool: string, id: string): Promise<void>;
  };
  fleet: { disconnect(instanceId: string, reason: string): void };
  log: Logger;
}

interface Wanted {
  id: string;
  why: string;
}

/**
 * The instances one tick of a pool moved to `suspending`, stopped or terminated together at the
 * end of the tick: one provider call per mode (the EC2 provider chunks it at EC2's id limit)
 * instead of one per instance, which after adopting 1,000 instances was 500 calls back to back.
 * Each record then says what the provider did, not what was asked: a refused hibernation is a
 * plain stop (the next wake is a cold boot), and a terminated machine (spot instances that
 * cannot stop) is recorded as terminated and forgotten, so no wake ever picks it.
 */
export class SuspendBatch {
  private readonly wanted = new Map<SuspendMode, Wanted[]>();

  constructor(private readonly d: SuspendBatchDeps) {}

  /** The instance (already `suspending`) is to be suspended in `mode` when the batch is flushed. */
  add(id: string, why: string, mode: SuspendMode): void {
    const list = this.wanted.get(mode) ?? [];
    list.push({ id, why });
    this.wanted.set(mode, list);
  }

  /** Makes the calls and records their outcomes; a failed call fails its instances, never the tick. */
  async flush(signal: AbortSignal): Promise<void> {
    const batches = [...this.wanted.entries()];
    this.wanted.clear();
    for (const [mode, list] of batches) {
      const ids = list.map((w) => w.id);
      // An expected goodbye: otherwise a hibernated agent's silence reads as "agent lost".
      for (const id of ids) this.d.fleet.disconnect(id, `instance ${mode === 'terminate' ? 'terminated' : 'suspended'}`);
      let outcomes: Map<string, SuspendOutcome>;
      try {
        outcomes = new Map((await this.d.provider.suspend(ids, mode, signal)).map((o) => [o.id, o]));
      } catch (err) {
        const error = (err as Error).message;
        this.d.log.error('instance.suspend-failed', { count: ids.length, instanceIds: ids, mode, error });
        for (const id of ids) await this.d.instances.apply(this.d.pool, id, { type: 'fail', reason: `suspend failed: ${error}` });
        continue;
      }
      for (const w of list) await this.record(w, mode, outcomes.get(w.id));
    }
  }

  private async record(w: Wanted, mode: SuspendMode, outcome: SuspendOutcome | undefined): Promise<void> {
    const did = outcome?.did ?? 'failed';
    const detail = outcome ? outcome.reason : 'the provider did not report on it';
    const reason = detail ? `${w.why}; ${detail}` : w.why;
    if (did === 'failed') {
      this.d.log.error('instance.suspend-failed', { instanceId: w.id, mode, error: detail });
      await this.d.instances.apply(this.d.pool, w.id, { type: 'fail', reason: `suspend failed: ${detail}` });
      return;
    }
    this.d.log.info('instance.suspended', { instanceId: w.id, mode, did, reason });
    if (did === 'terminated') {
      await this.d.instances.apply(this.d.pool, w.id, { type: 'terminated', reason });
      await this.d.instances.remove(this.d.pool, w.id);
      return;
    }
    await this.d.instances.apply(this.d.pool, w.id, { type: 'stopped', hibernated: did === 'hibernated', reason });
  }
}
