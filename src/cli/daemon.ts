import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis, RedisOptions } from 'ioredis';
import type { Config } from '../config';
import { Dashboard, createHttpApi } from '../http';
import { RedisProbe, systemClock, urlHost, type Clock, type Logger } from '../lib';
import { Master } from '../master';
import type { CreateEc2ClientOptions, CreateSqsClientOptions, Ec2Client, LocalAgentCas, ProviderFactory, SqsClient } from '../provisioner';
import type { HubCommandRunner } from '../vpn';
import type { Autoscale } from './autoscale';
import { RedisConnections } from './redis-connections';
import { openCas, type CasService } from './cas-service';
import type { CreateS3ClientOptions, S3ClientHandle } from '../cas';
import type { ReapiServer } from '../remote-execution';

const QUIT_WITHIN_MS = 1000;
/**
 * How long the parts may take to stop while Redis answers. Past it, as at once when Redis is
 * unreachable at the stop, their connections are dropped: what they wait for (a loop's Redis
 * call, queued until Redis returns) then fails, and they unwind instead of holding the stop.
 */
const PARTS_STOP_WITHIN_MS = 15_000;

export interface DaemonOptions {
  config: Config;
  log: Logger;
  /** @defaultValue the system clock */
  clock?: Clock;
  /** How to run `spillway` (e.g. [node, cli/main.js]): local pools start their agents with it. */
  agentCommand?: readonly string[];
  /** Makes the EC2 client of a region; called once per region and endpoint. @defaultValue createEc2Client (the standard AWS credential chain) */
  ec2Client?: (o: CreateEc2ClientOptions) => Ec2Client;
  /** Makes the SQS client of a notice queue's region; called once per region and endpoint. @defaultValue createSqsClient */
  sqsClient?: (o: CreateSqsClientOptions) => SqsClient;
  /** Makes the client of the cache's S3 tier (`cas.s3`). @defaultValue createS3Client (the standard AWS credential chain) */
  s3Client?: (o: CreateS3ClientOptions) => S3ClientHandle;
  /** The provider kinds pools may name. @defaultValue PROVIDERS (`local`, `ec2`) */
  providers?: Readonly<Record<string, ProviderFactory>>;
  /** Runs VPN pools' hub commands (`pools.<name>.vpn.hubAddPeer` / `hubRemovePeer`). @defaultValue execFile, no shell */
  runHubCommand?: HubCommandRunner;
}

export interface DaemonAddresses {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080 */
  httpUrl: string;
  /** URL agents connect to, e.g. ws://127.0.0.1:8081 */
  agentUrl: string;
  /** The REAPI listener for Bazel (`--remote_cache=`), e.g. grpc://127.0.0.1:8980; absent without a CAS. */
  grpcUrl?: string;
}

/**
 * The composition root of `spillway master`: builds the Redis connections, one AWS client per
 * region, the providers, the CAS, the master, the overflow machinery and the HTTP layer, and
 * hands each its dependencies. Nothing below it makes a connection or a client of its own.
 */
