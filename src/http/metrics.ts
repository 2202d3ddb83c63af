import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ActionCache, DiskStore, MemoryTierStats, S3TierStats } from '../cas';
import type { Config } from '../config';
import type { InstanceRecord, InstanceState, PoolReport } from '../provisioner';
import type { AgentInfo, BuildIdentity, BuildRecord } from '../master';
import type { QueueView } from './views';

/** What a scrape reads; gathered once per scrape however many metrics need it. */
export interface MetricsSources {
  queues(): Promise<QueueView[]>;
  pools(): Promise<PoolReport[]>;
  agents(): readonly AgentInfo[];
  cas?: { store: DiskStore; actionCache: ActionCache; memory?: { stats(): MemoryTierStats }; s3?: { stats(): S3TierStats } };
  /** The clock for ages (instances' time in a state). @defaultValue Date.now */
  now?: () => number;
}

/** Instance changes counted as events: the state entered names the event. */
const EVENT_OF: Partial<Record<InstanceState, string>> = {
  waking: 'wake',
  launching: 'launch',
  suspended: 'suspend',
  terminated: 'terminate',
  failed: 'failure',
};

interface Snapshot {
  queues: QueueView[];
  pools: PoolReport[];
}

/**
 * The master's Prometheus metrics (`GET /metrics`), all named `spillway_*`, in a registry of
 * their own so embedding spillway never collides with a host's default registry. Counters
 * count what this master did; gauges are read from the shared state at scrape time.
 */
