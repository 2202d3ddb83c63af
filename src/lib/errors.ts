/**
 * The error catalogue. Every error spillway raises on purpose carries a stable `code` that
 * scripts and tests can match on, and says whether the caller should retry later or give up.
 */
export type ErrorDisposition = 'retry' | 'fatal';

export abstract class SpillwayError extends Error {
  abstract readonly code: string;
  abstract readonly disposition: ErrorDisposition;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The configuration file or an override is invalid; `problems` lists every one found. */
export class ConfigError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CONFIG';
  readonly disposition = 'fatal';
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration in ${source}:\n  ${problems.join('\n  ')}`);
  }
}

/** A request to the HTTP API was malformed or named something that does not exist. */
export class BadRequestError extends SpillwayError {
  readonly code = 'SPILLWAY_E_BAD_REQUEST';
  readonly disposition = 'fatal';
}

export class NotFoundError extends SpillwayError {
  readonly code = 'SPILLWAY_E_NOT_FOUND';
  readonly disposition = 'fatal';
}

/** The master could not be reached or answered with a server error; try again later. */
export class MasterUnavailableError extends SpillwayError {
  readonly code = 'SPILLWAY_E_MASTER_UNAVAILABLE';
  readonly disposition = 'retry';
}

/** The request names something that exists already in another form (a job id reused with another payload). */
export class ConflictError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CONFLICT';
  readonly disposition = 'fatal';
}

/** The master is up but cannot reach its Redis (or Redis did not answer in time); try again later. */
export class RedisUnavailableError extends SpillwayError {
  readonly code = 'SPILLWAY_E_REDIS_UNAVAILABLE';
  readonly disposition = 'retry';
}

/** The job has finished (completed, failed or cancelled): it cannot be cancelled any more. */
export class JobFinishedError extends SpillwayError {
  readonly code = 'SPILLWAY_E_JOB_FINISHED';
  readonly disposition = 'fatal';
}

/** The job is still waiting or running: it cannot be retried until it has finished (or been cancelled). */
export class JobNotFinishedError extends SpillwayError {
  readonly code = 'SPILLWAY_E_JOB_NOT_FINISHED';
  readonly disposition = 'fatal';
}

/** A load trace for `spillway simulate` is malformed; `problems` name their lines. */
export class TraceError extends SpillwayError {
  readonly code = 'SPILLWAY_E_TRACE';
  readonly disposition = 'fatal';
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid trace ${source}:\n  ${problems.join('\n  ')}`);
  }
}
