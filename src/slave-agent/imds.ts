import { SpillwayError } from '../lib';

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

/** Options of {@link fetchInstanceId}. */
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
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/**
 * The id of the EC2 instance this process runs on, asked of IMDSv2: a session token from
 * `PUT /latest/api/token`, then `GET /latest/meta-data/instance-id` with that token.
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
 */
export async function fetchInstanceId(options: FetchInstanceIdOptions = {}): Promise<string> {
  const base = (options.baseUrl ?? 'http://169.254.169.254').replace(/\/+$/, '');
  const fetchImpl = options.fetchImpl ?? fetch;
  const timeoutMs = options.timeoutMs ?? 2000;

  const request = async (what: string, path: string, init: RequestInit): Promise<string> => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetchImpl(`${base}${path}`, { ...init, signal });
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      const why = timeout.aborted ? `no answer within ${timeoutMs} ms` : err instanceof Error ? err.message : String(err);
      throw new ImdsError(
        `cannot reach the EC2 instance metadata service at ${base} for the ${what} (${why}): not running on EC2, ` +
          'IMDS disabled, or, in a container, the instance metadata hop limit is too low for IMDSv2',
        'fatal',
        undefined,
        { cause: err },
      );
    }
    const body = await res.text().catch(() => '');
    if (!res.ok) {
      const retry = res.status === 429 || res.status >= 500;
      throw new ImdsError(`the EC2 instance metadata service refused the ${what}: HTTP ${res.status}`, retry ? 'retry' : 'fatal', res.status);
    }
    return body.trim();
  };

  const token = await request('session token', '/latest/api/token', {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(options.tokenTtlSec ?? 21_600) },
  });
  const id = await request('instance id', '/latest/meta-data/instance-id', {
    method: 'GET',
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  if (!INSTANCE_ID.test(id)) {
    throw new ImdsError(`the EC2 instance metadata service answered an unexpected instance id: ${JSON.stringify(id.slice(0, 40))}`, 'fatal', 200);
  }
  return id;
}
