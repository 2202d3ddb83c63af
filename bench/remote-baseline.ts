/**
 * Pieces of bench/remote.ts for a same-run comparison: a second master built from another
 * checkout's dist/ (BENCH_BASE_DIST, e.g. the unchanged main) in this process, and the Bazel
 * server's own CPU time per build (its /proc), so the part of a cached build that is Bazel's
 * gRPC client shows next to the master's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Daemon } from '../src/cli/daemon';
import type { parseConfig } from '../src/config';
import type { createLogger } from '../src/lib';

/** CPU time in ms (user + system) the process `pid` has used so far; NaN when it cannot be read. */
export function processCpuMs(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) is not reachable from Node). */
const CLOCK_TICKS = 100;

interface BaseModules {
  startDaemon: (o: { config: ReturnType<typeof parseConfig>; log: ReturnType<typeof createLogger> }) => Promise<Daemon>;
  parseConfig: typeof parseConfig;
  createLogger: typeof createLogger;
}

/**
 * A master from `dist` (another build of this repository), configured by `raw`, in this
 * process: its modules are a separate copy, so nothing is shared with ours but the process.
 */
export async function startBaseDaemon(dist: string, raw: Record<string, unknown>): Promise<Daemon> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const m = {
    ...(require(join(dist, 'src/cli/daemon.js')) as Pick<BaseModules, 'startDaemon'>),
    ...(require(join(dist, 'src/config/index.js')) as Pick<BaseModules, 'parseConfig'>),
    ...(require(join(dist, 'src/lib/index.js')) as Pick<BaseModules, 'createLogger'>),
  };
  return m.startDaemon({ config: m.parseConfig(raw, {}), log: m.createLogger({ level: 'warn', silent: true }) });
}
