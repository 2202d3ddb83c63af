import { SpillwayError } from '../lib';
import type { RunResult } from './process-runner';

/** Where in an action's life something failed. */
export type ActionStage = 'inputs' | 'run' | 'outputs' | 'upload';

/**
 * An action failed for a reason that is not its command's exit: its inputs could not be
 * materialized (a missing blob, a hostile or oversized tree), its command could not be
 * spawned, its outputs could not be collected, or its results could not be stored. `run` is
 * set when the command did run, so the caller can still report how it ended.
 */
export class ActionFailure extends SpillwayError {
  readonly code = 'SPILLWAY_E_ACTION_FAILED';
  readonly disposition = 'fatal';
  constructor(
    readonly stage: ActionStage,
    message: string,
    readonly run: RunResult | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Wraps whatever `step` throws as the failure of `stage`; an ActionFailure passes through. */
export async function atStage<T>(stage: ActionStage, what: string, run: RunResult | undefined, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof ActionFailure) throw err;
    throw new ActionFailure(stage, `${what}: ${err instanceof Error ? err.message : String(err)}`, run, { cause: err });
  }
}
