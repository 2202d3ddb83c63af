import { fullJitterDelay, MasterUnavailableError, RedisUnavailableError, type BackoffPolicy, type Clock } from '../lib';
import type { MasterClient } from './master-client';

export interface MasterContactOptions {
  clock: Clock;
  /** How long the master may stay unreachable before the caller gives up. */
  waitTimeoutMs: number;
  /** A request unanswered for this long counts as the master being unreachable. */
  requestTimeoutMs: number;
  /** Where the one line saying contact came back goes. */
  err: NodeJS.WritableStream;
  /** @defaultValue `{ baseMs: 250, maxMs: 5000 }` */
  backoff?: BackoffPolicy;
  /** @defaultValue Math.random */
  random?: () => number;
}

/** The master stayed unreachable for longer than the wait timeout. */
export class ContactLost extends Error {
  constructor(
    readonly downMs: number,
    cause: string,
  ) {
    super(`lost contact with the master for ${Math.round(downMs / 1000)} s: ${cause}`);
  }
}

/**
 * Reads from a master that may restart meanwhile: a request the master cannot answer (down,
 * restarting, its Redis away) is retried with backoff until the master answers again, which
 * is said once, or until it has been unreachable for the wait timeout ({@link ContactLost}).
 */
export class MasterContact {
  private downSince: number | undefined;

  constructor(
    private readonly client: MasterClient,
    private readonly o: MasterContactOptions,
  ) {}

  async get<T>(path: string): Promise<T> {
    const { clock } = this.o;
    for (let failures = 1; ; failures++) {
      try {
        const answer = await this.once<T>(path);
        if (this.downSince !== undefined) {
          const s = ((clock.now() - this.downSince) / 1000).toFixed(1);
          this.o.err.write(`spillway: reconnected to the master after ${s} s; following on\n`);
          this.downSince = undefined;
        }
        return answer;
      } catch (err) {
        // A master whose Redis is away answers 503 at once: as transient as a master restarting.
        if (!(err instanceof MasterUnavailableError || err instanceof RedisUnavailableError)) throw err;
        const now = clock.now();
        this.downSince ??= now;
        const left = this.downSince + this.o.waitTimeoutMs - now;
        if (left <= 0) throw new ContactLost(now - this.downSince, err.message);
        const pause = fullJitterDelay(failures, this.o.backoff ?? { baseMs: 250, maxMs: 5000 }, this.o.random ?? Math.random);
        await clock.sleep(Math.min(left, Math.max(pause, 50)));
      }
    }
  }

  /** One request, abandoned on the injected clock: a stopped master would otherwise hold it for ever. */
  private async once<T>(path: string): Promise<T> {
    const abort = new AbortController();
    const answered = new AbortController();
    this.o.clock.sleep(this.o.requestTimeoutMs, answered.signal).then(
      () => abort.abort(new Error(`no answer within ${this.o.requestTimeoutMs} ms`)),
      () => undefined,
    );
    try {
      return await this.client.get<T>(path, abort.signal);
    } finally {
      answered.abort();
    }
  }
}
