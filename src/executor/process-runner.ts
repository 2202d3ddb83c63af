import * as child_process from 'node:child_process';
import { statSync } from 'node:fs';
import { setPriority } from 'node:os';
import { isAbsolute } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { systemClock, type Clock, type Logger } from '../lib';
import { launchAs, type BuildIdentity } from './build-identity';
import type { DiskGuard } from './disk-limit';
import { BUILD_NICE, type Isolation, type LimitGroup, type ResourceLimits } from './limits';
import { signalMembers } from './cgroup-fs';
import { groupGone, signalGroup } from './process-group';
import { prepareSandbox, programExists, unenforcedReport, type LimitsReport } from './sandbox-launch';

/** What to run, where, and for how long. Exactly one of `argv` or `shell`. */
export interface RunSpec {
  /** Program and arguments, run directly (PATH lookup uses the child's env). */
  argv?: string[];
  /** A command line for `/bin/sh -c`. */
  shell?: string;
  /** The environment the build starts from (the agent's own, minus its secrets). @defaultValue `{}` */
  baseEnv?: Record<string, string>;
  /** Merged over `baseEnv`. */
  env?: Record<string, string>;
  /** Absolute path of an existing directory. */
  cwd: string;
  timeoutMs: number;
  /** Between SIGTERM and SIGKILL to the process group. @defaultValue 5000 */
  killGraceMs?: number;
  /** CPU, memory and pids limits; enforced only as far as `deps.isolation` allows (see `RunResult.limits`). */
  limits?: ResourceLimits;
  /** The work dir's disk limit (from `DiskLimits.limit`): the run is killed once it is exceeded. */
  disk?: DiskGuard;
}

export type OutputStream = 'stdout' | 'stderr';

/**
 * What happened to one run. Deliberately the same shape as the protocol's `BuildResult`
 * (the executor sits below protocol in the layering, so it cannot import it).
 */
export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Set when the command could not be started at all (ENOENT, bad cwd...). */
  error?: string;
  /** The timeout that ended the run, when `timedOut`. */
  timeoutMs?: number;
  /** True when the kernel's OOM killer killed a process of the build (cgroup memory limit). */
  oomKilled?: boolean;
  /** The disk limit (MiB) the work dir reached, when that ended the run (or it ended at it). */
  diskLimitMb?: number;
  /** What limits were requested and which were in force; absent when none were requested and no isolation was given. */
  limits?: LimitsReport;
  startedAt: number;
  finishedAt: number;
}

export interface RunHandle {
  /**
   * Undefined when the command could not be spawned, and, for a confined run, until its
   * cgroup exists and the command is spawned (a few milliseconds after `runProcess` returns).
   */
  readonly pid: number | undefined;
  /** Settles once the process and everything it started are gone; never rejects. */
  readonly result: Promise<RunResult>;
  /** Terminates the whole process group (SIGTERM, then SIGKILL after the grace period). */
  cancel(reason: string): void;
}

export interface RunDeps {
  spawn?: typeof child_process.spawn;
  /** @defaultValue Date.now, or `clock.now` when a clock is given */
  now?: () => number;
  /** Drives the timeout, the kill grace and the pipe drain, so tests need no real waits. @defaultValue systemClock */
  clock?: Clock;
  /**
   * How builds are confined (from `detectIsolation`, once per agent). With it every run
   * raises its `oom_score_adj` and gets `spec.limits` through cgroups or rlimits; without it
   * limits are not enforced, and the result says so.
   */
  isolation?: Isolation;
  /** Receives `executor.group-failed` / `executor.group-cleanup-failed`. */
  log?: Logger;
  /** Who the build runs as (from `detectBuildIdentity`, once per agent). @defaultValue the agent's own user */
  identity?: BuildIdentity;
}

const DEFAULT_KILL_GRACE_MS = 5000;

/**
 * Runs one command in its own process group and streams its output. When the command ends
 * (normally, by timeout or cancel) the rest of its group is terminated too, so a build never
 * leaves background processes behind on the machine.
 */
