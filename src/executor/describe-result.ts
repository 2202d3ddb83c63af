import type { RunResult } from './process-runner';

/**
 * One line saying how a run ended: "exited 2", "killed by signal SIGKILL", "timed out after
 * 1.5 s", "out of memory (limit 64 MiB)", "could not start: ...". An OOM kill wins over the
 * rest: it explains the signal or exit status that follows from it.
 */
export function describeResult(r: RunResult): string {
  if (r.error !== undefined) return `could not start: ${r.error}`;
  if (r.oomKilled) {
    const limit = r.limits?.cgroup.memory && r.limits.requested.memoryMb !== undefined ? ` (limit ${r.limits.requested.memoryMb} MiB)` : '';
    // The killed process may have been a child (a compiler under make): say how the build ended too.
    return r.exitCode !== null ? `out of memory${limit}, exited ${r.exitCode}` : `out of memory${limit}`;
  }
  if (r.timedOut) return `timed out after ${formatDuration(r.timeoutMs ?? r.finishedAt - r.startedAt)}`;
  if (r.signal !== null) return `killed by signal ${r.signal}`;
  if (r.exitCode !== null) return `exited ${r.exitCode}`;
  return 'ended without a status';
}

/** "250 ms", "1.5 s", "12 min 5 s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  const min = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return s ? `${min} min ${s} s` : `${min} min`;
}
