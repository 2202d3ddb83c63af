import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Config } from '../config';
import { systemClock, type Clock, type Logger } from '../lib';
import type { CreateSqsClientOptions, SqsClient } from '../provisioner';
import { AgentRegistry } from './agent-registry';
import { AgentServer } from './agent-server';
import { Autoscale } from './autoscale';
import { openCas, type CasService } from './cas-service';
import { Dashboard } from './dashboard';
import { BuildStore } from './build-store';
import { Dispatcher } from './dispatcher';
import { createHttpApi } from './http-api';
import { JobService } from './job-service';
import { JobTypeQueue } from './job-type-queue';

export interface MasterOptions {
  config: Config;
  log: Logger;
  /** @defaultValue the system clock */
  clock?: Clock;
  /** How to run `spillway` (e.g. [node, cli/main.js]): local pools start their agents with it. */
  agentCommand?: readonly string[];
  /** Makes the SQS clients of spot notice queues. @defaultValue one per region from the standard AWS chain */
  sqsClient?: (o: CreateSqsClientOptions) => SqsClient;
}

export interface MasterAddresses {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080 */
  httpUrl: string;
  /** URL agents connect to, e.g. ws://127.0.0.1:8081 */
  agentUrl: string;
}

/** The daemon: wires Redis, the job type queues, the dispatcher, the agent listener and the HTTP API. */
export class Master {
  readonly id = `master-${randomBytes(4).toString('hex')}`;
  readonly registry = new AgentRegistry();
  private redis: Redis | undefined;
  private recordsRedis: Redis | undefined;
  private queues = new Map<string, JobTypeQueue>();
  private _dispatcher: Dispatcher | undefined;
  private agentServer: AgentServer | undefined;
  private http: FastifyInstance | undefined;
  private autoscale: Autoscale | undefined;
  private cas: CasService | undefined;
  private dashboard: Dashboard | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly opts: MasterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'master' });
  }

  /** Build events (finished builds, logs) for the demo and embedders. */
  get dispatcher(): Dispatcher {
    if (!this._dispatcher) throw new Error('master not started');
    return this._dispatcher;
  }

  async start(): Promise<MasterAddresses> {
    const { config } = this.opts;
    // BullMQ's blocking commands need maxRetriesPerRequest: null; a Redis outage then waits instead of failing jobs.
    const redis = new Redis(config.redis.url, { maxRetriesPerRequest: null, lazyConnect: true });
    this.redis = redis;
    let lastRedisError = '';
    redis.on('error', (err: Error) => {
      if (err.message !== lastRedisError) this.log.error('redis.error', { error: err.message });
      lastRedisError = err.message;
    });
    redis.on('ready', () => (lastRedisError = ''));
    await redis.connect();

    for (const type of Object.keys(config.jobTypes)) {
      this.queues.set(
        type,
        new JobTypeQueue({ type, connection: redis, prefix: config.redis.queuePrefix, lockMs: config.builds.lockMs, masterId: this.id }),
      );
    }
    await Promise.all([...this.queues.values()].map((q) => q.start()));
    for (const q of this.queues.values()) q.worker.on('error', (err) => this.log.error('queue.error', { queue: q.type, error: err.message }));

    // Build records get their own connection with auto-pipelining: their small writes from
    // concurrent builds then share socket writes, which dominated the master's CPU per build.
    const recordsRedis = new Redis(config.redis.url, { maxRetriesPerRequest: null, enableAutoPipelining: true, lazyConnect: true });
    recordsRedis.on('error', () => undefined);
    await recordsRedis.connect();
    this.recordsRedis = recordsRedis;
    const builds = new BuildStore({ redis: recordsRedis, keyPrefix: config.redis.keyPrefix, keep: config.builds.keep, logMaxBytes: config.builds.logMaxBytes });
    const dispatcher = new Dispatcher({ config, queues: this.queues, registry: this.registry, builds, clock: this.clock, log: this.log });
    this._dispatcher = dispatcher;
    const jobs = new JobService({ config, queues: this.queues, builds, dispatcher, clock: this.clock });

    this.agentServer = new AgentServer({ config, registry: this.registry, dispatcher, clock: this.clock, log: this.log.child({ component: 'agent-server' }) });
    const agentAddr = await this.agentServer.listen();

    const agentUrl = `${agentAddr.scheme}://${urlHost(agentAddr.host)}:${agentAddr.port}`;
    if (Object.keys(config.pools).length > 0) {
      this.autoscale = new Autoscale({
        config,
        redis,
        registry: this.registry,
        dispatcher,
        agentUrl,
        agentCommand: this.opts.agentCommand,
        ...(this.opts.sqsClient && { sqsClient: this.opts.sqsClient }),
        clock: this.clock,
        log: this.log,
        onInstanceChange: (pool, record, previous) => this.dashboard?.instanceChanged(pool, record, previous),
      });
    }
    this.cas = await openCas(config, this.clock, this.log);
    this.dashboard = new Dashboard({
      config,
      redis,
      masterId: this.id,
      queues: this.queues,
      registry: this.registry,
      dispatcher,
      builds,
      clock: this.clock,
      log: this.log.child({ component: 'dashboard' }),
      ...(this.autoscale && { autoscale: this.autoscale }),
      ...(this.cas && { cas: { store: this.cas.routes.store, actionCache: this.cas.routes.actionCache } }),
    });
    this.http = createHttpApi({
      config,
      jobs,
      builds,
      registry: this.registry,
      dispatcher,
      queues: this.queues,
      clock: this.clock,
      log: this.log,
      autoscale: this.autoscale,
      cas: this.cas,
      dashboard: this.dashboard,
    });
    await this.http.listen({ host: config.http.host, port: config.http.port });
    const httpAddr = this.http.server.address() as AddressInfo;
    this.log.info('http.listening', { host: httpAddr.address, port: httpAddr.port });
    // The config only allows this on loopback (or with http.openSubmit); say so once anyway.
    const { submit, admin } = config.http.tokens;
    if (submit.length + admin.length === 0) this.log.warn('http.open-submit', { host: httpAddr.address, reason: 'no submit or admin token: anyone who reaches the API may submit builds' });

    dispatcher.start();
    await this.autoscale?.start();
    this.dashboard.start();
    const addresses = { httpUrl: `http://${urlHost(httpAddr.address)}:${httpAddr.port}`, agentUrl };
    this.log.info('master.started', { id: this.id, ...addresses, jobTypes: [...this.queues.keys()] });
    return addresses;
  }

  /**
   * Applies a re-read config (SIGHUP): the job types' overflow rules take effect at the next
   * decision; agents and instances are untouched. Returns the settings that differ but only
   * take effect after a restart.
   */
  reload(next: Config): string[] {
    const current = this.opts.config;
    // First, because it may fail (an unreadable certificate) and then nothing should change.
    this.agentServer?.updateAccess(next);
    this.autoscale?.rules.setBase(next);
    this.autoscale?.provisioner.kick();
    const restartOnly: string[] = [];
    for (const key of Object.keys(next) as Array<keyof Config>) {
      if (key === 'jobTypes') {
        const types = (c: Config) => JSON.stringify(Object.entries(c.jobTypes).map(([t, j]) => [t, { ...j, overflow: undefined }]));
        if (types(current) !== types(next)) restartOnly.push('jobTypes (other than overflow)');
      } else if (key === 'agents' || key === 'pools') {
        if (JSON.stringify(withoutAccess(current)[key]) !== JSON.stringify(withoutAccess(next)[key])) restartOnly.push(`${key} (other than tokens, allow-list, rate limit, certificate files)`);
      } else if (JSON.stringify(current[key]) !== JSON.stringify(next[key])) {
        restartOnly.push(key);
      }
    }
    this.log.info('config.reloaded', { restartOnly });
    return restartOnly;
  }

  /** Graceful stop: no new jobs; agents are told to reconnect; builds keep running for the next master. */
  async stop(): Promise<void> {
    this.log.info('master.stopping', { id: this.id });
    // First: the pages' event streams would otherwise hold the HTTP server open.
    await this.dashboard?.stop();
    await this.http?.close();
    await this.autoscale?.stop();
    await this.agentServer?.close();
    await this._dispatcher?.stop();
    for (const r of [this.recordsRedis, this.redis]) await r?.quit().catch(() => r.disconnect());
    await this.cas?.close();
    this.log.info('master.stopped', { id: this.id });
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

function urlHost(address: string): string {
  if (address === '0.0.0.0' || address === '::') return '127.0.0.1';
  return address.includes(':') ? `[${address}]` : address;
}
