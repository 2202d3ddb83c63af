import type { Clock, Logger } from '../lib';
import {
  describeMachines,
  describePoolMachines,
  launchMachines,
  startMachines,
  stopMachines,
  terminateMachines,
  verifyLaunchTemplate,
  verifySubnets,
  type Ec2CallOptions,
  type Ec2Client,
  type Ec2PoolConfig,
} from './ec2-api';
import { Ec2Retrier, type Ec2RetryPolicy } from './ec2-errors';
import { ProviderError, type LaunchRequest, type Machine, type Provider, type SuspendMode, type SuspendOutcome } from './provider';

/** What an {@link Ec2Provider} is built from. */
export interface Ec2ProviderDeps {
  pool: string;
  /** The pool's `ec2` section. */
  config: Ec2PoolConfig;
  /** The client for `config.region` (one per region, shared by its pools). */
  client: Ec2Client;
  /** Sleeps between throttled retries. */
  clock: Clock;
  log: Logger;
  /** Throttling retries. @defaultValue 5 attempts, backoff from 1 s doubling up to 20 s */
  retry?: Partial<Ec2RetryPolicy>;
  /** Jitter source for the retry backoff, in [0, 1). @defaultValue Math.random */
  random?: () => number;
}

/**
 * A pool of EC2 instances: found by the `spillway:pool` tag, launched from the pool's launch
 * template, woken with StartInstances and suspended by hibernating, stopping or terminating.
 * Every failure is a {@link ProviderError} carrying EC2's error code.
 */
export class Ec2Provider implements Provider {
  readonly kind = 'ec2' as const;
  private readonly pool: string;
  private readonly config: Ec2PoolConfig;
  private readonly client: Ec2Client;
  private readonly log: Logger;
  private readonly opts: Ec2CallOptions;

  constructor(deps: Ec2ProviderDeps) {
    this.pool = deps.pool;
    this.config = deps.config;
    this.client = deps.client;
    this.log = deps.log.child({ component: 'ec2-provider', pool: deps.pool, region: deps.config.region });
    const retrier = new Ec2Retrier({
      clock: deps.clock,
      log: this.log,
      ...(deps.retry ? { policy: deps.retry } : {}),
      ...(deps.random ? { random: deps.random } : {}),
    });
    this.opts = { retrier, log: this.log };
  }

  /** Checks that the launch template and every subnet exist; a missing one is a fatal ProviderError. */
  async setup(signal: AbortSignal): Promise<void> {
    try {
      await verifyLaunchTemplate(this.client, this.config.launchTemplate, signal, this.opts);
      await verifySubnets(this.client, this.config.subnetIds, signal, this.opts);
    } catch (err) {
      const e = err instanceof ProviderError ? err : new ProviderError(String(err), 'retry', undefined, { cause: err });
      throw new ProviderError(`pool "${this.pool}" (EC2 ${this.config.region}): ${e.message}`, e.disposition, e.providerCode, { cause: err });
    }
  }

  list(signal: AbortSignal): Promise<Machine[]> {
    return describePoolMachines(this.client, this.pool, signal, this.opts);
  }

  start(ids: readonly string[], signal: AbortSignal): Promise<void> {
    return startMachines(this.client, ids, signal, this.opts);
  }

  /**
   * `hibernate` falls back to a plain stop when EC2 refuses it. In a spot pool, instances that
   * are spot are terminated whatever the mode: they are launched as one-time requests, which
   * EC2 cannot stop (instances of the on-demand fallback are stopped as asked). Each outcome is
   * read from EC2's answer, so it says which of these happened.
   */
  async suspend(ids: readonly string[], mode: SuspendMode, signal: AbortSignal): Promise<SuspendOutcome[]> {
    if (ids.length === 0) return [];
    if (mode === 'terminate') return terminateMachines(this.client, ids, signal, this.opts);
    const out: SuspendOutcome[] = [];
    let stoppable = ids;
    if (this.config.spot) {
      const spot = new Set((await describeMachines(this.client, ids, signal, this.opts)).filter((m) => m.spot).map((m) => m.id));
      if (spot.size > 0) {
        const why = 'one-time spot instances cannot be stopped';
        this.log.info('ec2.spot-terminated', { instances: [...spot], reason: why });
        out.push(...(await terminateMachines(this.client, [...spot], signal, this.opts, `terminated: ${why}`)));
        stoppable = ids.filter((id) => !spot.has(id));
      }
    }
    if (stoppable.length > 0) {
      const stopped = await stopMachines(this.client, stoppable, mode === 'hibernate', signal, this.opts);
      this.log.info('ec2.suspended', { instances: stoppable, mode, outcomes: stopped.map((o) => `${o.id}: ${o.did}`) });
      out.push(...stopped);
    }
    const byId = new Map(out.map((o) => [o.id, o]));
    return ids.map((id) => byId.get(id)!);
  }

  async launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine[]> {
    if (req.count <= 0) return [];
    const out = await launchMachines(
      this.client,
      { pool: this.pool, config: this.config, count: req.count, clientToken: req.clientToken, onDemand: req.onDemand === true },
      signal,
      this.opts,
    );
    this.log.info('ec2.launched', {
      instances: out.machines.map((m) => m.id),
      market: out.candidate.market,
      ...(req.onDemand && { why: 'on-demand fallback after repeated spot preemption' }),
      subnetId: out.candidate.subnetId,
      instanceType: out.candidate.instanceType ?? 'from launch template',
      refusals: out.refusals.length,
    });
    return out.machines;
  }

  async terminate(ids: readonly string[], signal: AbortSignal): Promise<void> {
    await terminateMachines(this.client, ids, signal, this.opts);
  }

  /** Nothing to let go: the client is shared by the region's pools and owned by whoever made it. */
  async close(): Promise<void> {}
}
