/*
 * What any AWS SDK v3 failure says about itself, shared by the EC2 and SQS modules: the AWS
 * error code (the exception's `name`), whether AWS called it its own fault, and the codes that
 * mean "slow down" or "try again" whatever the service.
 */

// Throttling, across services (EC2's "Request throttling for the Amazon EC2 API" recommends
// exponential backoff; SQS answers RequestThrottled / ThrottlingException / KmsThrottled).
// https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
export const AWS_THROTTLED = new Set([
  'RequestLimitExceeded',
  'ThrottlingException',
  'Throttling',
  'RequestThrottled',
  'RequestThrottledException',
  'EC2ThrottledException',
  'TooManyRequestsException',
  'BandwidthLimitExceeded',
  'KmsThrottled',
  'AWS.SimpleQueueService.RequestThrottled',
]);

// Server-side errors (EC2's errors-overview.html#api-error-codes-table-server) and Node network
// failures: the request may not have been processed, and every call spillway retries is
// idempotent (RunInstances by its ClientToken; an SQS receive only hides messages for a while).
export const AWS_TRANSIENT = new Set([
  'InternalError',
  'InternalFailure',
  'ServiceUnavailable',
  'Unavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'RequestExpired',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** The AWS error code of a failed SDK call (`name`), or Node's network error code. */
export function awsErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: unknown; code?: unknown; Code?: unknown };
  // Node network errors carry `code` (ECONNRESET) while `name` is just "Error".
  if (typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
  if (typeof e.Code === 'string') return e.Code;
  if (typeof e.name === 'string' && e.name !== 'Error') return e.name;
  return undefined;
}

/** Whether AWS said the failure was its own (HTTP 5xx). */
export function isServerFault(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { $fault?: unknown }).$fault === 'server';
}


/**
 * Told of each failed AWS request (every try, aborted ones excepted): which service and action,
 * the AWS error code (`unknown` when there is none) and what spillway made of it. The
 * composition root counts them; the provisioner stays free of any metrics library.
 */
export type AwsErrorObserver = (e: { service: 'ec2' | 'sqs'; action: string; code: string; disposition: 'retry' | 'fatal' }) => void;