export function runProcess(
  spec: RunSpec,
  onOutput: (stream: OutputStream, chunk: string) => void,
  deps: RunDeps = {},
): RunHandle {
  const clock = deps.clock ?? systemClock;
  const now = deps.now ?? (() => clock.now());
  const spawn = deps.spawn ?? child_process.spawn;
  const startedAt = now();
  const failed = (error: string): RunHandle => ({
    pid: undefined,
    result: Promise.resolve({ exitCode: null, signal: null, timedOut: false, error, startedAt, finishedAt: now() }),
    cancel: () => undefined,
  });

  const problem = checkSpec(spec);
  if (problem) return failed(problem);
  const argv = spec.shell !== undefined ? ['/bin/sh', '-c', spec.shell] : (spec.argv as string[]);
  const isolation = deps.isolation;
  if (!isolation) {
    const as = launchAs(deps.identity, argv);
    return supervise(as.argv, spec, onOutput, {
      spawn,
      clock,
      now,
      startedAt,
      renice: true,
      ...(as.uid !== undefined && { uid: as.uid }),
      ...(as.gid !== undefined && { gid: as.gid }),
      ...(spec.limits && { report: unenforcedReport(spec.limits) }),
    });
  }
  if (!programExists(argv[0] as string, { ...spec.baseEnv, ...spec.env }, spec.cwd)) return failed(`spawn ${argv[0]} ENOENT`);

  // Creating the cgroup is asynchronous; the handle is returned at once and the spawn follows.
  let inner: RunHandle | undefined;
  let cancelled: string | undefined;
  const start = async (): Promise<RunResult> => {
    const launch = await prepareSandbox(argv, spec.limits ?? {}, isolation, deps.log, deps.identity);
    const base = { exitCode: null, signal: null, timedOut: false, startedAt, limits: launch.report };
    if (cancelled !== undefined) {
      await launch.group?.destroy().catch(() => undefined);
      return { ...base, error: `cancelled before start: ${cancelled}`, finishedAt: now() };
    }
    inner = supervise([launch.file, ...launch.args], spec, onOutput, {
      spawn,
      clock,
      now,
      startedAt,
      report: launch.report,
      ...(launch.uid !== undefined && { uid: launch.uid }),
      ...(launch.gid !== undefined && { gid: launch.gid }),
      ...(launch.group && { group: launch.group }),
      ...(deps.log && { log: deps.log }),
    });
    return inner.result;
  };
  const result = start().catch((err: unknown) => ({
    exitCode: null,
    signal: null,
    timedOut: false,
    error: err instanceof Error ? err.message : String(err),
    startedAt,
    finishedAt: now(),
  }));
  return {
    get pid() {
      return inner?.pid;
    },
    result,
    cancel: (reason) => {
      if (inner) inner.cancel(reason);
      else cancelled ??= reason;
    },
  };
}

interface SuperviseContext {
  spawn: typeof child_process.spawn;
  clock: Clock;
  now: () => number;
  startedAt: number;
  group?: LimitGroup;
  report?: LimitsReport;
  log?: Logger;
  uid?: number;
  gid?: number;
  /** Lower the build's priority after spawning it (the sandbox wrapper does it before, through nice). */
  renice?: boolean;
}

