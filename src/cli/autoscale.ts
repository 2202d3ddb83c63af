import type { Redis } from 'ioredis';
import { noticeQueues, type Config } from '../config';
import type { Clock, Logger } from '../lib';
import type { MasterView } from '../master';
import { QueueMonitor } from '../queue-monitor';
import {
  InstanceStore,
  Provisioner,
  RuleBook,
  SpotNoticeConsumer,
  type AwsErrorObserver,
  type Fleet,
  type InstanceRecord,
  type InstanceState,
  type Provider,
  type SqsClient,
} from '../provisioner';

export interface AutoscaleDeps {
  config: Config;
  /** A connection without ioredis' keyPrefix (BullMQ's). */
  redis: Redis;
  /** Agent lifecycle events of the master. */
  master: Pick<MasterView, 'on'>;
  /** The provisioner's hands on the master's agents (drain, notice, preempt). */
  fleet: Fleet;
  /** Every pool's provider, by pool name; closed by {@link Autoscale.stop}. */
  providers: ReadonlyMap<string, Provider>;
  /** The SQS client of a notice queue's region and endpoint. */
  sqsClient(region: string, endpoint: string | undefined): SqsClient;
  clock: Clock;
  log: Logger;
  /** Told of every instance change this master makes (metrics, live page). */
  onInstanceChange?: (pool: string, record: InstanceRecord, previous: InstanceState | undefined) => void;
  /** Told of every failed SQS request (the notice queues). */
  onAwsError?: AwsErrorObserver;
}

/** The overflow machinery of a master with pools: queue monitor, rules, provisioner, spot notice consumers. */
export class Autoscale {
  readonly rules: RuleBook;
  readonly provisioner: Provisioner;
  private readonly monitor: QueueMonitor;
  private readonly store: InstanceStore;
  private readonly notices: SpotNoticeConsumer[] = [];
  private readonly providers: ReadonlyMap<string, Provider>;

  constructor(d: AutoscaleDeps) {
    this.providers = d.providers;
    const { config, clock } = d;
    const log = d.log.child({ component: 'autoscale' });
    this.store = new InstanceStore({ redis: d.redis, keyPrefix: config.redis.keyPrefix, clock, log, ...(d.onInstanceChange && { onChange: d.onInstanceChange }) });
    this.monitor = new QueueMonitor({ connection: d.redis, prefix: config.redis.queuePrefix, types: Object.keys(config.jobTypes), clock, log });
    this.rules = new RuleBook(d.redis, config.redis.keyPrefix, config);
    const report = (p: Promise<void>) => p.catch((err: unknown) => log.error('pool.error', { error: (err as Error).message }));
    this.provisioner = new Provisioner({
      config,
      redis: d.redis,
      instances: this.store,
      providers: d.providers,
      fleet: d.fleet,
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
    d.master.on('agent-added', (a) => {
      if (a.instanceId) void report(this.provisioner.onRegistered(a.instanceId, a.name));
      this.provisioner.kick();
    });
    d.master.on('agent-busy', (a) => a.instanceId && void report(this.provisioner.onBusy(a.instanceId)));
    d.master.on('agent-idle', (a, at) => {
      if (a.instanceId) void report(this.provisioner.onIdle(a.instanceId, at));
      this.provisioner.kick();
    });
    d.master.on('agent-notice', (a, notice) => {
      if (a.instanceId) void report(this.provisioner.onNotice(a.instanceId, notice, { source: 'agent', agent: a.name }).then(() => undefined));
    });
    d.master.on('build-preempted', (rec) => rec.instanceId && void report(this.provisioner.onPreempted(rec.instanceId, rec.type)));

    for (const q of noticeQueues(config)) {
      const client = d.sqsClient(q.region, q.endpoint);
      this.notices.push(new SpotNoticeConsumer({ client, queueUrl: q.queueUrl, pools: q.pools, sink: this.provisioner, clock, log, ...(d.onAwsError && { onAwsError: d.onAwsError }) }));
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
    // After the last step, so nothing starts a machine again; before the store closes, so a
    // local agent's exit still finds it open.
    for (const p of this.providers.values()) await p.close();
    await this.store.close();
  }
}
