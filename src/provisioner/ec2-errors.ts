import { equalJitterDelay, type Clock, type Logger } from '../lib';
import { AWS_THROTTLED, AWS_TRANSIENT, awsErrorCode, isServerFault, type AwsErrorObserver } from './aws-errors';
import { ProviderError } from './provider';

/*
 * EC2 error codes, sorted once. The SDK's EC2 (ec2 query) protocol models no error shapes, so
 * every failure arrives as an EC2ServiceException whose `name` is the AWS error code
 * (`RequestLimitExceeded`, `InvalidInstanceID.NotFound`, ...) and whose `$fault` is
 * `client` (HTTP 4xx) or `server` (5xx).
 *
 * Reference: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
 *   common client errors ........ #CommonErrors
 *   client errors per action .... #api-error-codes-table-client
 *   server errors ............... #api-error-codes-table-server
 */

/**
 * What an EC2 error means for the caller.
 * - `throttled`: the account's API rate is exhausted; retried here with backoff.
 * - `transient`: a server or network hiccup; retried here with backoff.
 * - `capacity`: no capacity for this instance type in this subnet's zone; try another
 *   subnet/type, or later.
 * - `spot-capacity`: spot specifically is unavailable (price, spot quota); on-demand may work.
 * - `quota`: an account-wide limit (instances, vCPUs); no other subnet or type helps now.
 * - `state`: the instance is in the wrong state for the call (e.g. starting a `stopping` one).
 * - `not-found`: the named instance does not exist (any more).
 * - `hibernation-unsupported`: StopInstances with `Hibernate` was refused for the instance.
 * - `aborted`: the caller's AbortSignal fired.
 * - `fatal`: configuration or permission problems; retrying cannot help.
 */
export type Ec2ErrorKind =
  | 'throttled'
  | 'transient'
  | 'capacity'
  | 'spot-capacity'
  | 'quota'
  | 'state'
  | 'not-found'
  | 'hibernation-unsupported'
  | 'aborted'
  | 'fatal';

/** An EC2 error as spillway sees it. */
export interface Ec2ErrorClass {
  kind: Ec2ErrorKind;
  disposition: 'retry' | 'fatal';
  /** The AWS error code (or Node's network error code), when there is one. */
  code: string | undefined;
  message: string;
}

// No capacity for this (instance type, availability zone), or the subnet has no free address:
// another subnet or type may work now, the same one later. `Unsupported` is EC2's answer for an
// instance type not offered in the subnet's zone, so it too means "try elsewhere".
const CAPACITY = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientHostCapacity',
  'InsufficientReservedInstanceCapacity',
  'InsufficientCapacity',
  'UnfulfillableCapacity',
  'InsufficientFreeAddressesInSubnet',
  'Unsupported',
]);

// Spot-only refusals: the spot price cap is under the market, or the spot vCPU quota is used up.
// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html
const SPOT_CAPACITY = new Set(['SpotMaxPriceTooLow', 'MaxSpotInstanceCountExceeded']);

// Account quotas and account states that clear with time (instances of other pools terminate,
// verification finishes): retry later, not in a loop.
const QUOTA = new Set([
  'InstanceLimitExceeded',
  'VcpuLimitExceeded',
  'PendingVerification',
  'ResourceLimitExceeded',
]);

const STATE = new Set(['IncorrectInstanceState', 'IncorrectState', 'IncorrectSpotRequestState']);

const NOT_FOUND = new Set(['InvalidInstanceID.NotFound']);

// StopInstances with Hibernate=true on an instance not launched with hibernation enabled, or not
// ready to hibernate yet (the first minutes after launch), or that cannot be hibernated at all.
// AWS's own Instance Scheduler falls back to a plain stop on these two codes.
const HIBERNATION_UNSUPPORTED = new Set(['UnsupportedHibernationConfiguration', 'UnsupportedOperation']);

