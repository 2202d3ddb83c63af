import type { Config } from '../config';
import { isSecretKey } from '../lib';
import { decideCapacity, poolJobTypes, type CapacityDecision, type InstanceRecord, type TypeDemand } from '../provisioner';

/** Jobs waiting per job type, and optionally how long the oldest has waited. */
export interface BacklogEntry {
  waiting: number;
  oldestWaitSec: number | null;
}

export type BacklogSpec = ReadonlyMap<string, BacklogEntry>;

/** What `config check` says about one job type, for the backlog it was given. */
export interface TypeOutcome {
  type: string;
  waiting: number;
  /** The pool it overflows into, if it has a rule. */
  pool: string | null;
  overThreshold: boolean;
  reason: string;
}

export interface OverflowReport {
  types: TypeOutcome[];
  pools: CapacityDecision[];
}

const REDACTED = '[redacted]';

/**
 * The effective config with every secret replaced: fields named like a secret (the log rule of
 * src/lib/logger.ts) keep their shape (a list of three tokens shows three `[redacted]`), and a
 * password in the Redis URL is hidden.
 */
export function redactConfig(value: unknown, key = ''): unknown {
  if (isSecretKey(key)) return redactAll(value);
  if (typeof value === 'string') return key === 'url' ? redactUrlPassword(value) : value;
  if (Array.isArray(value)) return value.map((v) => redactConfig(v));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = redactConfig(v, k);
    return out;
  }
  return value;
}

/** Everything below a secret key (`http.tokens.read` as much as `agents.token`) keeps only its shape. */
function redactAll(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactAll);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactAll(v)]));
  return value === undefined || typeof value === 'boolean' ? value : REDACTED;
}

function redactUrlPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, `$1:${REDACTED}@`);
}

/**
 * Parses `--backlog b2g=12,linux64=0` (optionally `b2g=12:300`, the oldest job having waited
 * 300 s). Returns the problems instead when there are any, all of them.
 */
export function parseBacklog(spec: string, jobTypes: readonly string[]): { backlog: BacklogSpec } | { problems: string[] } {
  const backlog = new Map<string, BacklogEntry>();
  const problems: string[] = [];
  for (const part of spec.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^([^=]+)=(\d+)(?::(\d+))?$/.exec(part);
    if (!m) {
      problems.push(`--backlog: "${part}" is not TYPE=COUNT or TYPE=COUNT:OLDEST_WAIT_SEC`);
      continue;
    }
    const [, type, waiting, oldest] = m as unknown as [string, string, string, string | undefined];
    if (!jobTypes.includes(type)) problems.push(`--backlog: unknown job type "${type}" (the config has ${jobTypes.join(', ')})`);
    else if (backlog.has(type)) problems.push(`--backlog: job type "${type}" given twice`);
    else backlog.set(type, { waiting: Number(waiting), oldestWaitSec: oldest === undefined ? null : Number(oldest) });
  }
  return problems.length > 0 ? { problems } : { backlog };
}

/**
 * The overflow decision each pool would take for this backlog, made by the provisioner's own
 * `decideCapacity`, on the assumptions of a first start: no on-prem executor idle, no cloud
 * agent connected, an EC2 pool without instances yet, a local pool with its `preCreated`
 * instances suspended. A job type without a backlog entry has nothing waiting.
 */
export function overflowReport(config: Config, backlog: BacklogSpec): OverflowReport {
  const pools: CapacityDecision[] = [];
  const shares = new Map<string, { pool: string; overThreshold: boolean; reason: string }>();
  for (const [name, pool] of Object.entries(config.pools)) {
    const demands: TypeDemand[] = [];
    for (const [type, t] of Object.entries(config.jobTypes)) {
      if (t.overflow?.pool !== name) continue;
      const b = backlog.get(type);
      demands.push({
        type,
        rule: t.overflow,
        waiting: b?.waiting ?? 0,
        oldestWaitMs: b?.oldestWaitSec === null || b?.oldestWaitSec === undefined ? null : b.oldestWaitSec * 1000,
        idleOnpremExecutors: 0,
        cloudBusy: 0,
      });
    }
    const preCreated = pool.provider === 'local' ? (pool.local?.preCreated ?? pool.maxInstances) : 0;
    const decision = decideCapacity(
      { name, maxInstances: pool.maxInstances, executorsPerInstance: pool.executorsPerInstance, instances: suspendedInstances(name, preCreated), idleCloudExecutors: 0 },
      demands,
    );
    pools.push(decision);
    for (const s of decision.types) shares.set(s.type, { pool: name, overThreshold: s.overThreshold, reason: s.reason });
  }
  const types = Object.keys(config.jobTypes).map((type): TypeOutcome => {
    const waiting = backlog.get(type)?.waiting ?? 0;
    const s = shares.get(type);
    if (s) return { type, waiting, ...s };
    const served = Object.keys(config.pools).filter((p) => poolJobTypes(config, p).includes(type));
    const reason = served.length > 0 ? `no overflow rule: grows no pool (agents of pool ${served.join(', ')} that are up take it too)` : 'no overflow rule: on-prem only';
    return { type, waiting, pool: null, overThreshold: false, reason };
  });
  return { types, pools };
}

function suspendedInstances(pool: string, n: number): InstanceRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${pool}-${i + 1}`,
    pool,
    state: 'suspended' as const,
    since: 0,
    version: 1,
    privateIp: null,
    spot: false,
    hibernated: true,
    agent: null,
    lastJobEndedAt: null,
    reason: null,
  }));
}
