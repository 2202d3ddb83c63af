import type { Redis } from 'ioredis';
import type { Config, OverflowRule } from '../config';
import { runEvery, type Clock, type Logger } from '../lib';
import type { InstanceRecord, InstanceState, PoolReport, Provisioner, RuleBook } from '../provisioner';
import type { BuildRecord, MasterView } from '../master';
import { cacheView, type CacheOverview } from './cache-view';
import { History, waitFigures, type HistorySample } from './history';
import { LiveUpdates } from './live-updates';
import { MasterMetrics, type MetricsSources } from './metrics';
import { UsageLedger, type UsageReport } from './usage-ledger';
import { agentsView, queuesView, type QueueView } from './views';

export interface DashboardDeps {
  config: Config;
  /** A connection without ioredis' keyPrefix. */
  redis: Redis;
  master: MasterView;
  clock: Clock;
  log: Logger;
  autoscale?: { provisioner: Provisioner; rules: RuleBook };
  cas?: NonNullable<MetricsSources['cas']>;
}

/** A queue row of the page: the queue, and its overflow rule as it is in force now. */
export interface QueueOverview extends QueueView {
  overflow: OverflowRule | null;
}

/** What the page shows, pushed whole on every change. */
export interface Overview {
  at: number;
  masterId: string;
  /** Whether rule changes are possible at all (an admin token is configured and pools exist). */
  rulesEditable: boolean;
  pools: PoolReport[];
  queues: QueueOverview[];
  agents: ReturnType<typeof agentsView>;
  builds: BuildRecord[];
  cost: UsageReport;
  /** Time of the newest history sample: the page refetches the charts when it moves. */
  historyAt: number | null;
  /** This master's build cache; null when it serves none (`cas.dir` unset). */
  cache: CacheOverview | null;
}

/** Builds shown on the page and scanned for a sample's wait percentiles. */
const RECENT_BUILDS = 50;
const SCAN_BUILDS = 500;

/**
 * The dashboard's data: the overview pushed to pages, the charts' history, instance-hours and
 * cost, and the Prometheus metrics, fed by the dispatcher's and the instance store's events.
 */
