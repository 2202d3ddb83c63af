import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/lib';
import { waitUntil } from './wait-until';

/** One redis-server or redis-sentinel process of the topology. */
export interface RedisNode {
  port: number;
  /** SIGKILL (a crash: nothing flushed, no goodbye to replicas or clients), awaited. */
  kill(): Promise<void>;
  /** A fresh admin client (authenticated); the caller quits it. */
  client(): Redis;
}

export interface SentinelTopology {
  masterName: string;
  /** The data nodes' requirepass (and masterauth). */
  password: string;
  /** The sentinels' own requirepass. */
  sentinelPassword: string;
  /** `host:port` of each sentinel, as `redis.sentinel.sentinels` takes them. */
  sentinelAddresses: string[];
  primary: RedisNode;
  replica: RedisNode;
  sentinels: RedisNode[];
  /** The port the sentinels name as the primary now (asked of the first sentinel still up). */
  primaryPort(): Promise<number>;
  /** Resolves once every live sentinel names `port` as the primary and sees it up. */
  waitForPrimary(port: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface SentinelTopologyOptions {
  /** @defaultValue 'spillway' */
  masterName?: string;
  /** How long a silent primary takes to be thought down. @defaultValue 1000 */
  downAfterMs?: number;
  /** @defaultValue 3000 */
  failoverTimeoutMs?: number;
}

/**
 * A primary, one replica and three sentinels (quorum 2), on free loopback ports in a temp dir,
 * with passwords on the data nodes and on the sentinels. Resolves once the replica is in sync
 * and every sentinel knows the replica and the two other sentinels, so a failover can happen:
 * a sentinel that has not yet heard of the replica would have no one to promote.
 */
export async function startSentinelTopology(o: SentinelTopologyOptions = {}): Promise<SentinelTopology> {
  const masterName = o.masterName ?? 'spillway';
  const password = 'data-nodes-password-0123';
  const sentinelPassword = 'sentinels-password-0123';
  const dir = mkdtempSync(join(tmpdir(), 'spillway-sentinel-'));
  const children: ChildProcess[] = [];
  const started: RedisNode[] = [];

  const node = async (name: string, binary: string, args: (port: number) => string[], auth: string): Promise<RedisNode> => {
    const port = await freePort();
    const child = spawn(binary, args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => {
        output += b.toString();
        if (/Ready to accept connections|Sentinel ID is/i.test(output)) {
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.once('error', (err) => reject(new Error(`cannot start ${binary} for ${name} (${err.message}); apt-get install redis-server redis-sentinel`)));
      child.once('exit', (code) => reject(new Error(`${name} (${binary}) exited with ${code}: ${output.slice(-800)}`)));
    });
    child.stdout?.resume();
    child.stderr?.resume();
    const handle: RedisNode = {
      port,
      kill: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      },
      client: () => new Redis({ host: '127.0.0.1', port, password: auth, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null }).on('error', () => undefined),
    };
    started.push(handle);
    return handle;
  };

  const server = (name: string, replicaOf?: number) => {
    const data = join(dir, name);
    mkdirSync(data);
    return node(
      name,
      'redis-server',
      (port) => [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--save', '', '--appendonly', 'no', '--daemonize', 'no',
        '--requirepass', password, '--masterauth', password,
        ...(replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(replicaOf)]),
      ],
      password,
    );
  };

  try {
    const primary = await server('primary');
    const replica = await server('replica', primary.port);
    await until(replica, async (r) => /master_link_status:up/.test(await r.info('replication')), 'the replica in sync with the primary', 10_000);

    const sentinels: RedisNode[] = [];
    for (let i = 0; i < 3; i++) {
      const sdir = join(dir, `sentinel-${i}`);
      mkdirSync(sdir);
      const conf = join(sdir, 'sentinel.conf');
      // Sentinel rewrites its config file (what it learned, the current epoch): one each.
      writeFileSync(
        conf,
        [
          'bind 127.0.0.1',
          `dir ${sdir}`,
          `requirepass ${sentinelPassword}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
          `sentinel auth-pass ${masterName} ${password}`,
          `sentinel down-after-milliseconds ${masterName} ${o.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${masterName} ${o.failoverTimeoutMs ?? 3000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(await node(`sentinel-${i}`, 'redis-sentinel', (port) => [conf, '--port', String(port)], sentinelPassword));
    }
    for (const s of sentinels) {
      await until(
        s,
        async (c) => {
          const replicas = (await c.call('SENTINEL', 'REPLICAS', masterName)) as string[][];
          const peers = (await c.call('SENTINEL', 'SENTINELS', masterName)) as string[][];
          const ok = replicas.some((r) => field(r, 'port') === String(replica.port) && !/down|disconnected/.test(field(r, 'flags') ?? ''));
          return ok && peers.length === 2;
        },
        `sentinel on ${s.port} knowing the replica and both other sentinels`,
        15_000,
      );
    }

    const live = async <T>(fn: (c: Redis) => Promise<T>): Promise<T> => {
      let last: unknown;
      for (const s of sentinels) {
        const c = s.client();
        try {
          return await fn(c);
        } catch (err) {
          last = err;
        } finally {
          c.disconnect();
        }
      }
      throw last;
    };
    const primaryPort = () => live(async (c) => Number(((await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as string[])[1]));

    return {
      masterName,
      password,
      sentinelPassword,
      sentinelAddresses: sentinels.map((s) => `127.0.0.1:${s.port}`),
      primary,
      replica,
      sentinels,
      primaryPort,
      waitForPrimary: async (port, timeoutMs) => {
        await waitUntil(
          async () => {
            for (const s of sentinels) {
              const c = s.client();
              try {
                const m = (await c.call('SENTINEL', 'MASTER', masterName)) as string[];
                if (field(m, 'port') !== String(port) || /down/.test(field(m, 'flags') ?? '')) return false;
              } catch {
                // A sentinel that was killed on purpose has no say.
              } finally {
                c.disconnect();
              }
            }
            return true;
          },
          { timeoutMs, everyMs: 50, what: `every sentinel naming 127.0.0.1:${port} as the primary` },
        );
      },
      stop: async () => {
        await Promise.all(started.map((n) => n.kill()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(started.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A field of a flat `[k1, v1, k2, v2, ...]` reply (SENTINEL MASTER / REPLICAS). */
function field(reply: readonly string[], key: string): string | undefined {
  const i = reply.findIndex((v, j) => j % 2 === 0 && v === key);
  return i < 0 ? undefined : reply[i + 1];
}

async function until(n: RedisNode, cond: (c: Redis) => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const c = n.client();
  try {
    await waitUntil(() => cond(c).catch(() => false), { timeoutMs, everyMs: 50, what });
  } finally {
    c.disconnect();
  }
}