export class MasterMetrics {
  readonly registry = new Registry();
  private readonly dispatchLatency: Histogram<'type' | 'location'>;
  private readonly builds: Counter<'type' | 'location' | 'result'>;
  private readonly instanceEvents: Counter<'pool' | 'event'>;
  private readonly framesRefused: Counter<'frame' | 'reason'>;
  private readonly buildDuration: Histogram<'type' | 'location'>;
  private readonly awsErrors: Counter<'service' | 'action' | 'code' | 'disposition'>;
  private readonly awsRetries: Counter<'service' | 'action' | 'code'>;
  private readonly instanceHours: Counter<'pool' | 'market'>;
  private readonly instanceCost: Counter<'pool' | 'market'>;
  private readonly agentsLost: Counter<'location'>;
  private pending: Promise<Snapshot> | undefined;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'spillway_' });
    this.dispatchLatency = new Histogram({
      name: 'spillway_dispatch_latency_seconds',
      help: 'Time from a job being queued to its build being handed to an agent.',
      labelNames: ['type', 'location'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    });
    this.builds = new Counter({
      name: 'spillway_builds_total',
      help: 'Builds finished by this master, by job type, location (onprem|cloud) and result.',
      labelNames: ['type', 'location', 'result'],
      registers,
    });
    this.instanceEvents = new Counter({
      name: 'spillway_instance_events_total',
      help: 'Instance changes made by this master: wake, launch, suspend, terminate, failure.',
      labelNames: ['pool', 'event'],
      registers,
    });
    this.framesRefused = new Counter({
      name: 'spillway_frames_refused_total',
      help: 'Frames about a job refused because their agent does not hold it (not-holder, wrong-token, wrong-state, not-held).',
      labelNames: ['frame', 'reason'],
      registers,
    });

    this.buildDuration = new Histogram({
      name: 'spillway_build_duration_seconds',
      help: 'Run time of builds finished by this master (started to finished), by job type and location.',
      labelNames: ['type', 'location'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
      registers,
    });
    this.awsErrors = new Counter({
      name: 'spillway_aws_api_errors_total',
      help: 'Failed EC2/SQS requests (every try), by service, action, AWS error code and what spillway made of it (retry|fatal).',
      labelNames: ['service', 'action', 'code', 'disposition'],
      registers,
    });
    this.awsRetries = new Counter({
      name: 'spillway_aws_api_retries_total',
      help: "Retries spillway made of EC2 requests (the SDK's own retries are off), by service, action and the AWS error code retried.",
      labelNames: ['service', 'action', 'code'],
      registers,
    });
    this.instanceHours = new Counter({
      name: 'spillway_instance_hours_total',
      help: 'Cloud instance-hours billed (running or on the way up or down), by pool and market (spot|ondemand); each hour is counted by exactly one master.',
      labelNames: ['pool', 'market'],
      registers,
    });
    this.instanceCost = new Counter({
      name: 'spillway_instance_cost_total',
      help: "What those instance-hours cost at the pool's configured price (dashboard.currency), by pool and market; pools without a price are absent.",
      labelNames: ['pool', 'market'],
      registers,
    });
    this.agentsLost = new Counter({
      name: 'spillway_agents_lost_total',
      help: 'Agents this master dropped after they went silent past agents.lostAfterSec, by location.',
      labelNames: ['location'],
      registers,
    });
    this.agentsLost.inc({ location: 'onprem' }, 0);
    this.agentsLost.inc({ location: 'cloud' }, 0);
    new Gauge({
      name: 'spillway_agents_connected',
      help: 'Agents connected to this master, by location (onprem|cloud).',
      labelNames: ['location'],
      registers,
      collect() {
        this.reset();
        this.set({ location: 'onprem' }, 0);
        this.set({ location: 'cloud' }, 0);
        for (const a of sources.agents()) this.inc({ location: a.location });
      },
    });

    const snapshot = () => this.snapshot();
    new Gauge({
      name: 'spillway_queue_waiting',
      help: 'Jobs waiting per job type (waiting + prioritized).',
      labelNames: ['type'],
      registers,
      async collect() {
        for (const q of (await snapshot()).queues) this.set({ type: q.type }, q.waiting + q.prioritized);
      },
    });
    new Gauge({
      name: 'spillway_queue_oldest_wait_seconds',
      help: 'Age of the oldest waiting job per job type; 0 when none waits.',
      labelNames: ['type'],
      registers,
      async collect() {
        for (const q of (await snapshot()).queues) this.set({ type: q.type }, (q.oldestWaitMs ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'spillway_builds_running',
      help: 'Builds running on this master\'s agents per job type and location.',
      labelNames: ['type', 'location'],
      registers,
      async collect() {
        for (const q of (await snapshot()).queues) {
          this.set({ type: q.type, location: 'onprem' }, q.runningOnprem);
          this.set({ type: q.type, location: 'cloud' }, q.runningCloud);
        }
      },
    });
    new Gauge({
      name: 'spillway_instances',
      help: 'Cloud instances per pool and state.',
      labelNames: ['pool', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const p of (await snapshot()).pools) {
          for (const i of p.instances) this.inc({ pool: p.name, state: i.state });
        }
      },
    });
    new Gauge({
      name: 'spillway_instances_oldest_seconds',
      help: 'How long the pool\'s longest-standing instance in each state has been in it (e.g. booting for 600 s).',
      labelNames: ['pool', 'state'],
      registers,
      async collect() {
        this.reset();
        const now = (sources.now ?? Date.now)();
        for (const p of (await snapshot()).pools) {
          const oldest = new Map<string, number>();
          for (const i of p.instances) oldest.set(i.state, Math.min(oldest.get(i.state) ?? Infinity, i.since));
          for (const [state, since] of oldest) this.set({ pool: p.name, state }, Math.max(0, now - since) / 1000);
        }
      },
    });
    new Gauge({
      name: 'spillway_overflow_over_threshold',
      help: "1 while a job type's backlog is over its overflow rule's threshold (its pool's latest decision), else 0.",
      labelNames: ['pool', 'type'],
      registers,
      async collect() {
        this.reset();
        for (const p of (await snapshot()).pools) for (const t of p.decision?.types ?? []) this.set({ pool: p.name, type: t.type }, t.overThreshold ? 1 : 0);
      },
    });
    new Gauge({
      name: 'spillway_pool_launch_failing',
      help: "1 while the pool's latest launch failed (its launchError in /api/pools: EC2 refused, the VPN address plan is exhausted...), else 0.",
      labelNames: ['pool'],
      registers,
      async collect() {
        this.reset();
        for (const p of (await snapshot()).pools) this.set({ pool: p.name }, p.launchError ? 1 : 0);
      },
    });
    new Gauge({
      name: 'spillway_executors',
      help: 'Executors of the agents connected to this master, by location and busy/free.',
      labelNames: ['location', 'state'],
      registers,
      collect() {
        this.reset();
        for (const a of sources.agents()) {
          this.inc({ location: a.location, state: 'busy' }, a.running.size);
          this.inc({ location: a.location, state: 'free' }, Math.max(0, a.executors - a.running.size));
        }
      },
    });
    if (sources.cas) this.casMetrics(sources.cas, registers);
    if (sources.cas?.s3) this.s3TierMetrics(sources.cas.s3, sources.cas.memory, registers);
  }

  dispatched(b: BuildIdentity): void {
    this.dispatchLatency.observe({ type: b.type, location: b.location }, Math.max(0, b.dispatchedAt - b.queuedAt) / 1000);
  }

  finished(b: BuildRecord): void {
    this.builds.inc({ type: b.type, location: b.location, result: b.result ?? 'unknown' });
    if (b.durationMs !== null) this.buildDuration.observe({ type: b.type, location: b.location }, Math.max(0, b.durationMs) / 1000);
  }

  agentLost(location: string): void {
    this.agentsLost.inc({ location });
  }

  /** A failed AWS request, as the provisioner sorted it. */
  awsError(e: { service: string; action: string; code: string; disposition: string }): void {
    this.awsErrors.inc({ service: e.service, action: e.action, code: e.code, disposition: e.disposition });
  }

  /** A retry of an AWS request, by the error that caused it. */
  awsRetry(e: { service: string; action: string; code: string }): void {
    this.awsRetries.inc({ service: e.service, action: e.action, code: e.code });
  }

  /**
   * Instance time this master charged in one accrual (usage-ledger fields
   * `pool:<pool>:running:<spot|ondemand>` -> seconds), priced by the pools' `price`.
   */
  instanceTime(charged: ReadonlyMap<string, number>, pools: Config['pools']): void {
    for (const [field, seconds] of charged) {
      const m = /^pool:(.+):running:(spot|ondemand)$/.exec(field);
      if (!m || !(seconds > 0)) continue;
      const [, pool, market] = m as unknown as [string, string, 'spot' | 'ondemand'];
      const hours = seconds / 3600;
      this.instanceHours.inc({ pool, market }, hours);
      const price = pools[pool]?.price;
      if (price) this.instanceCost.inc({ pool, market }, hours * (market === 'spot' ? (price.spotPerHour ?? price.onDemandPerHour) : price.onDemandPerHour));
    }
  }

  frameRefused(frame: string, reason: string): void {
    this.framesRefused.inc({ frame, reason });
  }

  instanceChanged(pool: string, record: InstanceRecord, previous: InstanceState | undefined): void {
    // A record first seen (pre-created or adopted as suspended) is not an event, unless launched.
    if (previous === undefined && record.state !== 'launching') return;
    const event = EVENT_OF[record.state];
    if (event) this.instanceEvents.inc({ pool, event });
  }

  /** The exposition text and its content type. */
  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  private snapshot(): Promise<Snapshot> {
    this.pending ??= Promise.all([this.sources.queues(), this.sources.pools()])
      .then(([queues, pools]) => ({ queues, pools }))
      .finally(() => setImmediate(() => (this.pending = undefined)));
    return this.pending;
  }

  private casMetrics(cas: NonNullable<MetricsSources['cas']>, registers: Registry[]): void {
    const total = (name: string, help: string, read: () => number) => runningTotal(registers, name, help, read);
    total('spillway_cas_hits_total', 'CAS blob reads served.', () => cas.store.stats().hits);
    total('spillway_cas_misses_total', 'CAS blob reads of blobs not present.', () => cas.store.stats().misses);
    total('spillway_cas_bytes_served_total', 'Bytes of CAS blobs served.', () => cas.store.stats().bytesServed);
    total('spillway_cas_bytes_stored_total', 'Bytes of CAS blobs newly stored.', () => cas.store.stats().bytesStored);
    total('spillway_cas_evictions_total', 'CAS blobs evicted to make room.', () => cas.store.stats().evictions);
    total('spillway_cas_corruptions_total', 'CAS blobs found corrupt on disk (removed, never served).', () => cas.store.stats().corruptionsDetected);
    total('spillway_action_cache_hits_total', 'Action results served from the action cache.', () => cas.actionCache.stats().hits);
    total('spillway_action_cache_misses_total', 'Action result lookups that missed (absent or incomplete).', () => cas.actionCache.stats().misses);
    new Gauge({
      name: 'spillway_cas_used_bytes',
      help: 'Bytes the CAS holds.',
      registers,
      collect() {
        this.set(cas.store.stats().usedBytes);
      },
    });
    new Gauge({
      name: 'spillway_cas_max_bytes',
      help: 'The CAS size bound (cas.maxBytes); eviction keeps used bytes under it.',
      registers,
      collect() {
        this.set(cas.store.stats().maxBytes);
      },
    });
  }

  private s3TierMetrics(s3: { stats(): S3TierStats }, memory: { stats(): MemoryTierStats } | undefined, registers: Registry[]): void {
    new Counter({
      name: 'spillway_cas_tier_hits_total',
      help: 'CAS reads served, by the tier that held the blob (memory, disk, s3: filled from the bucket); action-cache entries read back from S3 count as s3.',
      labelNames: ['tier'],
      registers,
      collect() {
        const st = s3.stats();
        this.reset();
        if (memory) this.inc({ tier: 'memory' }, memory.stats().hits);
        this.inc({ tier: 'disk' }, st.localHits);
        this.inc({ tier: 's3' }, st.s3Hits);
      },
    });
    const total = (name: string, help: string, read: (st: S3TierStats) => number) => runningTotal(registers, name, help, () => read(s3.stats()));
    total('spillway_cas_s3_misses_total', 'CAS reads found in neither the local store nor S3.', (st) => st.misses);
    total('spillway_cas_s3_corrupt_objects_total', 'Objects in S3 that failed verification (never served, never stored).', (st) => st.corruptObjects);
    total('spillway_cas_s3_uploads_total', 'Blobs and action-cache entries written through to S3.', (st) => st.uploads.uploaded);
    total('spillway_cas_s3_uploads_dropped_total', 'Writes kept local only because the upload queue was full (cas.s3.maxQueued).', (st) => st.uploads.dropped);
    new Counter({
      name: 'spillway_cas_s3_errors_total',
      help: 'Failed S3 calls (uploads, reads, heads) by S3 or network error code.',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const [code, n] of Object.entries(s3.stats().errors)) this.inc({ code }, n);
      },
    });
    new Gauge({
      name: 'spillway_cas_s3_upload_queue_depth',
      help: 'Uploads to S3 waiting (journaled on disk).',
      registers,
      collect() {
        this.set(s3.stats().uploads.depth);
      },
    });
    new Gauge({
      name: 'spillway_cas_s3_upload_oldest_age_seconds',
      help: 'Age of the oldest upload waiting: how far the bucket lags behind this master.',
      registers,
      collect() {
        this.set(s3.stats().uploads.oldestAgeMs / 1000);
      },
    });
  }
}

/** A counter over a total the source keeps itself (the stores count as they serve): a scrape reports it as it is. */
function runningTotal(registers: Registry[], name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