export class Dashboard {
  readonly metrics: MasterMetrics;
  readonly live: LiveUpdates;
  readonly history: History;
  readonly usage: UsageLedger;
  /** How often the charts' history is sampled. */
  readonly sampleMs: number;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly d: DashboardDeps) {
    const sampleMs = d.config.dashboard.sampleSec * 1000;
    this.sampleMs = sampleMs;
    this.metrics = new MasterMetrics({
      queues: () => this.queues(),
      pools: () => this.pools(),
      agents: () => d.master.agents(),
      now: () => d.clock.now(),
      ...(d.cas && { cas: d.cas }),
    });
    this.live = new LiveUpdates({ snapshot: () => this.overview(), clock: d.clock, log: d.log });
    const keep = Math.ceil((d.config.dashboard.historyHours * 3600 * 1000) / sampleMs);
    this.history = new History({ redis: d.redis, keyPrefix: d.config.redis.keyPrefix, clock: d.clock, sampleMs, keep, owner: d.master.id });
    this.usage = new UsageLedger({ redis: d.redis, keyPrefix: d.config.redis.keyPrefix, clock: d.clock, maxGapMs: 3 * sampleMs });

    const changed = () => this.live.changed();
    d.master.on('build-dispatched', (b) => {
      this.metrics.dispatched(b);
      changed();
    });
    d.master.on('build-finished', (r) => {
      this.metrics.finished(r);
      void this.chargeBuild(r);
      changed();
    });
    d.master.on('job-settled', changed);
    d.master.on('frame-refused', (_agent, frame, reason) => this.metrics.frameRefused(frame, reason));
    d.master.on('agent-added', changed);
    d.master.on('agent-removed', changed);
    d.master.on('agent-lost', (a) => this.metrics.agentLost(a.location));
  }

  /** Told of each instance change this master makes (wired to the instance store). */
  instanceChanged(pool: string, record: InstanceRecord, previous: InstanceState | undefined): void {
    this.metrics.instanceChanged(pool, record, previous);
    this.live.changed();
  }

  start(): void {
    const sampleMs = this.d.config.dashboard.sampleSec * 1000;
    this.loop = runEvery('dashboard-sample', sampleMs, async () => void (await this.sample()), {
      clock: this.d.clock,
      signal: this.abort.signal,
      log: this.d.log,
      errorEvent: 'dashboard.sample-failed',
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.live.close();
    await this.loop;
  }

  async overview(): Promise<Overview> {
    const [queues, rules, pools, builds, cost, historyAt] = await Promise.all([
      this.queues(),
      this.d.autoscale?.rules.rules(),
      this.pools(),
      this.d.master.builds.recent(RECENT_BUILDS),
      this.cost(),
      // From Redis, not this master's last sample: another master may be the one taking them.
      this.history.latestAt(),
    ]);
    return {
      at: this.d.clock.now(),
      masterId: this.d.master.id,
      rulesEditable: Boolean(this.d.config.http.tokens.admin.length > 0 && this.d.autoscale),
      pools,
      queues: queues.map((q) => ({ ...q, overflow: rules?.[q.type] ?? null })),
      agents: agentsView(this.d.master),
      builds,
      cost,
      historyAt,
      cache: this.d.cas ? cacheView(this.d.cas) : null,
    };
  }

  cost(): Promise<UsageReport> {
    return this.usage.report(this.d.config);
  }

  /**
   * One interval's sample and usage accrual, by whichever master claims the interval: the
   * figures are farm-wide (queues, instances and build records all live in Redis).
   */
  async sample(): Promise<HistorySample | undefined> {
    if (!(await this.history.claimSlot())) return undefined;
    const now = this.d.clock.now();
    const [queues, pools, builds] = await Promise.all([this.queues(), this.pools(), this.d.master.builds.recent(SCAN_BUILDS)]);
    const instances = pools.flatMap((p) => p.instances);
    await this.usage
      .accrue(instances)
      .then((charged) => this.metrics.instanceTime(charged, this.d.config.pools))
      .catch((err: unknown) => this.d.log.error('dashboard.usage-failed', { error: err }));
    const from = now - this.d.config.dashboard.sampleSec * 1000;
    const started = builds.filter((b) => b.startedAt !== null && b.startedAt > from && b.startedAt <= now && b.waitMs !== null);
    const sample: HistorySample = {
      at: now,
      backlog: Object.fromEntries(queues.map((q) => [q.type, q.waiting + q.prioritized])),
      instances: Object.fromEntries(pools.map((p) => [p.name, countStates(p.instances)])),
      waits: {
        onprem: waitFigures(started.filter((b) => b.location === 'onprem').map((b) => b.waitMs!)),
        cloud: waitFigures(started.filter((b) => b.location === 'cloud').map((b) => b.waitMs!)),
      },
    };
    await this.history.record(sample);
    this.live.changed();
    return sample;
  }

  private queues(): Promise<QueueView[]> {
    return queuesView(this.d.master, this.d.clock.now());
  }

  private async pools(): Promise<PoolReport[]> {
    return this.d.autoscale ? this.d.autoscale.provisioner.report() : [];
  }

  /** A cloud build's executor time, charged to its job type in its instance's pool. */
  private async chargeBuild(r: BuildRecord): Promise<void> {
    if (r.location !== 'cloud' || !r.instanceId || !r.durationMs || !this.d.autoscale) return;
    try {
      const found = await this.d.autoscale.provisioner.find(r.instanceId);
      if (!found) return;
      const executors = this.d.config.pools[found.pool]?.executorsPerInstance ?? 1;
      await this.usage.addBuild(r.type, found.pool, found.record.spot, r.durationMs / 1000, executors);
    } catch (err) {
      this.d.log.error('dashboard.usage-failed', { jobId: r.id, instanceId: r.instanceId, error: err });
    }
  }
}

function countStates(instances: readonly InstanceRecord[]): Partial<Record<InstanceState, number>> {
  const out: Partial<Record<InstanceState, number>> = {};
  for (const i of instances) out[i.state] = (out[i.state] ?? 0) + 1;
  return out;
}
