import type { RunResult } from '../executor';
import type { BuildResult } from '../protocol';

/** The runner's result as the protocol carries it: its own fields only, the limits in words. */
export function toBuildResult(r: RunResult): BuildResult {
  return {
    exitCode: r.exitCode,
    signal: r.signal,
    timedOut: r.timedOut,
    ...(r.error !== undefined && { error: r.error }),
    ...(r.oomKilled && { oomKilled: true }),
    ...(r.diskLimitMb !== undefined && { diskLimitMb: r.diskLimitMb }),
    ...(r.limits && { limits: r.limits.note }),
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  };
}
