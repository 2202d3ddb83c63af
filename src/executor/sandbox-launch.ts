import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import type { Logger } from '../lib';
import { launchAs, type BuildIdentity } from './build-identity';
import { BUILD_NICE, type Enforcement, type Isolation, type IsolationKind, type LimitGroup, type ResourceLimits } from './limits';

/** What a run's limits came to: requested, and by what (if anything) each one is enforced. */
export interface LimitsReport {
  /** The isolation the machine offers; `none` also when no isolation was given to the runner. */
  mechanism: IsolationKind;
  requested: ResourceLimits;
  /** Limits the kernel enforces through the build's cgroup. */
  cgroup: Enforcement;
  /** Limits only approximated by rlimits (memory: RLIMIT_AS; pids: RLIMIT_NPROC, per user). */
  rlimit: { memory: boolean; pids: boolean };
  /** The build's `oom_score_adj`, or null when it could not be raised. */
  oomScoreAdj: number | null;
  /** One line for humans, e.g. "cgroup-v1: memory 64 MiB, pids 20; cpu not enforced". */
  note: string;
}

/** The command to spawn for a confined build, the group it joins, and what is enforced. */
export interface SandboxLaunch {
  file: string;
  args: string[];
  /** Set when the wrapper itself must start as the build user (no setpriv to switch later). */
  uid?: number;
  gid?: number;
  group: LimitGroup | undefined;
  report: LimitsReport;
}

/** Makes the kernel's OOM killer pick the build over the agent (1000 is the maximum). */
const BUILD_OOM_SCORE_ADJ = 1000;
/** The wrapper's own exit status when it cannot confine the build (the build never starts). */
const SANDBOX_FAILED_EXIT = 125;

/**
 * The wrapper runs as the build's first process. It joins the cgroups and sets
 * oom_score_adj and rlimits on itself, then execs the build: the pid stays the same, so the
 * build is confined before it can run or fork anything. Writing the pid from the agent
 * after spawn would leave a window in which early children stay outside the limits.
 * Arguments: N, N cgroup.procs files, oom_score_adj or -, address-space KiB or -, argv.
 */
const WRAPPER = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  `  echo $$ >"$1" || { echo "spillway: cannot join cgroup $1" >&2; exit ${SANDBOX_FAILED_EXIT}; }`,
  '  shift; n=$((n - 1))',
  'done',
  `if [ "$1" != - ]; then echo "$1" >/proc/$$/oom_score_adj || { echo "spillway: cannot set oom_score_adj" >&2; exit ${SANDBOX_FAILED_EXIT}; }; fi`,
  `if [ "$2" != - ]; then ulimit -v "$2" || { echo "spillway: cannot set address-space limit" >&2; exit ${SANDBOX_FAILED_EXIT}; }; fi`,
  'shift 2',
  'exec "$@"',
].join('\n');

/**
 * Creates the build's group (when limits are asked for) and the wrapper command. A group
 * that cannot be created is logged and replaced by rlimits, and the report says so.
 */
