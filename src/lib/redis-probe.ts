import type { Clock } from './clock';

/** What the probe needs of an ioredis client. */
export interface ProbeConnection {
  readonly status: string;
  ping(): Promise<string>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'ready' | 'close', listener: () => void): unknown;
}

/** Until the first reconnect attempt fails, all that is known is that the server went away. */
const CLOSED = 'connection closed';

export type RedisHealth = { ok: true; latencyMs: number } | { ok: false; reason: string };

/**
 * Asks Redis, every time, whether it answers: a PING with a deadline on a connection that
 * fails commands at once while it is down (no offline queue). A flag kept from connection
 * events would say "up" while a stopped or hung server holds every command.
 */
export class RedisProbe {
  private lastError: string | undefined;

  constructor(
    private readonly d: {
      redis: ProbeConnection;
      clock: Clock;
      /** Longest wait for the PONG. @defaultValue 1000 */
      timeoutMs?: number;
    },
  ) {
    // The error of the last connection attempt says why Redis is down (ECONNREFUSED, a DNS
    // failure, a TLS problem); the command's own error would only say the stream is closed.
    d.redis.on('error', (err) => (this.lastError = err.message));
    d.redis.on('ready', () => (this.lastError = undefined));
    d.redis.on('close', () => (this.lastError ??= CLOSED));
  }

  async check(): Promise<RedisHealth> {
    const timeoutMs = this.d.timeoutMs ?? 1000;
    const started = this.d.clock.now();
    const ac = new AbortController();
    const late = this.d.clock.sleep(timeoutMs, ac.signal).then(
      () => `no answer to PING within ${timeoutMs}ms`,
      () => undefined,
    );
    try {
      const outcome = await Promise.race([this.d.redis.ping().then(() => 'ok' as const), late]);
      if (outcome === 'ok') return { ok: true, latencyMs: this.d.clock.now() - started };
      return { ok: false, reason: outcome ?? 'no answer to PING' };
    } catch (err) {
      // While the connection is down (or going down: its status may still say ready), the
      // command's own error only says the client would not queue it.
      const down = this.d.redis.status !== 'ready' || /enableOfflineQueue/.test((err as Error).message);
      const why = this.lastError ?? (down ? CLOSED : (err as Error).message);
      return { ok: false, reason: `unreachable: ${why}` };
    } finally {
      ac.abort();
    }
  }
}
