import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import { RedisUnavailableError, type Clock, type RedisProbe } from '../lib';

export interface RedisDeadlineOptions {
  /** The longest an API call waits on Redis (http.redisTimeoutMs). */
  timeoutMs: number;
  probe: Pick<RedisProbe, 'check'>;
  clock: Clock;
  /** Extra time a route asks for by design (a long poll's own wait). */
  extraMs?: (url: string, query: unknown) => number;
  /** Routes left alone: ones that stream, or never touch Redis. */
  exempt: (url: string) => boolean;
}

const LATE = Symbol('late');

/**
 * Puts a deadline on every route registered on `app` after this call. The queues and build
 * records are read through connections that wait for Redis through an outage (BullMQ's
 * worker must), so a call past its deadline is answered 503 "Redis unavailable" with what the
 * probe found, instead of holding the caller for as long as the outage lasts. The abandoned
 * call finishes, or fails, in the background; none of these routes writes.
 */
export function redisDeadline(app: FastifyInstance, o: RedisDeadlineOptions): void {
  app.addHook('onRoute', (route) => {
    if (o.exempt(route.url)) return;
    const handler = route.handler as (...args: Parameters<RouteHandlerMethod>) => unknown;
    route.handler = async function (this: FastifyInstance, req, reply) {
      const ms = o.timeoutMs + (o.extraMs?.(route.url, req.query) ?? 0);
      const work = Promise.resolve().then(() => handler.call(this, req, reply));
      work.catch(() => undefined);
      const ac = new AbortController();
      const late = o.clock.sleep(ms, ac.signal).then(
        () => LATE,
        () => undefined,
      );
      try {
        const r = await Promise.race([work, late]);
        if (r !== LATE) return r;
      } finally {
        ac.abort();
      }
      const health = await o.probe.check();
      throw new RedisUnavailableError(`Redis unavailable: ${health.ok ? `no answer from Redis within ${ms}ms` : health.reason}`);
    };
  });
}
