import { equalJitterDelay, type BackoffPolicy, type Clock, type Logger } from '../lib';
import { ProviderError, type LaunchRequest, type Machine, type Provider, type SuspendMode, type SuspendOutcome } from './provider';

/** How long a pool leaves its provider alone after failed calls: 5 s doubling up to 2 min. */
export const DEFAULT_PROVIDER_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ baseMs: 5000, maxMs: 120_000 });

export interface BackoffProviderDeps {
  pool: string;
  provider: Provider;
  clock: Clock;
  log: Logger;
  policy?: Partial<BackoffPolicy>;
  /** Jitter source in [0, 1). @defaultValue Math.random */
  random?: () => number;
}

/**
 * A pool's provider behind a backoff that spans the provisioner's steps. The EC2 retrier only
 * rides out a burst within one call; when the API stays throttled or down for minutes, every
 * step would otherwise start over and call it again each tick. After a call fails in a way that
 * waiting can fix (`disposition: 'retry'`), no call goes out until {@link readyAt}, and the
 * pause grows with each failed step; the first successful call resets it. Calls made while
 * paused fail at once with code `BackingOff` and do not count as failures.
 */
export class BackoffProvider implements Provider {
  readonly kind: Provider['kind'];
  private readonly policy: Readonly<BackoffPolicy>;
  private readonly random: () => number;
  private failures = 0;
  private until = 0;

  constructor(private readonly d: BackoffProviderDeps) {
    this.kind = d.provider.kind;
    this.policy = { ...DEFAULT_PROVIDER_BACKOFF, ...d.policy };
    this.random = d.random ?? Math.random;
    const inner = d.provider;
    if (inner.launched) this.launched = (tokens, signal) => this.call('launched', signal, () => inner.launched!(tokens, signal));
  }

  /** When the provider may be called again (in the past when it may be called now). */
  get readyAt(): number {
    return this.until;
  }

  setup(signal: AbortSignal): Promise<void> {
    return this.call('setup', signal, () => this.d.provider.setup(signal));
  }

  list(signal: AbortSignal): Promise<Machine[]> {
    return this.call('list', signal, () => this.d.provider.list(signal));
  }

  start(ids: readonly string[], signal: AbortSignal): Promise<void> {
    return this.call('start', signal, () => this.d.provider.start(ids, signal));
  }

  suspend(ids: readonly string[], mode: SuspendMode, signal: AbortSignal): Promise<SuspendOutcome[]> {
    return this.call('suspend', signal, () => this.d.provider.suspend(ids, mode, signal));
  }

  launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine[]> {
    return this.call('launch', signal, () => this.d.provider.launch(req, signal));
  }

  /** Present only when the wrapped provider has it. */
  readonly launched?: (clientTokens: readonly string[], signal: AbortSignal) => Promise<Map<string, Machine[]>>;

  terminate(ids: readonly string[], signal: AbortSignal): Promise<void> {
    return this.call('terminate', signal, () => this.d.provider.terminate(ids, signal));
  }

  /** Not paced: letting go of local resources needs no API call. */
  close(): Promise<void> {
    return this.d.provider.close();
  }

  private async call<T>(op: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const now = this.d.clock.now();
    if (now < this.until) {
      throw new ProviderError(`${op} not attempted: backing off for ${this.until - now} ms after ${this.failures} failed step(s)`, 'retry', 'BackingOff');
    }
    try {
      const out = await fn();
      this.failures = 0;
      this.until = 0;
      return out;
    } catch (err) {
      // An aborted call says nothing about the provider: the master is stopping, or the step
      // timed out, which already paces a hanging API.
      if (!signal.aborted && err instanceof ProviderError && err.disposition === 'retry') this.failed(op, err);
      throw err;
    }
  }

  private failed(op: string, err: ProviderError): void {
    this.failures++;
    const delayMs = equalJitterDelay(this.failures, this.policy, this.random);
    this.until = this.d.clock.now() + delayMs;
    this.d.log.warn('pool.backoff', { pool: this.d.pool, op, code: err.providerCode, failures: this.failures, delayMs, error: err.message });
  }
}