export class Daemon {
  private redis: Redis | undefined;
  private recordsRedis: Redis | undefined;
  private apiRedis: Redis | undefined;
  private subscriber: Redis | undefined;
  private cas: CasService | undefined;
  private _master: Master | undefined;
  private autoscale: Autoscale | undefined;
  private dashboard: Dashboard | undefined;
  private http: FastifyInstance | undefined;
  private grpc: ReapiServer | undefined;
  private _addresses: DaemonAddresses | undefined;
  private localAgentCas: LocalAgentCas | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly opts: DaemonOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'master' });
  }

  get master(): Master {
    if (!this._master) throw new Error('daemon not started');
    return this._master;
  }

  get addresses(): DaemonAddresses {
    if (!this._addresses) throw new Error('daemon not started');
    return this._addresses;
  }

  /** The HTTP server's fastify instance (its routes, e.g. `printRoutes()`), once started. */
  get httpServer(): FastifyInstance {
    if (!this.http) throw new Error('daemon not started');
    return this.http;
  }

  async start(): Promise<DaemonAddresses> {
    const { config } = this.opts;
    const { clock, log } = this;
    const redis = new RedisConnections({ redis: config.redis, log, clock, repeatWindowMs: config.log.repeatWindowSec * 1000 });
    // BullMQ's blocking commands need maxRetriesPerRequest: null; a Redis outage then waits instead of failing jobs.
    const open = (name: string, options: RedisOptions) => redis.open(name, `${config.redis.keyPrefix}:master-${name}`, options);
    // Auto-pipelining: the takes, completions and lock renewals of one tick (many, with many
    // agents) go out in one socket write instead of one write each.
    this.redis = await open('queues', { maxRetriesPerRequest: null, enableAutoPipelining: true });
    // Build records get their own connection with auto-pipelining: their small writes from
    // concurrent builds then share socket writes, which dominated the master's CPU per build.
    this.recordsRedis = await open('records', { maxRetriesPerRequest: null, enableAutoPipelining: true });
    // The API's: no offline queue and a command timeout, so a call fails fast while Redis is
    // down or hung and the API can answer 503 (BullMQ's Queue allows this; only its Worker's
    // blocking connection must wait). A submission is then never queued in the client to run
    // minutes after its caller was told it failed.
    const bound = config.http.redisTimeoutMs;
    this.apiRedis = await open('api', { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: bound, connectTimeout: bound });
    // Cancels made through any master's API reach the master holding the job through it.
    this.subscriber = await open('cancels', { maxRetriesPerRequest: null });
    await redis.checkFailoverTime(config.builds.lockMs);
    const redisProbe = new RedisProbe({ redis: this.apiRedis, clock, timeoutMs: Math.min(1000, bound) });
    this.cas = await openCas(config, clock, log, this.opts.s3Client);

    const master = new Master({
      config,
      redis: this.redis,
      recordsRedis: this.recordsRedis,
      apiRedis: this.apiRedis,
      subscriber: this.subscriber,
      clock,
      log: this.opts.log,
    });
    this._master = master;
    const agentUrl = await master.listen();

    if (Object.keys(config.pools).length > 0) {
      // Loaded only for a farm with pools: the provisioner brings the AWS SDK, ~70 MB resident
      // (see "Memory" in the README), which a master without pools never needs.
      const { createEc2Client, createProviders, createSqsClient, Ec2RequestBucket, PROVIDERS } = await import('../provisioner/index.js');
      const { Autoscale } = await import('./autoscale.js');
      const { vpnPeerIssuers } = await import('./vpn-peers.js');
      const providerLog = log.child({ component: 'autoscale' });
      const providers = createProviders(
        config,
        {
          clock,
          log: providerLog,
          agentCommand: this.opts.agentCommand ?? [],
          masterUrl: () => agentUrl,
          cas: () => this.localAgentCas,
          peers: vpnPeerIssuers({ config, redis: this.redis, clock, log: providerLog, ...(this.opts.runHubCommand && { run: this.opts.runHubCommand }) }),
          onAwsError: (e) => this.dashboard?.metrics.awsError(e),
          onAwsRetry: (e) => this.dashboard?.metrics.awsRetry(e),
          // maxAttempts 1: spillway's Ec2Retrier is the one retry policy (logged and counted).
          ec2Client: perRegion((region, endpoint) => (this.opts.ec2Client ?? createEc2Client)({ region, endpoint, maxAttempts: 1 })),
          // One bucket per region whatever the endpoint: EC2 throttles per account and region.
          ec2Bucket: ((bucketOf) => (region: string) => bucketOf(region, undefined))(perRegion(() => new Ec2RequestBucket(config.ec2RequestRate, clock))),
        },
        this.opts.providers ?? PROVIDERS,
      );
      this.autoscale = new Autoscale({
        config,
        redis: this.redis,
        master,
        fleet: master.fleet,
        providers,
        sqsClient: perRegion((region, endpoint) => (this.opts.sqsClient ?? createSqsClient)({ region, endpoint })),
        clock,
        log,
        onInstanceChange: (pool, record, previous) => this.dashboard?.instanceChanged(pool, record, previous),
        onAwsError: (e) => this.dashboard?.metrics.awsError(e),
      });
    }
    const autoscale = this.autoscale;
    const cas = this.cas;
    this.dashboard = new Dashboard({
      config,
      redis: this.redis,
      master,
      clock,
      log: log.child({ component: 'dashboard' }),
      ...(autoscale && { autoscale }),
      ...(cas && { cas: { store: cas.disk, actionCache: cas.routes.actionCache, ...(cas.memory && { memory: cas.memory }), ...(cas.s3 && { s3: cas.s3 }) } }),
    });
    this.http = createHttpApi({
      config,
      jobs: master.jobs,
      control: master.control,
      builds: master.history,
      redisProbe,
      master,
      clock,
      log,
      autoscale,
      cas,
      dashboard: this.dashboard,
    });
    // The raw hit path first: the router hands it the connections it keeps in the master.
    cas?.rawHits?.install(this.http.server);
    cas?.router?.install(this.http.server);
    await this.http.listen({ host: config.http.host, port: config.http.port });
    const httpAddr = this.http.server.address() as AddressInfo;
    log.info('http.listening', { host: httpAddr.address, port: httpAddr.port });
    await cas?.startWorkers({ host: reachableHost(httpAddr.address), port: httpAddr.port });
    // Local pools' agents run on this host: they use this cache as remote and cached actions need.
    const casWriter = config.cas.tokens[0];
    if (cas && (casWriter !== undefined || config.cas.anonymous === 'read-write')) {
      this.localAgentCas = { url: `http://${urlHost(reachableHost(httpAddr.address))}:${httpAddr.port}${config.cas.prefix ?? ''}`, ...(casWriter !== undefined && { token: casWriter }) };
    }
    // The config only allows this on loopback (or with http.openSubmit); say so once anyway.
    const { submit, admin } = config.http.tokens;
    if (submit.length + admin.length === 0) log.warn('http.open-submit', { host: httpAddr.address, reason: 'no submit or admin token: anyone who reaches the API may submit builds' });

    // gRPC (grpc-js, proto-loader, the REAPI protos: ~15 MB resident) only when it serves.
    if (cas && config.grpc.enabled) {
      const { openGrpc, wireCompleteResults } = await import('./grpc-service.js');
      const { CallAuth, CompleteResults, executionService, OperationStore } = await import('../remote-execution/index.js');
      const re = config.remoteExecution;
      const completeResults = new CompleteResults({ clock });
      wireCompleteResults(cas, completeResults);
      // Execution only where remote actions have a job type to become; Capabilities then says exec_enabled.
      const execution =
        re.defaultJobType !== undefined || Object.keys(re.instances).length > 0
          ? [
              executionService({
                config,
                master,
                store: cas.routes.store,
                actionCache: cas.routes.actionCache,
                completeResults,
                operations: new OperationStore({ redis: this.apiRedis, keyPrefix: config.redis.keyPrefix, ttlSec: re.operationTtlSec }),
                auth: new CallAuth(cas.routes.auth),
                clock,
                log: log.child({ component: 'execution' }),
              }),
            ]
          : [];
      this.grpc = await openGrpc(config, cas, clock, log, completeResults, execution);
    }
    const grpcUrl = this.grpc && `${config.grpc.tls ? 'grpcs' : 'grpc'}://${urlHost(config.grpc.host)}:${this.grpc.boundPort}`;

    master.start();
    await autoscale?.start();
    this.dashboard.start();
    this._addresses = { httpUrl: `http://${urlHost(httpAddr.address)}:${httpAddr.port}`, agentUrl, ...(grpcUrl && { grpcUrl }) };
    log.info('master.started', { id: master.id, ...this._addresses, jobTypes: master.jobTypes });
    return this._addresses;
  }

  /**
   * Applies a re-read config (SIGHUP): the agent listener's access rules at once, the job
   * types' overflow rules at the next decision; agents and instances are untouched. Returns
   * the settings that differ but only take effect after a restart.
   */
  reload(next: Config): string[] {
    const restartOnly = this.master.reload(next);
    this.autoscale?.rules.setBase(next);
    this.autoscale?.provisioner.kick();
    this.log.info('config.reloaded', { restartOnly });
    return restartOnly;
  }

  /**
   * QUIT waits behind the commands queued for a Redis that is down (an API call abandoned at
   * its deadline leaves some), so during an outage it would never return: it gets a moment.
   */
  private async close(r: Redis): Promise<void> {
    const ac = new AbortController();
    await Promise.race([r.quit(), this.clock.sleep(QUIT_WITHIN_MS, ac.signal)]).catch(() => undefined);
    ac.abort();
    r.disconnect();
  }

  /** Whether `p` settled within `ms`. */
  private async within(p: Promise<unknown>, ms: number): Promise<boolean> {
    const ac = new AbortController();
    const settled = await Promise.race([p.then(() => true), this.clock.sleep(ms, ac.signal).then(() => false, () => true)]);
    ac.abort();
    return settled;
  }

  /** Graceful stop: no new jobs; agents are told to reconnect; builds keep running for the next master. */
  async stop(): Promise<void> {
    const id = this._master?.id;
    this.log.info('master.stopping', { id });
    // First: the pages' event streams would otherwise hold the HTTP server open.
    await this.dashboard?.stop();
    await this.http?.close();
    await this.grpc?.stop();
    const connections = [this.apiRedis, this.recordsRedis, this.redis, this.subscriber].filter((r): r is Redis => r !== undefined);
    let dropped = false;
    const drop = (reason: string) => {
      // Nothing is lost by not waiting: jobs not handed back stay active in BullMQ until their
      // locks expire and any master takes them again; running builds reattach to the next one.
      // ioredis does not reject what is queued while it reconnects (redis/ioredis#2169), so a
      // part waiting on such a call would wait for ever: it is left behind, not awaited.
      this.log.warn('master.stop-forced', { id, reason, action: 'dropping the Redis connections' });
      for (const r of connections) r.disconnect();
      dropped = true;
    };
    if (connections.some((r) => r.status !== 'ready')) drop('Redis unreachable');
    const parts: Array<[string, (() => Promise<void>) | undefined]> = [
      ['autoscale', this.autoscale && (() => this.autoscale!.stop())],
      ['master', this._master && (() => this._master!.stop())],
    ];
    for (const [part, stop] of parts) {
      if (!stop) continue;
      const stopped = stop().catch((err: unknown) => this.log.warn('master.stop-failed', { id, part, error: err }));
      if (await this.within(stopped, dropped ? QUIT_WITHIN_MS : PARTS_STOP_WITHIN_MS)) continue;
      if (!dropped) drop(`${part} not stopped within ${PARTS_STOP_WITHIN_MS} ms`);
      await this.within(stopped, QUIT_WITHIN_MS);
    }
    for (const r of connections) await this.close(r);
    await this.cas?.close();
    this.log.info('master.stopped', { id });
  }
}

/** Starts a daemon; one that fails to start is stopped again, so it holds no port or connection. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const daemon = new Daemon(opts);
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => undefined);
    throw err;
  }
  return daemon;
}

/** One client per region and endpoint, shared by everything there. */
function perRegion<C>(make: (region: string, endpoint: string | undefined) => C): (region: string, endpoint: string | undefined) => C {
  const made = new Map<string, C>();
  return (region, endpoint) => {
    const key = `${region} ${endpoint ?? ''}`;
    let c = made.get(key);
    if (!c) made.set(key, (c = make(region, endpoint)));
    return c;
  };
}

/** An address this machine can connect to for a listener bound to `address` (the wildcards are not). */
function reachableHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '::1';
  return address;
}
