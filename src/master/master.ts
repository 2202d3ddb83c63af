import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Config } from '../config';
import { RepeatLog, urlHost, type Clock, type Logger } from '../lib';
import type { Fleet } from '../provisioner';
import { AgentRegistry } from './agent-registry';
import { AgentServer } from './agent-listener/agent-server';
import { BuildStore } from './build-store';
import { CancelFeed } from './cancel-feed';
import { CancelStore } from './cancel-store';
import { Dispatcher } from './dispatcher';
import { RegistryFleet } from './fleet';
import { placedOf } from './held-jobs/held-job';
import { JobControl } from './job-control';
import { JobService } from './job-service';
import { JobTypeQueue } from './job-type-queue';
import { agentInfo, type AgentInfo, type BuildHistory, type MasterEvents, type MasterView, type QueueCounts } from './master-view';

export interface MasterDeps {
  config: Config;
  /** BullMQ's connection (`maxRetriesPerRequest: null`), connected. */
  redis: Redis;
  /** The build records' connection (auto-pipelined), connected. */
  recordsRedis: Redis;
  /**
   * The API's connection, without an offline queue: submissions and lookups fail at once
   * while Redis is down instead of waiting for it. @defaultValue `redis`
   */
  apiRedis?: Redis;
  /**
   * A connection for subscribing to the farm's cancel announcements, so a job cancelled through
   * another master's API is cancelled here if this master holds it. Without it only cancels
   * through this master's API reach the jobs it holds (a single master needs no more).
   */
  subscriber?: Redis;
  clock: Clock;
  log: Logger;
}

/**
 * The daemon's core: the job type queues, the dispatcher and the agent listener. Its Redis
 * connections are made (and closed) by the composition root; readers get {@link MasterView}.
 */
export class Master extends EventEmitter<MasterEvents> implements MasterView {
  readonly id = `master-${randomBytes(4).toString('hex')}`;
  readonly registry: AgentRegistry;
  /** Build events (finished builds, logs) for the demo and embedders. */
  readonly dispatcher: Dispatcher;
  readonly jobs: JobService;
  /** Cancel and retry. */
  readonly control: JobControl;
  readonly builds: BuildStore;
  /** The build records as the API reads them (on the API's connection). */
  readonly history: BuildHistory;
  /** The provisioner's view of the agents connected here. */
  readonly fleet: Fleet;
  private readonly queues = new Map<string, JobTypeQueue>();
  private readonly agentServer: AgentServer;
  private readonly feed: CancelFeed | undefined;
  private readonly log: Logger;
  private readonly repeats: RepeatLog;

  constructor(private readonly d: MasterDeps) {
    super();
    const { config, clock } = d;
    this.registry = new AgentRegistry(config.agents.placement);
    this.log = d.log.child({ component: 'master' });
    this.repeats = new RepeatLog(this.log, clock, config.log.repeatWindowSec * 1000);
    const api = d.apiRedis ?? d.redis;
    for (const type of Object.keys(config.jobTypes)) {
      this.queues.set(
        type,
        new JobTypeQueue({ type, connection: d.redis, apiConnection: api, prefix: config.redis.queuePrefix, lockMs: config.builds.lockMs, masterId: this.id }),
      );
    }
    const stores = { keyPrefix: config.redis.keyPrefix, keep: config.builds.keep, logMaxBytes: config.builds.logMaxBytes };
    this.builds = new BuildStore({ redis: d.recordsRedis, ...stores });
    const apiBuilds = new BuildStore({ redis: api, ...stores });
    this.history = apiBuilds;
    const cancels = new CancelStore({ redis: d.recordsRedis, keyPrefix: config.redis.keyPrefix });
    const dispatcher = new Dispatcher({ config, queues: this.queues, registry: this.registry, builds: this.builds, cancels, clock, log: this.log });
    this.dispatcher = dispatcher;
    this.jobs = new JobService({ config, queues: this.queues, builds: apiBuilds, redis: api, dispatcher, clock });
    this.control = new JobControl({ config, jobs: this.jobs, builds: apiBuilds, dispatcher, redis: api, clock, log: this.log });
    this.feed =
      d.subscriber &&
      new CancelFeed({
        subscriber: d.subscriber,
        keyPrefix: config.redis.keyPrefix,
        log: this.log,
        onAnnouncement: (a) => void dispatcher.cancel(a.type, a.id, a.request),
        onResubscribed: () => void dispatcher.cancelsMissed().catch((err: unknown) => this.log.error('redis.error', { op: 'cancel.check', error: err })),
      });
    this.agentServer = new AgentServer({ config, registry: this.registry, dispatcher, clock, log: this.log.child({ component: 'agent-server' }) });
    const autoscaleLog = d.log.child({ component: 'autoscale' });
    this.fleet = new RegistryFleet(this.registry, dispatcher, (err) => autoscaleLog.error('pool.error', { error: (err as Error).message }));

    dispatcher.on('build-dispatched', (b) => this.emit('build-dispatched', b));
    dispatcher.on('build-finished', (r) => this.emit('build-finished', r));
    dispatcher.on('job-settled', (q, id) => this.emit('job-settled', q, id));
    dispatcher.on('build-preempted', (r) => this.emit('build-preempted', r));
    dispatcher.on('agent-busy', (a) => this.emit('agent-busy', agentInfo(a)));
    dispatcher.on('agent-idle', (a, at) => this.emit('agent-idle', agentInfo(a), at));
    dispatcher.on('agent-lost', (a) => this.emit('agent-lost', agentInfo(a)));
    dispatcher.on('agent-notice', (a, notice) => this.emit('agent-notice', agentInfo(a), notice));
    dispatcher.on('frame-refused', (a, frame, reason) => this.emit('frame-refused', agentInfo(a), frame, reason));
    this.registry.on('added', (a) => this.emit('agent-added', agentInfo(a)));
    this.registry.on('removed', (a) => this.emit('agent-removed', agentInfo(a)));
  }

