import { MasterUnavailableError, NotFoundError, RedisUnavailableError, SpillwayError } from '../lib';

/** Longer than any answer the API gives (its Redis deadline plus a long poll's wait). */
const ANSWER_WITHIN_MS = 60_000;

/** A small client of the master's HTTP API for the CLI. */
export class MasterClient {
  private readonly base: string;

  /** @param token sent as `Authorization: Bearer` (--token / SPILLWAY_TOKEN); none for an open master */
  constructor(
    base: string,
    private readonly token?: string,
  ) {
    if (!/^https?:\/\//.test(base)) throw new CliUsageError(`--master must be an http:// or https:// URL, got "${base}"`);
    this.base = base.replace(/\/+$/, '');
  }

  /** @param signal aborts the request; it then counts as the master being unreachable */
  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, undefined, signal);
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  /** A route that answers text (a build log), as it is. */
  async getText(path: string): Promise<string> {
    return this.request<string>('GET', path, undefined, undefined, true);
  }

  private async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, asText = false): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: {
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...(this.token && { authorization: `Bearer ${this.token}` }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(ANSWER_WITHIN_MS)]) : AbortSignal.timeout(ANSWER_WITHIN_MS),
      });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new MasterUnavailableError(`the master at ${this.base} did not answer within ${ANSWER_WITHIN_MS / 1000}s`);
      const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
      throw new MasterUnavailableError(`cannot reach the master at ${this.base}: ${cause}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      // The master went away (or the request was aborted) halfway through its answer.
      throw new MasterUnavailableError(`the master at ${this.base} stopped answering: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = text && !(asText && res.ok) ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const msg = error?.message ?? text.slice(0, 200);
      if (error?.code === 'SPILLWAY_E_REDIS_UNAVAILABLE') {
        throw new RedisUnavailableError(`the master at ${this.base} is up but its Redis is unreachable (${msg.replace(/^Redis unavailable: /, '')}); retry later`);
      }
      if (res.status >= 500) throw new MasterUnavailableError(`master answered ${res.status}: ${msg}`);
      if (res.status === 404) throw new NotFoundError(`master answered 404: ${msg}`);
      if (res.status === 401 && !this.token) throw new CliUsageError(`master answered 401: ${msg} (pass --token or set SPILLWAY_TOKEN)`);
      throw new CliUsageError(`master answered ${res.status}: ${msg}`);
    }
    return (asText ? text : json) as T;
  }
}

/** The user asked for something impossible; exit 2 with the message. */
export class CliUsageError extends SpillwayError {
  readonly code = 'SPILLWAY_E_USAGE';
  readonly disposition = 'fatal';
}

/** EX_TEMPFAIL (sysexits.h): the master (or its Redis) could not be reached; try again later. */
export const UNREACHABLE_EXIT = 75;

/**
 * Runs one request-and-answer command: a master that cannot be reached, or whose Redis is
 * away, is said on `err` and exits 75, so a script can retry later; anything else propagates.
 */
export async function orUnreachable(err: NodeJS.WritableStream, command: () => Promise<number>): Promise<number> {
  try {
    return await command();
  } catch (e) {
    if (!(e instanceof MasterUnavailableError || e instanceof RedisUnavailableError)) throw e;
    err.write(`spillway: ${e.message}\n`);
    return UNREACHABLE_EXIT;
  }
}
