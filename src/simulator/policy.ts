import { parseDuration } from './duration';

/** A named variant of the farm's config to simulate: the overrides applied to its raw document. */
export interface Policy {
  name: string;
  /** As written, for the report: `quiet=15m,suspend=stop`. */
  spec: string;
  overrides: ReadonlyArray<{ key: string; value: string }>;
}

export type PolicyParse = { ok: true; policy: Policy } | { ok: false; problem: string };

const POOL_KEYS = ['quiet', 'suspend', 'warm', 'max', 'executors', 'launch', 'wake', 'resume'] as const;
const RULE_KEYS = ['minBacklog', 'minOldestWait', 'maxInstances', 'priority', 'enabled', 'pool'] as const;

/** The override keys, for help texts and error messages. */
export const POLICY_KEYS_HELP =
  'quiet=DURATION, suspend=hibernate|stop|terminate, warm=N, max=N, executors=N, launch|wake|resume=DURATION ' +
  '(every pool, or POOL.KEY for one), TYPE.minBacklog=N, TYPE.minOldestWait=DURATION, TYPE.maxInstances=N, ' +
  'TYPE.priority=N, TYPE.enabled=true|false, TYPE.pool=POOL';

/** `NAME=key=value,key=value` (or just `NAME` for the config as it is). */
export function parsePolicy(text: string): PolicyParse {
  const eq = text.indexOf('=');
  const name = (eq < 0 ? text : text.slice(0, eq)).trim();
  const spec = eq < 0 ? '' : text.slice(eq + 1).trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(name)) return { ok: false, problem: `policy "${text}": the name must be letters, digits, "_", "-" or "." (up to 32)` };
  const overrides: Array<{ key: string; value: string }> = [];
  for (const part of spec === '' ? [] : spec.split(',')) {
    const e = part.indexOf('=');
    if (e <= 0 || e === part.length - 1) return { ok: false, problem: `policy ${name}: "${part}" is not KEY=VALUE (keys: ${POLICY_KEYS_HELP})` };
    overrides.push({ key: part.slice(0, e).trim(), value: part.slice(e + 1).trim() });
  }
  return { ok: true, policy: { name, spec, overrides } };
}

type Doc = Record<string, unknown>;
const obj = (parent: Doc, key: string): Doc => {
  const v = parent[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Doc;
  const made: Doc = {};
  parent[key] = made;
  return made;
};

/**
 * Applies a policy's overrides to a copy of the raw config document; the caller validates the
 * result with the config schema like any config. Returns the problems of keys that name no pool
 * or job type, or values of the wrong kind.
 */
export function applyPolicy(raw: Doc, policy: Policy): { doc: Doc; problems: string[] } {
  const doc = structuredClone(raw);
  const problems: string[] = [];
  const pools = obj(doc, 'pools');
  const jobTypes = obj(doc, 'jobTypes');
  const sim = obj(doc, 'simulation');
  for (const { key, value } of policy.overrides) {
    const bad = (why: string) => problems.push(`policy ${policy.name}: ${key}=${value}: ${why}`);
    const dot = key.lastIndexOf('.');
    const scope = dot < 0 ? undefined : key.slice(0, dot);
    const field = dot < 0 ? key : key.slice(dot + 1);
    if ((POOL_KEYS as readonly string[]).includes(field) && (scope === undefined || Object.hasOwn(pools, scope))) {
      const targets = scope === undefined ? Object.keys(pools) : [scope];
      if (targets.length === 0) bad('the config has no pools');
      for (const p of targets) {
        const why = setPoolKey(obj(pools, p), obj(obj(sim, 'pools'), p), field as (typeof POOL_KEYS)[number], value);
        if (why) {
          bad(why);
          break;
        }
      }
      continue;
    }
    if ((RULE_KEYS as readonly string[]).includes(field) && scope !== undefined && Object.hasOwn(jobTypes, scope)) {
      const why = setRuleKey(obj(obj(jobTypes, scope), 'overflow'), field as (typeof RULE_KEYS)[number], value);
      if (why) bad(why);
      continue;
    }
    bad(scope !== undefined && !Object.hasOwn(pools, scope) && !Object.hasOwn(jobTypes, scope) ? `no pool or job type "${scope}"` : `unknown key (keys: ${POLICY_KEYS_HELP})`);
  }
  return { doc, problems };
}

const int = (v: string) => (/^\d+$/.test(v) ? Number(v) : undefined);

function setPoolKey(pool: Doc, sim: Doc, field: (typeof POOL_KEYS)[number], value: string): string | undefined {
  const ms = parseDuration(value);
  switch (field) {
    case 'quiet':
      if (ms === undefined) return 'expected a duration such as 15m or 90s';
      pool.quietPeriodMin = ms / 60_000;
      return undefined;
    case 'suspend':
      if (!['hibernate', 'stop', 'terminate'].includes(value)) return 'expected hibernate, stop or terminate';
      pool.suspend = value;
      return undefined;
    case 'warm':
    case 'max':
    case 'executors': {
      const n = int(value);
      if (n === undefined) return 'expected a whole number';
      pool[field === 'warm' ? 'warmMinimum' : field === 'max' ? 'maxInstances' : 'executorsPerInstance'] = n;
      return undefined;
    }
    case 'launch':
    case 'wake':
    case 'resume':
      if (ms === undefined) return 'expected a duration such as 90s';
      sim[`${field}Sec`] = ms / 1000;
      return undefined;
  }
}

function setRuleKey(rule: Doc, field: (typeof RULE_KEYS)[number], value: string): string | undefined {
  switch (field) {
    case 'minOldestWait': {
      const ms = parseDuration(value);
      if (ms === undefined) return 'expected a duration such as 30s';
      rule.minOldestWaitSec = ms / 1000;
      return undefined;
    }
    case 'enabled':
      if (value !== 'true' && value !== 'false') return 'expected true or false';
      rule.enabled = value === 'true';
      return undefined;
    case 'pool':
      rule.pool = value;
      return undefined;
    case 'priority': {
      if (!/^-?\d+$/.test(value)) return 'expected a whole number';
      rule.priority = Number(value);
      return undefined;
    }
    case 'minBacklog':
    case 'maxInstances': {
      const n = int(value);
      if (n === undefined) return 'expected a whole number';
      rule[field] = n;
      return undefined;
    }
  }
}
