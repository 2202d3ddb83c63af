import type { OverflowRule } from '../config';
import { STARTING_STATES, type InstanceRecord } from './instance';

/** One job type's pressure on its overflow pool, as the queue monitor and the agents show it. */
export interface TypeDemand {
  type: string;
  rule: OverflowRule;
  /** Jobs not yet taken (waiting + prioritized). */
  waiting: number;
  oldestWaitMs: number | null;
  /** Free executors of connected on-prem agents that serve this type. */
  idleOnpremExecutors: number;
  /**
   * Executors of the pool's instances already running this type's builds: they count against
   * the type's cap (`overflow.maxInstances`); 0 may be given for a type without one.
   */
  cloudBusy: number;
}

export interface PoolView {
  name: string;
  maxInstances: number;
  executorsPerInstance: number;
  instances: readonly InstanceRecord[];
  /** Free executors of the pool's connected cloud agents (idle or partly busy instances). */
  idleCloudExecutors: number;
}

export interface TypeShare {
  type: string;
  /** Executors this type still needs beyond what on-prem and the pool already offer. */
  backlog: number;
  overThreshold: boolean;
  reason: string;
}

/** What the pool should do now; `reason` is one line for logs and the dashboard. */
export interface CapacityDecision {
  pool: string;
  /** Draining instances to keep instead (they are up: the cheapest capacity). */
  undrain: number;
  /** Suspended instances to wake. */
  wake: number;
  /** New instances to launch (only below the pool's cap). */
  launch: number;
  types: TypeShare[];
  reason: string;
}

/**
 * Desired extra capacity for one pool: the backlog of its overflowing job types that idle
 * on-prem executors do not absorb, minus executors already idle in the pool or on their way
 * (launching, waking and booting instances count: counting them twice is the classic
 * over-provisioning bug), in whole instances, within the type and pool caps, higher priority
 * types first. Draining instances are taken back before suspended ones are woken, and
 * suspended ones woken before new ones are launched. Scale-down is not decided here: the
 * quiet period does that, which is the hysteresis that keeps the pool from flapping.
 */
export function decideCapacity(pool: PoolView, demands: readonly TypeDemand[]): CapacityDecision {
  const epi = pool.executorsPerInstance;
  const count = (pred: (r: InstanceRecord) => boolean) => pool.instances.filter(pred).length;
  const starting = count((r) => STARTING_STATES.has(r.state));
  const draining = count((r) => r.state === 'draining');
  const suspended = count((r) => r.state === 'suspended');
  const existing = count((r) => r.state !== 'terminated');
  let spare = starting * epi + pool.idleCloudExecutors;

  const types: TypeShare[] = [];
  let wantedExecutors = 0;
  const ordered = [...demands].filter((d) => d.rule.pool === pool.name).sort((a, b) => b.rule.priority - a.rule.priority || a.type.localeCompare(b.type));
  for (const d of ordered) {
    const beyondOnprem = Math.max(0, d.waiting - d.idleOnpremExecutors);
    const share = (overThreshold: boolean, reason: string, backlog = 0) => types.push({ type: d.type, backlog, overThreshold, reason });
    if (!d.rule.enabled) {
      share(false, 'overflow disabled');
      continue;
    }
    if (beyondOnprem < d.rule.minBacklog) {
      share(false, `backlog ${beyondOnprem} < ${d.rule.minBacklog}`);
      continue;
    }
    const waitedMs = d.oldestWaitMs ?? 0;
    if (waitedMs < d.rule.minOldestWaitSec * 1000) {
      share(false, `oldest wait ${Math.round(waitedMs / 1000)}s < ${d.rule.minOldestWaitSec}s`);
      continue;
    }
    const absorbed = Math.min(spare, beyondOnprem);
    spare -= absorbed;
    // The type's cap bounds what it holds, not only what it asks for at once: without the busy
    // ones, a steady backlog would launch past overflow.maxInstances up to the pool's cap.
    const typeRoom = Math.max(0, (d.rule.maxInstances ?? pool.maxInstances) * epi - d.cloudBusy);
    const backlog = Math.max(0, Math.min(beyondOnprem, typeRoom) - absorbed);
    wantedExecutors += backlog;
    share(true, `backlog ${beyondOnprem} beyond on-prem, ${absorbed} absorbed by the pool, ${backlog} executor(s) wanted`, backlog);
  }

  const wantedInstances = Math.ceil(wantedExecutors / epi);
  const undrain = Math.min(wantedInstances, draining);
  const wake = Math.min(wantedInstances - undrain, suspended);
  const launch = Math.max(0, Math.min(wantedInstances - undrain - wake, pool.maxInstances - existing));
  const short = wantedInstances - undrain - wake - launch;
  const reason =
    wantedInstances === 0
      ? types.some((t) => t.overThreshold)
        ? 'backlog absorbed by capacity present or on its way'
        : 'no job type over its overflow threshold'
      : `${wantedInstances} instance(s) wanted: undrain ${undrain}, wake ${wake}, launch ${launch}` +
        (short > 0 ? `; ${short} over the pool cap of ${pool.maxInstances}` : '');
  return { pool: pool.name, undrain, wake, launch, types, reason };
}
