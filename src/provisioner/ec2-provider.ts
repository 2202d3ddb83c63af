import { createHash } from 'node:crypto';
import type { Clock, Logger } from '../lib';
import type { AwsErrorObserver } from './aws-errors';
import {
  describeLaunched,
  describeMachines,
  describePoolMachines,
  candidateToken,
  launchCandidates,
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
import { Ec2Retrier, type AwsRetryObserver, type Ec2RetryPolicy } from './ec2-errors';
import type { Ec2RequestBucket } from './ec2-request-bucket';
import type { PeerIssuer } from './peer-issuer';
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
  /**
   * A VPN pool's peers: each launched instance gets its own (one RunInstances per instance,
   * its user-data carrying the peer), and a terminated one gives it back.
   * @defaultValue none: every instance gets the launch template's user-data
   */
  peers?: PeerIssuer;
  /** Told of every failed EC2 request (each try), for the API-error metrics. */
  onAwsError?: AwsErrorObserver;
  /** Told of every retry, for the retry counter. */
  onAwsRetry?: AwsRetryObserver;
  /**
   * The token bucket of the client's account and region, shared with the region's other pools.
   * @defaultValue none: mutating requests are not paced here
   */
  bucket?: Ec2RequestBucket;
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
  private readonly peers: PeerIssuer | undefined;

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
      ...(deps.onAwsError ? { onError: deps.onAwsError } : {}),
      ...(deps.onAwsRetry ? { onRetry: deps.onAwsRetry } : {}),
    });
    this.peers = deps.peers;
    this.opts = { retrier, log: this.log, ...(deps.bucket && { bucket: deps.bucket }) };
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

  /** In a VPN pool, the listing also gives back the peers of instances gone behind spillway's back. */
  async list(signal: AbortSignal): Promise<Machine[]> {
    const machines = await describePoolMachines(this.client, this.pool, signal, this.opts);
    await this.peers?.sweep(machines.map((m) => m.id));
    return machines;
  }

  /**
   * What launches with these ClientTokens made, each launch's per-candidate tokens included
   * (they are derived from it): how a launch recorded before a crash is settled.
   */
  async launched(clientTokens: readonly string[], signal: AbortSignal): Promise<Map<string, Machine[]>> {
    // Each candidate's request, and each asked again for the rest (see launchMachines).
    const n = 2 * launchCandidates(this.config, '', false).length;
    const launchOf = new Map(clientTokens.flatMap((t) => Array.from({ length: n }, (_, i) => [candidateToken(t, i), t] as const)));
    const out = new Map(clientTokens.map((t) => [t, [] as Machine[]]));
    for (const m of await describeLaunched(this.client, [...launchOf.keys()], signal, this.opts)) {
      const t = m.clientToken === undefined ? undefined : launchOf.get(m.clientToken);
      if (t) out.get(t)!.push(m);
    }
    return out;
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
    if (mode === 'terminate') return this.released(await terminateMachines(this.client, ids, signal, this.opts));
    const out: SuspendOutcome[] = [];
    let stoppable = ids;
    if (this.config.spot) {
      const spot = new Set((await describeMachines(this.client, ids, signal, this.opts)).filter((m) => m.spot).map((m) => m.id));
      if (spot.size > 0) {
        const why = 'one-time spot instances cannot be stopped';
        this.log.info('ec2.spot-terminated', { instances: [...spot], reason: why });
        out.push(...(await this.released(await terminateMachines(this.client, [...spot], signal, this.opts, `terminated: ${why}`))));
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
    if (this.peers) return this.launchPeers(this.peers, req, signal);
    return this.launchOnce(req, signal);
  }

  /**
   * One RunInstances per instance, since every instance of a request gets the same user-data
   * and each needs its own peer. Each has a token derived from the launch's, so a retried
   * launch retries each instance with its own peer. What launched is returned even when a later
   * instance fails; only a launch that made nothing rejects.
   */
  private async launchPeers(peers: PeerIssuer, req: LaunchRequest, signal: AbortSignal): Promise<Machine[]> {
    const out: Machine[] = [];
    for (let i = 0; i < req.count; i++) {
      const token = `spillway-${createHash('sha256').update(`${req.clientToken}\n${i}`).digest('hex').slice(0, 40)}`;
      try {
        let peer;
        try {
          peer = await peers.issue(token, signal);
        } catch (err) {
          const disposition = (err as { disposition?: unknown }).disposition === 'fatal' ? 'fatal' : 'retry';
          throw new ProviderError(`pool "${this.pool}": no VPN peer for the launch: ${(err as Error).message}`, disposition, undefined, { cause: err });
        }
        let machines: Machine[];
        try {
          machines = await this.launchOnce({ ...req, count: 1, clientToken: token }, signal, peer.userData);
        } catch (err) {
          if (err instanceof ProviderError && err.disposition === 'fatal') await peers.abandon(token);
          throw err;
        }
        for (const m of machines) await peers.bind(token, m.id);
        this.log.info('vpn.peer-launched', { instances: machines.map((m) => m.id), address: peer.address, publicKey: peer.publicKey });
        out.push(...machines);
      } catch (err) {
        if (out.length === 0) throw err;
        this.log.error('ec2.launch-partial', { launched: out.map((m) => m.id), wanted: req.count, error: (err as Error).message });
        break;
      }
    }
    return out;
  }

  private async launchOnce(req: LaunchRequest, signal: AbortSignal, userData?: string): Promise<Machine[]> {
    const out = await launchMachines(
      this.client,
      {
        pool: this.pool,
        config: this.config,
        count: req.count,
        clientToken: req.clientToken,
        onDemand: req.onDemand === true,
        ...(userData !== undefined && { userData }),
      },
      signal,
      this.opts,
    );
    this.log.info('ec2.launched', {
      instances: out.machines.map((m) => m.id),
      wanted: req.count,
      ...(req.onDemand && { why: 'on-demand fallback after repeated spot preemption' }),
      placements: out.placements.map((p) => `${p.got}/${p.asked} ${p.candidate.market} ${p.candidate.instanceType ?? 'template type'} in ${p.candidate.subnetId}`),
      refusals: out.refusals.map((r) => `${r.code ?? 'error'}: ${r.candidate.market} ${r.candidate.instanceType ?? 'template type'} in ${r.candidate.subnetId}`),
    });
    return out.machines;
  }

  async terminate(ids: readonly string[], signal: AbortSignal): Promise<void> {
    await this.released(await terminateMachines(this.client, ids, signal, this.opts));
  }

  /** Terminated instances' peers go back (VPN pools); the outcomes pass through. */
  private async released(outcomes: SuspendOutcome[]): Promise<SuspendOutcome[]> {
    const gone = outcomes.filter((o) => o.did === 'terminated').map((o) => o.id);
    if (this.peers && gone.length > 0) await this.peers.release(gone);
    return outcomes;
  }

  /** Nothing to let go: the client is shared by the region's pools and owned by whoever made it. */
  async close(): Promise<void> {}
}
