import { isIP } from 'node:net';
import type { z } from 'zod';
import { regionOfQueueUrl } from './spot-notices';

type Ctx = Pick<z.core.$RefinementCtx<unknown>, 'addIssue'>;
type Loose = Record<string, unknown>;

/**
 * The checks that relate one section to another. They run even when some section is invalid
 * (so every problem is reported in one pass), which is why they read the value defensively:
 * a section that failed its own schema is still its raw input here, without defaults.
 */
export function crossCheck(value: unknown, ctx: Ctx): void {
  const c = record(value);
  const jobTypes = record(c.jobTypes);
  const pools = record(c.pools);
  const agents = record(c.agents);
  const http = record(c.http);
  for (const [type, t] of Object.entries(jobTypes)) {
    const pool = record(record(t).overflow).pool;
    if (typeof pool === 'string' && !Object.hasOwn(pools, pool)) {
      ctx.addIssue({ code: 'custom', path: ['jobTypes', type, 'overflow', 'pool'], message: `unknown pool "${pool}"` });
    }
  }
  const remote = record(c.remoteExecution);
  const remoteTypes: Array<[Array<string>, unknown]> = [
    [['remoteExecution', 'defaultJobType'], remote.defaultJobType],
    ...Object.entries(record(remote.instances)).map(([name, t]): [string[], unknown] => [['remoteExecution', 'instances', name], t]),
  ];
  for (const [path, t] of remoteTypes) {
    if (typeof t === 'string' && !Object.hasOwn(jobTypes, t)) ctx.addIssue({ code: 'custom', path, message: `unknown job type "${t}"` });
  }
  const spot = record(c.spotNotices);
  if (typeof spot.queueUrl === 'string' && !spot.region && !regionOfQueueUrl(spot.queueUrl)) {
    ctx.addIssue({ code: 'custom', path: ['spotNotices', 'region'], message: 'required: the queue URL names no region' });
  }
  for (const [name, raw] of Object.entries(pools)) {
    const p = record(raw);
    for (const t of strings(p.jobTypes)) {
      if (!Object.hasOwn(jobTypes, t)) ctx.addIssue({ code: 'custom', path: ['pools', name, 'jobTypes'], message: `unknown job type "${t}"` });
    }
    // Its agents are spawned with only a token: they have no CA file to trust the listener with.
    if (p.provider === 'local' && agents.tls) {
      ctx.addIssue({ code: 'custom', path: ['pools', name, 'provider'], message: 'a local pool cannot be used with agents.tls (its agents get no certificates)' });
    }
  }

  // A token names who presents it, so it may have one owner: an agent token admits agents
  // only (DESIGN), and an HTTP token one role. Cache tokens may double as HTTP tokens.
  const owner = new Map<string, string>();
  const claim = (tokens: readonly string[], who: string, path: PropertyKey[], sameOwnerOk: (other: string) => boolean) => {
    for (const t of tokens) {
      const other = owner.get(t);
      if (other !== undefined && other !== who && !sameOwnerOk(other)) {
        ctx.addIssue({ code: 'custom', path, message: `a token here is also accepted by ${other}; each token must have one owner` });
      }
      if (other === undefined) owner.set(t, who);
    }
  };
  const never = () => false;
  claim([...strings([agents.token]), ...strings(agents.tokens)], 'agents.tokens', ['agents', 'tokens'], never);
  for (const [name, raw] of Object.entries(pools)) claim(strings(record(raw).agentTokens), `pools.${name}`, ['pools', name, 'agentTokens'], never);
  const roles = record(http.tokens);
  const admin = [...strings(roles.admin), ...strings([c.adminToken])];
  claim(strings(roles.read), 'http.tokens.read', ['http', 'tokens', 'read'], never);
  claim(strings(roles.submit), 'http.tokens.submit', ['http', 'tokens', 'submit'], never);
  claim(admin, 'http.tokens.admin', ['http', 'tokens', 'admin'], never);
  const cas = record(c.cas);
  const notAgent = (other: string) => other.startsWith('http.') || other.startsWith('cas.');
  claim(strings(cas.tokens), 'cas.tokens', ['cas', 'tokens'], notAgent);
  claim(strings(cas.readTokens), 'cas.readTokens', ['cas', 'readTokens'], notAgent);

  const host = typeof http.host === 'string' ? http.host : '127.0.0.1';
  if (strings(roles.submit).length === 0 && admin.length === 0 && http.openSubmit !== true && !isLoopback(host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['http', 'tokens', 'submit'],
      message:
        `http.host "${host}" is reachable from the network and no submit or admin token is set, so anyone could run ` +
        'commands on every agent: set http.tokens.submit (or SPILLWAY_SUBMIT_TOKEN), or http.openSubmit: true to accept that',
    });
  }
  // Cache workers commit uploads and answer misses through the disk store's index alone.
  if (cas.s3 !== undefined && typeof cas.workers === 'number' && cas.workers > 0) {
    ctx.addIssue({ code: 'custom', path: ['cas', 's3'], message: 'cas.s3 cannot be used with cas.workers > 0 yet: set cas.workers to 0' });
  }
  if (typeof cas.dir === 'string' && strings(cas.tokens).length + strings(cas.readTokens).length === 0 && (cas.anonymous ?? 'none') === 'none') {
    ctx.addIssue({
      code: 'custom',
      path: ['cas', 'tokens'],
      message: 'nobody could use the cache: list cas.tokens (read-write, for CI and agents), or set cas.anonymous to "read" or "read-write"',
    });
  }
}

/** Addresses only this machine can reach; anything else (0.0.0.0, a name) counts as the network. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const v = isIP(host);
  if (v === 4) return host.startsWith('127.');
  if (v === 6) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

function record(v: unknown): Loose {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {};
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
