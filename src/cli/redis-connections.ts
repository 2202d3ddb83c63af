import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig, RedisTlsConfig } from '../config';
import { RepeatLog, type Clock, type Logger } from '../lib';

/** Reads a PEM file named by the config (injected, so a test needs no files). */
export type ReadPem = (path: string) => Buffer;

/** Options of {@link RedisConnections}. */
export interface RedisConnectionsOptions {
  redis: RedisConfig;
  log: Logger;
  clock: Clock;
  /** Window in which one kind of connection error is logged once. @defaultValue 60000 */
  repeatWindowMs?: number;
  /** @defaultValue fs.readFileSync */
  readPem?: ReadPem;
}

/**
 * The one place spillway makes Redis connections: from `redis.url`, or through Redis Sentinel
 * from `redis.sentinel`, so every connection of the master (BullMQ's queues and workers and the
 * duplicates they make, build records, the API, subscriptions, the provisioner's, the queue
 * monitor's) follows the same primary across a failover.
 */
export class RedisConnections {
  private readonly base: { url: string | undefined; options: RedisOptions };
  private readonly redis: RedisConfig;
  private readonly repeats: RepeatLog;
  private readonly log: Logger;

  constructor(opts: RedisConnectionsOptions) {
    this.base = redisTarget(opts.redis, opts.readPem ?? ((p) => readFileSync(p)));
    this.redis = opts.redis;
    this.log = opts.log;
    // One line per kind of error and window for all connections: each reconnect attempt repeats it.
    this.repeats = new RepeatLog(opts.log, opts.clock, opts.repeatWindowMs ?? 60_000);
  }

  /**
   * A connected client named `<keyPrefix>:master-<name>` in CLIENT LIST. ioredis repeats an
   * error on every reconnect attempt; they are folded into one line per kind and window,
   * reported in full once the connection is back.
   */
  async open(name: string, connectionName: string, options: RedisOptions): Promise<Redis> {
    const merged: RedisOptions = { ...this.base.options, ...options, connectionName, retryStrategy: reconnectDelay, lazyConnect: true };
    const redis = this.base.url === undefined ? new Redis(merged) : new Redis(this.base.url, merged);
    redis.on('error', (err: Error) => this.repeats.error('redis.error', err.message, { connection: name, error: err.message }));
    let address: string | undefined;
    redis.on('ready', () => {
      this.repeats.flush();
      // Where a connection landed after a reconnect: a failover shows as the primary changing.
      const now = `${redis.stream?.remoteAddress ?? '?'}:${redis.stream?.remotePort ?? '?'}`;
      if (address !== undefined && address !== now) this.log.warn('redis.primary-changed', { connection: name, from: address, to: now });
      address = now;
    });
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw err;
    }
    return redis;
  }

  /**
   * Warns when the sentinels would take longer to fail over than a running build's lock
   * survives: the master renews locks every `lockMs / 2`, so an outage longer than that lets a
   * lock run out and the build run a second time. Asks the first sentinel that answers (one that
   * does not is only a debug line: the connections already found the primary through one).
   */
  async checkFailoverTime(lockMs: number): Promise<void> {
    const s = this.redis.sentinel;
    if (!s) return;
    const { sentinelPassword: password, sentinelUsername: username } = s;
    const tls = this.base.options.sentinelTLS;
    for (const address of s.sentinels) {
      const probe = new Redis({
        ...address,
        ...(password !== undefined && { password }),
        ...(username !== undefined && { username }),
        ...(tls && { tls }),
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        connectTimeout: 2000,
        commandTimeout: 2000,
      });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        const reply = (await probe.call('SENTINEL', 'MASTER', s.masterName)) as string[];
        const i = reply.indexOf('down-after-milliseconds');
        const downAfterMs = i >= 0 && i % 2 === 0 ? Number(reply[i + 1]) : NaN;
        // The election and promotion took 1-2 s in the failover test, the reconnect up to 1 s.
        if (downAfterMs + ELECTION_AND_RECONNECT_MS > lockMs / 2) {
          this.log.warn('redis.failover-outlasts-locks', {
            sentinel: `${address.host}:${address.port}`,
            downAfterMs,
            lockMs,
            reason: `a failover (down-after-milliseconds ${downAfterMs} + ~${ELECTION_AND_RECONNECT_MS} ms) outlasts half of builds.lockMs (${lockMs / 2} ms): builds running across it may run twice; lower down-after-milliseconds or raise builds.lockMs`,
          });
        }
        return;
      } catch (err) {
        this.log.debug('redis.sentinel-unanswered', { sentinel: `${address.host}:${address.port}`, error: (err as Error).message });
      } finally {
        probe.disconnect();
      }
    }
  }
}

/** What a failover takes beyond the sentinels' down-after-milliseconds (measured: README). */
const ELECTION_AND_RECONNECT_MS = 3000;

/** The URL (none for Sentinel) and the ioredis options every connection starts from. */
export function redisTarget(redis: RedisConfig, readPem: ReadPem): { url: string | undefined; options: RedisOptions } {
  const s = redis.sentinel;
  if (!s) return { url: redis.url, options: {} };
  const tls = s.tls && tlsOptions(s.tls, readPem);
  const sentinelTLS = s.sentinelTls && tlsOptions(s.sentinelTls, readPem);
  return {
    url: undefined,
    options: {
      sentinels: s.sentinels.map((a) => ({ host: a.host, port: a.port })),
      name: s.masterName,
      ...(s.username !== undefined && { username: s.username }),
      ...(s.password !== undefined && { password: s.password }),
      ...(s.sentinelUsername !== undefined && { sentinelUsername: s.sentinelUsername }),
      ...(s.sentinelPassword !== undefined && { sentinelPassword: s.sentinelPassword }),
      // ioredis applies `tls` to the primary only with enableTLSForSentinelMode.
      ...(tls && { tls, enableTLSForSentinelMode: true }),
      ...(sentinelTLS && { sentinelTLS }),
      // A failover the sentinels announce (+switch-master) drops the connections at once, so
      // they reconnect to the new primary instead of writing to a demoted one until it closes them.
      failoverDetector: true,
      // A demoted primary answers writes with READONLY before it drops its clients: reconnect
      // (through the sentinels) and resend; the command was refused, so it cannot run twice.
      reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
      // Until the sentinels have promoted a replica they name the dead primary: ask again soon.
      sentinelRetryStrategy: reconnectDelay,
    },
  };
}

function tlsOptions(tls: RedisTlsConfig, readPem: ReadPem): ConnectionOptions {
  if (tls === true) return {};
  return {
    ...(tls.ca !== undefined && { ca: readPem(tls.ca) }),
    ...(tls.cert !== undefined && { cert: readPem(tls.cert) }),
    ...(tls.key !== undefined && { key: readPem(tls.key) }),
    ...(tls.servername !== undefined && { servername: tls.servername }),
  };
}

/**
 * ioredis backs off to 5 s between reconnect attempts. After an outage the connections then
 * come back seconds apart, and one that is late is harmful: the queues connection renews the
 * locks of running builds, so a build taken on the (already back) blocking connection lost its
 * lock while it waited and ran a second time. A try every second at most costs a refused
 * connect per connection and second while Redis is down. BullMQ's duplicates inherit it.
 */
function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** (times - 1), 1000);
}
