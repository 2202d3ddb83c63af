import { SpillwayError, type Clock } from '../lib';

/**
 * The EC2 instance metadata service could not tell us which instance this is: usually because
 * the agent is not running on EC2 (nothing answers 169.254.169.254), or IMDS is disabled, or a
 * container sits one hop too far for the IMDSv2 token (the instance's hop limit is 1).
 * `disposition` is `retry` only for answers that say "try again" (HTTP 429/5xx).
 */
export class ImdsError extends SpillwayError {
  readonly code = 'SPILLWAY_E_IMDS';
  constructor(
    message: string,
    readonly disposition: 'retry' | 'fatal',
    /** The HTTP status IMDS answered with, when it answered at all. */
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of {@link ImdsClient} and {@link fetchInstanceId}. */
export interface FetchInstanceIdOptions {
  /** @defaultValue 'http://169.254.169.254' */
  baseUrl?: string;
  /** @defaultValue the global fetch */
  fetchImpl?: typeof fetch;
  signal?: AbortSignal;
  /**
   * Limit per request. IMDS answers in milliseconds on EC2; off EC2 the link-local address
   * usually just drops packets, so waiting long only delays the "not on EC2" verdict.
   * @defaultValue 2000
   */
  timeoutMs?: number;
  /** Lifetime asked for the IMDSv2 session token. @defaultValue 21600 (6 hours, the maximum) */
  tokenTtlSec?: number;
  /** When the token is due for renewal. @defaultValue the system clock */
  clock?: Pick<Clock, 'now'>;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/**
 * IMDSv2: a session token from `PUT /latest/api/token`, then metadata reads carrying it. The
 * token is kept and renewed a minute before it expires, or at once when IMDS answers 401 (it
 * was restarted, or the token expired early).
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
 */
export class ImdsClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly ttlSec: number;
  private readonly clock: Pick<Clock, 'now'>;
  private token: { value: string; renewAt: number } | undefined;

  constructor(options: Omit<FetchInstanceIdOptions, 'signal'> = {}) {
    this.base = (options.baseUrl ?? 'http://169.254.169.254').replace(/\/+$/, '');
    this.fetchImpl = options.fetchImpl ?? fetch;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.ttlSec = options.tokenTtlSec ?? 21_600;
    this.clock = options.clock ?? { now: () => Date.now() };
  }

  /** The metadata at `path` (e.g. `/latest/meta-data/instance-id`); undefined when IMDS answers 404. */
  async get(path: string, what: string, signal?: AbortSignal): Promise<string | undefined> {
    let res = await this.request(what, path, { method: 'GET', headers: { 'X-aws-ec2-metadata-token': await this.session(signal) } }, signal);
    if (res.status === 401) {
      this.token = undefined;
      res = await this.request(what, path, { method: 'GET', headers: { 'X-aws-ec2-metadata-token': await this.session(signal) } }, signal);
    }
    if (res.status === 404) return undefined;
    return this.body(what, res);
  }

  private async session(signal: AbortSignal | undefined): Promise<string> {
    if (this.token && this.clock.now() < this.token.renewAt) return this.token.value;
    const res = await this.request('session token', '/latest/api/token', { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(this.ttlSec) } }, signal);
    const value = await this.body('session token', res);
    this.token = { value, renewAt: this.clock.now() + Math.max(0, this.ttlSec - 60) * 1000 };
    return value;
  }

  private async body(what: string, res: Response): Promise<string> {
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      const retry = res.status === 429 || res.status >= 500;
      throw new ImdsError(`the EC2 instance metadata service refused the ${what}: HTTP ${res.status}`, retry ? 'retry' : 'fatal', res.status);
    }
    return text.trim();
  }

  private async request(what: string, path: string, init: RequestInit, callerSignal: AbortSignal | undefined): Promise<Response> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
    try {
      return await this.fetchImpl(`${this.base}${path}`, { ...init, signal });
    } catch (err) {
      if (callerSignal?.aborted) throw callerSignal.reason;
      const why = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : err instanceof Error ? err.message : String(err);
      throw new ImdsError(
        `cannot reach the EC2 instance metadata service at ${this.base} for the ${what} (${why}): not running on EC2, ` +
          'IMDS disabled, or, in a container, the instance metadata hop limit is too low for IMDSv2',
        'fatal',
        undefined,
        { cause: err },
      );
    }
  }
}

/** The id of the EC2 instance this process runs on, asked of IMDSv2. */
export async function fetchInstanceId(options: FetchInstanceIdOptions = {}): Promise<string> {
  const id = await new ImdsClient(options).get('/latest/meta-data/instance-id', 'instance id', options.signal);
  if (id === undefined) throw new ImdsError('the EC2 instance metadata service refused the instance id: HTTP 404', 'fatal', 404);
  if (!INSTANCE_ID.test(id)) {
    throw new ImdsError(`the EC2 instance metadata service answered an unexpected instance id: ${JSON.stringify(id.slice(0, 40))}`, 'fatal', 200);
  }
  return id;
}

/** Whether `id` looks like an EC2 instance id (what `--instance-id imds` yields on EC2). */
export function isEc2InstanceId(id: string | undefined): boolean {
  return id !== undefined && INSTANCE_ID.test(id);
}