  get jobTypes(): string[] {
    return [...this.queues.keys()];
  }

  /** Readies the queues and opens the agent listener; returns the URL agents connect to. */
  async listen(): Promise<string> {
    await Promise.all([...this.queues.values()].map((q) => q.start()));
    // Before any job is taken: an announcement for it must not find this master deaf.
    await this.feed?.start();
    // Every reconnect attempt of every queue's connections repeats the same error.
    for (const q of this.queues.values()) {
      const report = (err: Error) => this.repeats.error('queue.error', `${q.type} ${err.message}`, { queue: q.type, error: err.message });
      q.worker.on('error', report);
      q.queue.on('error', report);
      if (q.apiQueue !== q.queue) q.apiQueue.on('error', report);
    }
    this.d.redis.on('ready', () => this.repeats.flush());
    const addr = await this.agentServer.listen();
    return `${addr.scheme}://${urlHost(addr.host)}:${addr.port}`;
  }

  /** Starts taking jobs for the agents. */
  start(): void {
    this.dispatcher.start();
  }

  async queueCounts(type: string): Promise<QueueCounts> {
    const q = this.queues.get(type);
    if (!q) throw new Error(`no job type ${type}`);
    const c = await q.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
    const [oldestWaiting] = await q.queue.getJobs(['waiting'], 0, 0, true);
    const [oldestPrioritized] = await q.queue.getJobs(['prioritized'], 0, 0, true);
    const stamps = [oldestWaiting?.timestamp, oldestPrioritized?.timestamp].filter((t): t is number => typeof t === 'number');
    return {
      waiting: c.waiting ?? 0,
      prioritized: c.prioritized ?? 0,
      delayed: c.delayed ?? 0,
      active: c.active ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
      oldestQueuedAt: stamps.length ? Math.min(...stamps) : null,
    };
  }

  agentListener(): { ok: boolean; detail: string } {
    return this.agentServer.health();
  }

  agents(): AgentInfo[] {
    return this.registry.list().map(agentInfo);
  }

  agent(id: string): AgentInfo | undefined {
    const a = this.registry.get(id);
    return a && agentInfo(a);
  }

  running(): Array<{ queue: string; agentId: string }> {
    return this.dispatcher.heldJobs().flatMap((h) => {
      const placed = placedOf(h.state);
      return placed ? [{ queue: h.queue, agentId: placed.owner.connId }] : [];
    });
  }

  pendingCount(type: string): number {
    return this.dispatcher.pendingCount(type);
  }

  unrunnableOf(type: string): { count: number; reason: string | null } {
    return this.dispatcher.unrunnableOf(type);
  }

  /**
   * Applies a re-read config (SIGHUP) to the agent listener: tokens, allow-list, rate limit,
   * certificate files. Returns the settings that differ but only take effect after a restart.
   */
  reload(next: Config): string[] {
    const current = this.d.config;
    // First, because it may fail (an unreadable certificate) and then nothing should change.
    this.agentServer.updateAccess(next);
    const restartOnly: string[] = [];
    for (const key of Object.keys(next) as Array<keyof Config>) {
      // The process's heap settings: `spillway master` applies them on SIGHUP itself.
      if (key === 'memory') continue;
      if (key === 'jobTypes') {
        const types = (c: Config) => JSON.stringify(Object.entries(c.jobTypes).map(([t, j]) => [t, { ...j, overflow: undefined }]));
        if (types(current) !== types(next)) restartOnly.push('jobTypes (other than overflow)');
      } else if (key === 'agents' || key === 'pools') {
        if (JSON.stringify(withoutAccess(current)[key]) !== JSON.stringify(withoutAccess(next)[key])) restartOnly.push(`${key} (other than tokens, allow-list, rate limit, certificate files)`);
      } else if (JSON.stringify(current[key]) !== JSON.stringify(next[key])) {
        restartOnly.push(key);
      }
    }
    return restartOnly;
  }

  /** Graceful stop: no new jobs; agents are told to reconnect; builds keep running for the next master. */
  async stop(): Promise<void> {
    await this.agentServer.close();
    await this.dispatcher.stop();
  }
}

/**
 * The agents and pools settings without what `AgentServer.updateAccess` applies live, for
 * comparing configs. Switching TLS on or off, or client certificates, still needs a restart.
 */
function withoutAccess(c: Config): { agents: object; pools: object } {
  const { token: _t, tokens: _ts, allow: _a, registrationRate: _r, tls, ...agents } = c.agents;
  const pools = Object.fromEntries(Object.entries(c.pools).map(([name, { agentTokens: _p, ...pool }]) => [name, pool]));
  return { agents: { ...agents, tls: tls && { requireClientCert: tls.requireClientCert } }, pools };
}
