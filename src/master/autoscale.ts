import type { Redis } from 'ioredis';
import { noticeQueues, type Config } from '../config';
import type { Clock, Logger } from '../lib';
import { QueueMonitor } from '../queue-monitor';
import {
  createEc2Client,
  createSqsClient,
  Ec2Provider,
  InstanceStore,
  LocalProvider,
  poolJobTypes,
  Provisioner,
  RuleBook,
  SpotNoticeConsumer,
  type CreateSqsClientOptions,
  type InstanceRecord,
  type InstanceState,
  type Provider,
  type SqsClient,
} from '../provisioner';
import type { AgentRegistry } from './agent-registry';
import type { Dispatcher } from './dispatcher';
import { RegistryFleet } from './fleet';

export interface AutoscaleDeps {
  config: Config;
  redis: Redis;
  registry: AgentRegistry;
  dispatcher: Dispatcher;
  agentUrl: string;
  /** How to run `spillway` for local pools' agents. */
  agentCommand: readonly string[] | undefined;
  clock: Clock;
  log: Logger;
  /** Told of every instance change this master makes (metrics, live page). */
  onInstanceChange?: (pool: string, record: InstanceRecord, previous: InstanceState | undefined) => void;
  /** Makes the SQS client for a notice queue's region. @defaultValue createSqsClient */
  sqsClient?: (o: CreateSqsClientOptions) => SqsClient;
}

/** The overflow machinery of a master with pools: queue monitor, rules, providers, provisioner. */
export class Autoscale {
  readonly rules: RuleBook;
  readonly provisioner: Provisioner;
  private readonly monitor: QueueMonitor;
  private readonly store: InstanceStore;
  private readonly providers = new Map<string, Provider>();
  private readonly notices: SpotNoticeConsumer[] = [];

  constructor(d: AutoscaleDeps) {
    const { config, clock } = d;
    const log = d.log.child({ component: 'autoscale' });
    this.store = new InstanceStore({ redis: d.redis, keyPrefix: config.redis.keyPrefix, clock, log, ...(d.onInstanceChange && { onChange: d.onInstanceChange }) });
    this.monitor = new QueueMonitor({ connection: d.redis, prefix: config.redis.queuePrefix, types: Object.keys(config.jobTypes), clock, log });
    this.rules = new RuleBook(d.redis, config.redis.keyPrefix, config);
    // One EC2 client per region (and endpoint), shared by the pools there.
    const clients = new Map<string, ReturnType<typeof createEc2Client>>();
    for (const [name, pool] of Object.entries(config.pools)) {
      if (pool.provider === 'local') {
        this.providers.set(
          name,
          new LocalProvider({
            pool: name,
            config: pool,
            jobTypes: poolJobTypes(config, name),
            agentCommand: d.agentCommand ?? [],
            masterUrl: () => d.agentUrl,
            // The pool's own (newest) token when it has one: its agents then get only the pool's rights.
            token: pool.agentTokens[0] ?? config.agents.token,
            clock,
            log,
          }),
        );
      } else if (pool.ec2) {
        const key = `${pool.ec2.region} ${pool.ec2.endpoint ?? ''}`;
        const client = clients.get(key) ?? createEc2Client({ region: pool.ec2.region, endpoint: pool.ec2.endpoint });
        clients.set(key, client);
        this.providers.set(name, new Ec2Provider({ pool: name, config: pool.ec2, client, clock, log }));
      }
    }
    const report = (p: Promise<void>) => p.catch((err: unknown) => log.error('pool.error', { error: (err as Error).message }));
    const fleet = new RegistryFleet(d.registry, d.dispatcher, (err) => log.error('pool.error', { error: (err as Error).message }));
    this.provisioner = new Provisioner({
      config,
      redis: d.redis,
      instances: this.store,
      providers: this.providers,
      fleet,
      backlog: this.monitor,
      rules: this.rules,
      clock,
      log,
    });
    // Only a changed backlog is news: the scaler's own refreshes would otherwise keep it busy.
    const seen = new Map<string, number>();
    this.monitor.on('snapshot', (b) => {
      const n = b.waiting + b.prioritized;
      if (seen.get(b.type) === n) return;
      seen.set(b.type, n);
      this.provisioner.kick();
    });
    d.registry.on('added', (a) => {
      if (a.instanceId) void report(this.provisioner.onRegistered(a.instanceId, a.name));
      this.provisioner.kick();
    });
    d.dispatcher.on('agent-busy', (a) => a.instanceId && void report(this.provisioner.onBusy(a.instanceId)));
    d.dispatcher.on('agent-idle', (a, at) => {
      if (a.instanceId) void report(this.provisioner.onIdle(a.instanceId, at));
      this.provisioner.kick();
    });
    d.dispatcher.on('agent-notice', (a, notice) => {
      if (a.instanceId) void report(this.provisioner.onNotice(a.instanceId, notice, { source: 'agent', agent: a.name }).then(() => undefined));
    });
    d.dispatcher.on('build-preempted', (rec) => rec.instanceId && void report(this.provisioner.onPreempted(rec.instanceId, rec.type)));

    const sqsClients = new Map<string, SqsClient>();
    for (const q of noticeQueues(config)) {
      const key = `${q.region} ${q.endpoint ?? ''}`;
      const client = sqsClients.get(key) ?? (d.sqsClient ?? createSqsClient)({ region: q.region, endpoint: q.endpoint });
      sqsClients.set(key, client);
      this.notices.push(new SpotNoticeConsumer({ client, queueUrl: q.queueUrl, pools: q.pools, sink: this.provisioner, clock, log }));
    }
  }

  async start(): Promise<void> {
    await this.monitor.start();
    this.provisioner.start();
    for (const n of this.notices) n.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.notices.map((n) => n.stop()));
    await this.provisioner.stop();
    await this.monitor.stop();
    for (const p of this.providers.values()) if (p instanceof LocalProvider) await p.close();
    await this.store.close();
  }
}