/** Spawns `argv` in a new process group and watches it until it and its group are gone. */
function supervise(
  argv: string[],
  spec: RunSpec,
  onOutput: (stream: OutputStream, chunk: string) => void,
  ctx: SuperviseContext,
): RunHandle {
  const { spawn, now, startedAt, group } = ctx;
  const report = ctx.report && spec.disk ? withDiskNote(ctx.report, spec.disk) : ctx.report;
  /** A timer on the injected clock; returns its cancel. */
  const after = (ms: number, fn: () => void): Timer => {
    const abort = new AbortController();
    ctx.clock.sleep(ms, abort.signal).then(fn, () => undefined);
    return abort;
  };
  const failed = (error: string): RunHandle => ({
    pid: undefined,
    result: (async (): Promise<RunResult> => {
      await group?.destroy().catch(() => undefined);
      return { exitCode: null, signal: null, timedOut: false, error, startedAt, finishedAt: now(), ...(report && { limits: report }) };
    })(),
    cancel: () => undefined,
  });
  const [file, ...args] = argv;
  const killGraceMs = spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS;

  let child: child_process.ChildProcess;
  try {
    child = spawn(file as string, args, {
      cwd: spec.cwd,
      env: { ...spec.baseEnv, ...spec.env },
      // A group of its own lets us signal the build's whole process tree at once.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(ctx.uid !== undefined && { uid: ctx.uid }),
      ...(ctx.gid !== undefined && { gid: ctx.gid }),
    });
  } catch (err) {
    return failed(err instanceof Error ? err.message : String(err));
  }
  const pid = child.pid;
  // Best effort: a child forked in the instant before this keeps the agent's priority.
  if (ctx.renice && pid !== undefined) {
    try {
      setPriority(pid, BUILD_NICE);
    } catch {
      // gone already
    }
  }

  let timedOut = false;
  let exit: { code: number | null; signal: string | null } | undefined;
  let spawnError: string | undefined;
  let openStreams = 2;
  let termTimer: Timer | undefined;
  let killTimer: Timer | undefined;
  let drainTimer: Timer | undefined;
  let settle!: (r: RunResult) => void;
  const result = new Promise<RunResult>((resolve) => (settle = resolve));

  let groupEmpty = false;
  const terminateGroup = () => {
    if (killTimer || pid === undefined || groupEmpty) return;
    const signalled = signalGroup(pid, 'SIGTERM');
    if (group) void signalMembers(group.procsFiles, 'SIGTERM');
    // With a cgroup, members may remain outside the process group: keep the SIGKILL due.
    if (!signalled && !group) {
      groupEmpty = true;
      return;
    }
    killTimer = after(killGraceMs, () => {
      signalGroup(pid, 'SIGKILL');
      if (group) void signalMembers(group.procsFiles, 'SIGKILL');
    });
  };
  let finishing = false;
  const finish = async () => {
    if (finishing) return;
    finishing = true;
    termTimer?.abort();
    killTimer?.abort();
    drainTimer?.abort();
    // Whatever survived the leader goes now, even if it let go of our pipes; the result
    // promises that nothing of the build runs any more, so wait for the kill to land.
    if (pid !== undefined && !groupEmpty && signalGroup(pid, 'SIGKILL')) await groupGone(pid, 2000, ctx.clock);
    diskAbort.abort();
    // A build that hit ENOSPC in its image, or overshot between two polls, ends at its limit too.
    if (spec.disk && !diskExceeded) diskExceeded = await spec.disk.exceeded();
    let oomKilled: boolean | undefined;
    if (group) {
      if (group.enforced.memory) oomKilled = (await group.memoryEvents().catch(() => ({ oomKills: 0 }))).oomKills > 0;
      // The cgroup also holds what left the process group (setsid, double fork): it goes here.
      await group.destroy().catch((err: unknown) => ctx.log?.warn('executor.group-cleanup-failed', { group: group.name, error: String(err) }));
    }
    settle({
      exitCode: exit?.code ?? null,
      signal: exit?.signal ?? null,
      timedOut,
      ...(timedOut && { timeoutMs: spec.timeoutMs }),
      ...(oomKilled !== undefined && { oomKilled }),
      ...(diskExceeded && spec.disk && { diskLimitMb: spec.disk.limitMb }),
      ...(spawnError !== undefined && { error: spawnError }),
      ...(report && { limits: report }),
      startedAt,
      finishedAt: now(),
    });
  };
  const maybeFinish = () => {
    if ((exit || spawnError !== undefined) && openStreams === 0) void finish();
  };

  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) {
      openStreams--;
      continue;
    }
    const decoder = new StringDecoder('utf8');
    stream.on('data', (b: Buffer) => {
      const text = decoder.write(b);
      if (text) onOutput(name, text);
    });
    stream.once('close', () => {
      const rest = decoder.end();
      if (rest) onOutput(name, rest);
      openStreams--;
      maybeFinish();
    });
  }

  child.on('error', (err) => {
    // After a successful spawn this can only be a failed child.kill(), which we never use.
    if (pid !== undefined) return;
    spawnError = err.message;
    maybeFinish();
  });
  child.once('exit', (code, signal) => {
    exit = { code, signal };
    termTimer?.abort();
    // Leftovers of the build still hold our pipes: ask them to go, then insist.
    terminateGroup();
    drainTimer = after(killGraceMs + 1000, () => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    });
    maybeFinish();
  });

  const diskAbort = new AbortController();
  let diskExceeded = false;
  const disk = spec.disk;
  if (disk && pid !== undefined) {
    void (async () => {
      while (!finishing) {
        await ctx.clock.sleep(disk.pollMs, diskAbort.signal);
        if (finishing || !(await disk.exceeded())) continue;
        diskExceeded = true;
        ctx.log?.warn('executor.disk-exceeded', { pid, limitMb: disk.limitMb, mode: disk.mode });
        // No grace: every second of it is more disk written.
        termTimer?.abort();
        signalGroup(pid, 'SIGKILL');
        if (group) void signalMembers(group.procsFiles, 'SIGKILL');
        return;
      }
    })().catch(() => undefined);
  }

  if (pid !== undefined) {
    // setTimeout (behind the system clock) fires at once for delays past 2^31-1 ms (~24.8 days).
    termTimer = after(Math.min(spec.timeoutMs, 2 ** 31 - 1), () => {
      timedOut = true;
      terminateGroup();
    });
  }

  return {
    pid,
    result,
    cancel: () => {
      if (exit) return;
      termTimer?.abort();
      terminateGroup();
    },
  };
}

type Timer = AbortController;

function withDiskNote(report: LimitsReport, disk: DiskGuard): LimitsReport {
  const how = `disk ${disk.limitMb} MiB (${disk.mode === 'loop' ? 'loop-mounted image' : `watched every ${disk.pollMs} ms`})`;
  return { ...report, note: report.note === 'no limits requested' ? how : `${report.note}; ${how}` };
}

function checkSpec(spec: RunSpec): string | undefined {
  if ((spec.argv === undefined) === (spec.shell === undefined)) return 'exactly one of argv or shell is required';
  if (spec.argv !== undefined && spec.argv.length === 0) return 'argv needs at least the program';
  if (!isAbsolute(spec.cwd)) return `cwd must be absolute: ${spec.cwd}`;
  try {
    if (!statSync(spec.cwd).isDirectory()) return `cwd is not a directory: ${spec.cwd}`;
  } catch {
    return `cwd does not exist: ${spec.cwd}`;
  }
  return undefined;
}