export async function prepareSandbox(
  argv: string[],
  limits: ResourceLimits,
  isolation: Isolation,
  log: Logger | undefined,
  identity?: BuildIdentity,
): Promise<SandboxLaunch> {
  let group: LimitGroup | undefined;
  let groupProblem: string | undefined;
  const wantsAny = limits.cpus !== undefined || limits.memoryMb !== undefined || limits.pids !== undefined || isolation.buildsCpu !== undefined;
  if (wantsAny && isolation.kind !== 'none') {
    try {
      group = await isolation.create(`run-${process.pid}-${randomBytes(6).toString('hex')}`, limits);
    } catch (err) {
      groupProblem = err instanceof Error ? err.message : String(err);
      log?.warn('executor.group-failed', { kind: isolation.kind, error: groupProblem });
    }
  }
  const cgroup: Enforcement = group ? { ...group.enforced } : { cpu: false, memory: false, pids: false };
  const rlimit = {
    memory: limits.memoryMb !== undefined && !cgroup.memory,
    pids: limits.pids !== undefined && !cgroup.pids && isolation.nprocRlimit,
  };
  let build = argv;
  if (rlimit.pids && isolation.prlimit) build = [isolation.prlimit, `--nproc=${Math.floor(limits.pids as number)}`, '--', ...argv];
  if (isolation.nice) build = [isolation.nice, '-n', String(BUILD_NICE), '--', ...build];
  // The wrapper joins the cgroups with the agent's rights; the build user takes over after it.
  const as = launchAs(identity, build, true);
  const asKiB = rlimit.memory ? String(Math.round((limits.memoryMb as number) * 1024)) : '-';
  const procs = group?.procsFiles ?? [];
  const report: LimitsReport = {
    mechanism: isolation.kind,
    requested: { ...limits },
    cgroup,
    rlimit,
    oomScoreAdj: isolation.oomScoreAdj ? BUILD_OOM_SCORE_ADJ : null,
    note: describeLimits(isolation.kind, limits, cgroup, rlimit, groupProblem),
  };
  return {
    file: '/bin/sh',
    args: ['-c', WRAPPER, 'spillway-sandbox', String(procs.length), ...procs, isolation.oomScoreAdj ? String(BUILD_OOM_SCORE_ADJ) : '-', asKiB, ...as.argv],
    ...(as.uid !== undefined && { uid: as.uid }),
    ...(as.gid !== undefined && { gid: as.gid }),
    group,
    report,
  };
}

/** The report of a run given limits but no isolation: nothing is enforced, and it says so. */
export function unenforcedReport(limits: ResourceLimits): LimitsReport {
  const none = { cpu: false, memory: false, pids: false };
  return {
    mechanism: 'none',
    requested: { ...limits },
    cgroup: none,
    rlimit: { memory: false, pids: false },
    oomScoreAdj: null,
    note: 'no isolation configured: no limit enforced (timeout only)',
  };
}

function describeLimits(
  kind: IsolationKind,
  limits: ResourceLimits,
  cgroup: Enforcement,
  rlimit: { memory: boolean; pids: boolean },
  groupProblem: string | undefined,
): string {
  const inForce: string[] = [];
  const approx: string[] = [];
  const not: string[] = [];
  if (limits.cpus !== undefined) (cgroup.cpu ? inForce : not).push(`cpu ${limits.cpus}`);
  if (limits.memoryMb !== undefined) {
    if (cgroup.memory) inForce.push(`memory ${limits.memoryMb} MiB`);
    else approx.push(`memory ${limits.memoryMb} MiB as RLIMIT_AS`);
  }
  if (limits.pids !== undefined) {
    if (cgroup.pids) inForce.push(`pids ${limits.pids}`);
    else if (rlimit.pids) approx.push(`pids ${limits.pids} as RLIMIT_NPROC (per user)`);
    else not.push(`pids ${limits.pids}`);
  }
  const parts: string[] = [];
  if (groupProblem) parts.push(`cgroup creation failed (${groupProblem})`);
  else if (kind === 'none') parts.push('cgroups not available: not enforced by cgroups');
  if (inForce.length) parts.push(`${kind}: ${inForce.join(', ')}`);
  if (approx.length) parts.push(`rlimit: ${approx.join(', ')}`);
  if (not.length) parts.push(`not enforced: ${not.join(', ')}`);
  if (!inForce.length && !approx.length && !not.length) parts.push('no limits requested');
  return parts.join('; ');
}

/**
 * Whether `program` can be executed with the build's PATH: the wrapper would turn a missing
 * program into exit 127, and the runner's contract is an `error` result for that.
 */
export function programExists(program: string, env: Record<string, string>, cwd: string): boolean {
  const candidates = program.includes('/') ? [resolve(cwd, program)] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, program));
  return candidates.some((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
