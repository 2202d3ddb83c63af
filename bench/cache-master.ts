/**
 * The spillway side of bench/cache-vs-nginx.ts: a real `spillway master --config FILE` process
 * with a private redis-server, its cache in the bench's temp dir and open to anonymous
 * read-write access (so nginx and spillway get byte-identical requests), and a sampler of its
 * peak RSS (VmHWM) and its children's.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { freePort, startRedisServer, type RedisServerHandle } from '../src/lib/redis-server';
import { poll, spawnLogged, type LoggedChild } from './procs';

const CLI = resolve(__dirname, '../src/cli/main.js');
const AGENT_TOKEN = 'bench-agent-token-0123456789';

/** The pieces a cleanup must stop; filled in as they start. */
export interface MasterRun {
  redis?: RedisServerHandle;
  master?: LoggedChild;
}

export interface StartedMaster {
  /** Base URL of the cache (the HTTP API's, or `cas.listen`'s), with `cas.prefix` if any. */
  base: string;
  /** The `cas` section the master was given, after BENCH_CAS_YAML. */
  cas: Record<string, unknown>;
  pid: number;
}

const mapping = z.record(z.string(), z.unknown());
type Mapping = z.infer<typeof mapping>;

/** BENCH_CAS_YAML as a mapping (empty when unset); anything else is an error, not ignored. */
export function casOverrides(yaml: string | undefined): Mapping {
  if (yaml === undefined || yaml.trim() === '') return {};
  const r = mapping.safeParse(parse(yaml));
  if (!r.success) throw new Error(`BENCH_CAS_YAML must be a YAML mapping, e.g. '{workers: 2, listen: {port: 0}}': got ${yaml}`);
  return r.data;
}

const isMapping = (v: unknown): v is Mapping => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `over` merged into `base`: nested mappings merge, `null` removes the key (a baseline built from
 * older code may not know it), everything else replaces.
 */
export function deepMerge(base: Mapping, over: Mapping): Mapping {
  const out: Mapping = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = isMapping(v) && isMapping(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

function childEnv(): NodeJS.ProcessEnv {
  // The config file must be what the master uses: drop the variables that override it.
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SPILLWAY_')) delete env[k];
  for (const k of ['REDIS_URL', 'NODE_OPTIONS']) delete env[k];
  return env;
}

/**
 * Starts redis-server and the master under `work`; `run` holds them as soon as each exists, so
 * the caller's cleanup stops whatever got started even when this throws half-way.
 */
export async function startMaster(
  run: MasterRun,
  work: string,
  o: { memoryMb: number; maxSizeMb: number; maxBlobMb: number; casYaml: string | undefined; cli?: string },
): Promise<StartedMaster> {
  mkdirSync(join(work, 'redis'), { recursive: true });
  run.redis = await startRedisServer({ dir: join(work, 'redis') });
  let cas = deepMerge(
    { dir: join(work, 'cas'), maxSizeMb: o.maxSizeMb, maxBlobMb: o.maxBlobMb, memoryCacheMb: o.memoryMb, anonymous: 'read-write' },
    casOverrides(o.casYaml),
  );
  const listen = isMapping(cas.listen) ? cas.listen : undefined;
  let listenPort: number | undefined;
  if (listen && 'port' in listen) {
    listenPort = await freePort();
    cas = { ...cas, listen: { ...listen, port: listenPort } };
  }
  const cfgFile = join(work, 'spillway.yaml');
  writeFileSync(
    cfgFile,
    stringify({
      redis: { url: run.redis.url, queuePrefix: 'bench-bull', keyPrefix: 'bench-sw' },
      http: { host: '127.0.0.1', port: 0 },
      agents: { host: '127.0.0.1', port: 0, token: AGENT_TOKEN },
      // Its own gRPC port, so a second master (BENCH_BASELINE_CAS_YAML) can run alongside.
      grpc: { port: await freePort() },
      jobTypes: { bench: {} },
      cas,
      log: { level: 'warn', format: 'json' },
    }),
  );
  const m = spawnLogged('master', process.execPath, [o.cli ?? CLI, 'master', '--config', cfgFile], join(work, 'master.log'), childEnv());
  run.master = m;
  const line = await poll('the master to listen', 30_000, () => {
    if (m.child.exitCode !== null) throw new Error(`master exited (${m.child.exitCode}):\n${m.log().slice(-2000)}`);
    return /HTTP API (http:\/\/\S+),/.exec(m.log()) ?? undefined;
  });
  const host = listen && typeof listen.host === 'string' ? listen.host : '127.0.0.1';
  const origin = listenPort !== undefined ? `http://${host}:${listenPort}` : line[1]!;
  const base = `${origin}${typeof cas.prefix === 'string' ? cas.prefix : ''}`;
  // The cache may listen apart from the API (cas.listen, cas.workers): wait until it answers.
  await poll(`the cache at ${base} to answer`, 30_000, async () => {
    if (m.child.exitCode !== null) throw new Error(`master exited (${m.child.exitCode}):\n${m.log().slice(-2000)}`);
    const res = await fetch(`${base}/cas/${'0'.repeat(64)}`).catch(() => undefined);
    return res && (res.status === 404 || res.status === 200) ? true : undefined;
  }, 100);
  return { base, cas, pid: m.child.pid! };
}

// ---------------------------------------------------------------------------------------------
// Peak RSS

/** VmHWM (peak resident set) of `pid` in bytes; undefined when it is gone. */
function vmHwm(pid: number): number | undefined {
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Pids whose parent is `ppid`. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

export interface RssPeak {
  /** The master's own VmHWM, bytes. */
  master: number;
  /** Each child's VmHWM (the last seen before it went away), bytes, by pid. */
  children: Map<number, number>;
}

/**
 * Samples the master's VmHWM and its children's every `everyMs` (a child's peak is lost with
 * it, so it is read while the child lives) until `stop()`, which takes a last sample first.
 * The total is an upper bound of the peak: the processes need not have peaked at once.
 */
export function rssSampler(pid: number, everyMs = 500): { stop(): RssPeak } {
  const peak: RssPeak = { master: 0, children: new Map() };
  const sample = (): void => {
    peak.master = Math.max(peak.master, vmHwm(pid) ?? 0);
    for (const c of childrenOf(pid)) {
      const h = vmHwm(c);
      if (h !== undefined) peak.children.set(c, Math.max(peak.children.get(c) ?? 0, h));
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    stop(): RssPeak {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