/** Sorts any error thrown by an EC2 call into what the caller should do about it. */
export function classifyEc2Error(err: unknown, signal?: AbortSignal): Ec2ErrorClass {
  const code = awsErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  const is = (kind: Ec2ErrorKind, disposition: 'retry' | 'fatal'): Ec2ErrorClass => ({ kind, disposition, code, message });
  if (signal?.aborted || code === 'AbortError') return is('aborted', 'retry');
  if (code === undefined) return is(isServerFault(err) ? 'transient' : 'fatal', isServerFault(err) ? 'retry' : 'fatal');
  if (AWS_THROTTLED.has(code)) return is('throttled', 'retry');
  if (AWS_TRANSIENT.has(code)) return is('transient', 'retry');
  if (CAPACITY.has(code)) return is('capacity', code === 'Unsupported' ? 'fatal' : 'retry');
  if (SPOT_CAPACITY.has(code)) return is('spot-capacity', 'retry');
  if (QUOTA.has(code)) return is('quota', 'retry');
  if (STATE.has(code)) return is('state', 'retry');
  if (NOT_FOUND.has(code)) return is('not-found', 'fatal');
  if (HIBERNATION_UNSUPPORTED.has(code)) return is('hibernation-unsupported', 'fatal');
  // Everything else (UnauthorizedOperation, AuthFailure, InvalidParameterValue,
  // InvalidLaunchTemplateId.NotFound, InvalidSubnetID.NotFound, IdempotentParameterMismatch, ...)
  // is a configuration or permission problem, unless EC2 itself said it was its fault.
  return isServerFault(err) ? is('transient', 'retry') : is('fatal', 'fatal');
}

/** Wraps an EC2 failure in the provider contract's error, keeping the AWS code and the cause. */
export function toProviderError(err: unknown, action: string, signal?: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err;
  const c = classifyEc2Error(err, signal);
  const what = c.kind === 'aborted' ? 'aborted' : `${c.code ?? 'error'}: ${c.message}`;
  return new ProviderError(`EC2 ${action} failed (${what})`, c.disposition, c.kind === 'aborted' ? undefined : c.code, { cause: err });
}

/** How hard to retry throttled and transient EC2 calls. */
export interface Ec2RetryPolicy {
  /** Tries per call, the first included. @defaultValue 5 */
  attempts: number;
  /** Ceiling of the first backoff; doubles per retry. @defaultValue 1000 */
  baseDelayMs: number;
  /** Largest backoff. @defaultValue 20000 */
  maxDelayMs: number;
}

/** 5 tries over roughly 7–15 s: long enough to ride out a burst of throttling. */
const DEFAULT_EC2_RETRY: Readonly<Ec2RetryPolicy> = Object.freeze({ attempts: 5, baseDelayMs: 1000, maxDelayMs: 20_000 });

/** Dependencies of {@link Ec2Retrier}. */
export interface Ec2RetrierDeps {
  clock: Clock;
  log?: Logger;
  policy?: Partial<Ec2RetryPolicy>;
  /** Source of jitter in [0, 1). @defaultValue Math.random */
  random?: () => number;
  /** Told of every failed try, as sorted here. */
  onError?: AwsErrorObserver;
  /** Told of every retry about to be made (after its pause is chosen), for the retry counter. */
  onRetry?: AwsRetryObserver;
}

/** A retry of one AWS action after the error `code`: the composition root counts them. */
export type AwsRetryObserver = (e: { service: 'ec2'; action: string; code: string }) => void;

/**
 * Retries one EC2 call while it is throttled or transiently failing: exponential backoff with
 * "equal jitter" (half the ceiling fixed, half random), sleeping on the injected clock so tests
 * never wait. Other errors are rethrown at once, unchanged, for the caller to classify.
 */
export class Ec2Retrier {
  readonly policy: Readonly<Ec2RetryPolicy>;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly random: () => number;
  private readonly onError: AwsErrorObserver | undefined;
  private readonly onRetry: AwsRetryObserver | undefined;

  constructor(deps: Ec2RetrierDeps) {
    this.onError = deps.onError;
    this.onRetry = deps.onRetry;
    this.policy = { ...DEFAULT_EC2_RETRY, ...deps.policy };
    this.clock = deps.clock;
    this.log = deps.log;
    this.random = deps.random ?? Math.random;
  }

  /** The pause before retry number `retry` (1-based). */
  delay(retry: number): number {
    return equalJitterDelay(retry, { baseMs: this.policy.baseDelayMs, maxMs: this.policy.maxDelayMs }, this.random);
  }

  /** Runs `call`, retrying throttled/transient failures; `action` names the EC2 action in logs. */
  async run<T>(action: string, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const c = classifyEc2Error(err, signal);
        if (c.kind !== 'aborted') this.onError?.({ service: 'ec2', action, code: c.code ?? 'unknown', disposition: c.disposition });
        const retryable = c.kind === 'throttled' || c.kind === 'transient';
        if (!retryable || attempt >= this.policy.attempts) throw err;
        const delayMs = this.delay(attempt);
        // The only retries of an EC2 request (the SDK's own are off, createEc2Client): each is logged and counted.
        this.log?.warn(c.kind === 'throttled' ? 'ec2.throttled' : 'ec2.retrying', { action, code: c.code, attempt, delayMs });
        this.onRetry?.({ service: 'ec2', action, code: c.code ?? 'unknown' });
        await this.clock.sleep(delayMs, signal);
      }
    }
  }
}
