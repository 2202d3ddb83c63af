import type { Clock } from '../lib';

/** How many mutating EC2 requests may go out at once, and how fast that allowance comes back. */
export interface Ec2RequestRate {
  /** Requests allowed in a burst (the bucket's size). */
  burst: number;
  /** Requests earned back per second (the bucket's refill rate). */
  perSecond: number;
}

/**
 * EC2 throttles each account per region with token buckets; the documented bucket of the
 * "mutating actions" class (StartInstances, StopInstances, TerminateInstances, ...) holds 200
 * tokens refilled at 5 per second
 * (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, "Request token
 * bucket sizes and refill rates"). Spending no faster than that here keeps a burst of
 * suspensions from being answered with RequestLimitExceeded and retried.
 */
export const EC2_MUTATING_RATE: Readonly<Ec2RequestRate> = Object.freeze({ burst: 200, perSecond: 5 });

/**
 * A token bucket in front of one account+region's mutating EC2 requests, shared by every pool
 * of that region (the composition root makes one per client). `take()` waits on the injected
 * clock until a token is there, so callers queue instead of failing; every try of a request,
 * retries included, takes one, since EC2 counts each.
 */
export class Ec2RequestBucket {
  private tokens: number;
  private at: number;
  /** Serialises waiters so tokens go out in the order they were asked for. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly rate: Readonly<Ec2RequestRate>,
    private readonly clock: Clock,
  ) {
    this.tokens = rate.burst;
    this.at = clock.now();
  }

  /** Resolves once a token has been taken; rejects with the signal's reason if aborted first. */
  take(signal: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.takeNow(signal));
    // A waiter that was aborted must not hold up the ones behind it.
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async takeNow(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      this.refill();
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await this.clock.sleep(Math.ceil(((1 - this.tokens) * 1000) / this.rate.perSecond), signal);
    }
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.at) * this.rate.perSecond) / 1000);
    this.at = now;
  }
}
