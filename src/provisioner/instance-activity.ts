import type { Logger } from '../lib';
import { STARTING_STATES, type InstanceRecord } from './instance';
import { allowedFrom } from './instance-state';
import type { Fleet, Instances } from './pool-scaler';

export interface InstanceActivityDeps {
  instances: Pick<Instances, 'apply'> & { get(pool: string, id: string): Promise<InstanceRecord | undefined> };
  /** The one ordered source of busy/idle: the builds the dispatcher has placed on each agent. */
  fleet: Pick<Fleet, 'runningOn' | 'agentOn'>;
  now(): number;
  log: Logger;
}

/**
 * Keeps each instance's busy/idle in step with the builds its agent runs on this master.
 *
 * The master's busy/idle events can be delivered to Redis out of order (each is an async read
 * and write), and the first build of a woken instance is dispatched the moment its agent says
 * hello, before the record has left `booting`. So no event's own meaning is applied: every
 * update re-reads the dispatcher's running count and moves the record to match it, and the
 * updates of one instance run one after another, so the last one sees the final count.
 */
export class InstanceActivity {
  private readonly queues = new Map<string, Promise<void>>();
  /** When each instance's agent last went from some builds to none (the quiet period counts from there). */
  private readonly endedAt = new Map<string, number>();

  constructor(private readonly d: InstanceActivityDeps) {}

  /** A new agent connection from the instance: build ends of an earlier one are no news to its record. */
  agentArrived(instanceId: string): void {
    this.endedAt.delete(instanceId);
  }

  /** The agent's last build ended at `at`; called in the order the dispatcher saw it. */
  buildsEnded(instanceId: string, at: number): void {
    this.endedAt.set(instanceId, Math.max(at, this.endedAt.get(instanceId) ?? 0));
  }

  /**
   * Runs `fn` after every update already queued for this instance. Errors are the caller's;
   * they do not stop the updates queued after it.
   */
  serial<T>(instanceId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queues.get(instanceId) ?? Promise.resolve();
    const run = before.then(fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(instanceId, settled);
    void settled.then(() => {
      if (this.queues.get(instanceId) === settled) this.queues.delete(instanceId);
    });
    return run;
  }

  /** Queues an {@link update}. */
  sync(pool: string, instanceId: string): Promise<void> {
    return this.serial(instanceId, () => this.update(pool, instanceId));
  }

  /** Resolves once every update queued so far has been applied. */
  async flush(): Promise<void> {
    await Promise.all([...this.queues.values()]);
  }

  /**
   * Moves the record to match the builds its agent runs here now; nothing if the agent is not
   * connected here. Only from inside {@link serial} (or {@link sync}).
   */
  async update(pool: string, id: string): Promise<void> {
    if (this.d.fleet.runningOn(id) === undefined) return;
    let record = await this.d.instances.get(pool, id);
    if (!record) return;
    const agent = this.d.fleet.agentOn(id);
    if (STARTING_STATES.has(record.state) && agent) {
      // Its agent is connected here, so it has registered, whatever the record has heard yet.
      const res = await this.d.instances.apply(pool, id, { type: 'registered', agent }, { agent });
      if (res.ok) this.d.log.info('instance.registered', { pool, instanceId: id, agent, reason: 'its agent runs builds here' });
      if (res.record) record = res.record;
    }
    // Read again after the awaits: the count the record must follow is the latest one.
    const now = this.d.fleet.runningOn(id) ?? 0;
    const ended = this.endedAt.get(id);
    const canStart = allowedFrom('job-started').includes(record.state);
    // A build that started and ended between two updates still ran: the record goes through
    // busy, so that its end is recorded and the quiet period counts from it.
    const missed = now === 0 && ended !== undefined && ended > (record.lastJobEndedAt ?? 0);
    if (canStart && (now > 0 || missed)) {
      const res = await this.d.instances.apply(pool, id, { type: 'job-started' });
      if (res.record) record = res.record;
    }
    if (now === 0 && record.state === 'busy') {
      const at = ended ?? this.d.now();
      const res = await this.d.instances.apply(pool, id, { type: 'jobs-done', at }, { lastJobEndedAt: at });
      if (res.ok) this.endedAt.delete(id);
    }
  }
}
