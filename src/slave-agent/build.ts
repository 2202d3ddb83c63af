import { chmod, mkdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildOwner,
  handOver,
  identityEnv,
  type BuildIdentity,
  type DiskGuard,
  type DiskLimits,
  type Isolation,
  type OutputStream,
  type RunHandle,
  type runProcess,
} from '../executor';
import type { Clock } from '../lib';
import type { ActionSupport } from './action-support';
import { toBuildResult } from './build-result-of';
import type { AssignFrame, BuildResult, HeldJob } from '../protocol';

export interface BuildDeps {
  runner: typeof runProcess;
  clock: Clock;
  /** Below which each build gets its own fresh directory. */
  workDir: string;
  baseEnv: Record<string, string>;
  killGraceMs?: number;
  onOutput: (stream: OutputStream, chunk: string) => void;
  /** Runs jobs that are actions (inputs and outputs through the CAS). */
  actions?: ActionSupport;
  /** cgroup limits and oom_score_adj for builds; without it builds run unconfined. */
  isolation?: Isolation;
  /** How a disk limit is enforced; without it `diskMb` is not enforced. */
  disk?: DiskLimits;
  /** The disk limit (MiB) when the payload names none: the job type's, else the agent's. */
  defaultDiskMb?: number;
  /** Who builds run as; a build user owns the build's directory. @defaultValue the agent's user */
  identity?: BuildIdentity;
  /** The build directory could not be removed afterwards (the build's result stands). */
  onCleanupError: (dir: string, err: unknown) => void;
  /** Something threw during the build; the build fails with the message, the agent carries on. */
  onInternalError?: (err: unknown) => void;
}

/** One assigned job on this agent: its directory, its process, its result. */
export class Build {
  readonly held: HeldJob;
  readonly attempt: number;
  readonly dir: string;
  /** Set once the master cancelled or took the build away; its result is then never sent. */
  cancelReason: string | undefined;
  /** The build's outcome, as soon as its processes are gone. Never rejects. */
  readonly result: Promise<BuildResult>;
  /** Settles after `result`, once the build directory has been removed as well. */
  readonly settled: Promise<void>;
  private handle: RunHandle | undefined;
  /** Reaches an action's run, which has no handle of its own here. */
  private readonly abort = new AbortController();
  private disk: DiskGuard | undefined;

  constructor(
    readonly assign: AssignFrame,
    private readonly deps: BuildDeps,
  ) {
    this.held = { queue: assign.queue, jobId: assign.jobId, lockToken: assign.lockToken };
    this.attempt = assign.attempt;
    this.dir = join(deps.workDir, `${safe(assign.queue)}-${safe(assign.jobId)}-${assign.attempt}`);
    this.result = this.run().catch((err: unknown) => this.failed(err));
    this.settled = this.result.then(async () => {
      // The image goes first: removing the dir's contents through a live mount would leave it behind.
      await this.disk?.release().catch((err: unknown) => deps.onCleanupError(this.dir, err));
      await removeDir(this.dir).catch((err: unknown) => deps.onCleanupError(this.dir, err));
    });
  }

  get cancelled(): boolean {
    return this.cancelReason !== undefined;
  }

  cancel(reason: string): void {
    if (this.cancelReason !== undefined) return;
    this.cancelReason = reason;
    this.abort.abort(reason);
    this.handle?.cancel(reason);
  }

  /**
   * The last resort: whatever a build's life throws (a hostile action, a full disk, a bug) is
   * that build's failure, reported to the master like any other, never the agent's crash.
   */
  private failed(err: unknown): BuildResult {
    const message = err instanceof Error ? err.message : String(err);
    this.deps.onInternalError?.(err);
    const now = this.deps.clock.now();
    return { exitCode: null, signal: null, timedOut: false, error: `agent error: ${message}`.slice(0, 4096), startedAt: now, finishedAt: now };
  }

  private async run(): Promise<BuildResult> {
    const { payload } = this.assign;
    const startedAt = this.deps.clock.now();
    const cwd = payload.cwd ? join(this.dir, payload.cwd) : this.dir;
    const diskMb = payload.resources?.diskMb ?? this.deps.defaultDiskMb;
    const limits = diskMb === undefined ? payload.resources : { ...payload.resources, diskMb };
    try {
      await freshDir(this.dir);
      if (diskMb !== undefined && this.deps.disk) this.disk = await this.deps.disk.limit(this.dir, diskMb);
      // An action's cwd comes with its input tree, materialized below.
      if (cwd !== this.dir && !payload.action) await mkdir(cwd, { recursive: true });
      const owner = buildOwner(this.deps.identity);
      if (owner) {
        // Private to the build user: other builds (same user) are kept out only by the 0711 parent.
        await chmod(this.dir, 0o700);
        await handOver(this.dir, owner);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { exitCode: null, signal: null, timedOut: false, error: `cannot create work dir: ${message}`, startedAt, finishedAt: this.deps.clock.now() };
    }
    if (this.cancelReason !== undefined) {
      return { exitCode: null, signal: null, timedOut: false, error: `cancelled before start: ${this.cancelReason}`, startedAt, finishedAt: this.deps.clock.now() };
    }
    if (payload.action) {
      if (!this.deps.actions) {
        return { exitCode: null, signal: null, timedOut: false, error: 'this agent cannot run actions', startedAt, finishedAt: this.deps.clock.now() };
      }
      return this.deps.actions.run(this.assign, this.dir, this.deps.onOutput, this.disk, this.abort.signal);
    }
    this.handle = this.deps.runner(
      {
        ...(payload.argv ? { argv: payload.argv } : { shell: payload.shell }),
        baseEnv: { ...this.deps.baseEnv, ...identityEnv(this.deps.identity, this.dir) },
        env: {
          ...payload.env,
          SPILLWAY_JOB_ID: this.assign.jobId,
          SPILLWAY_JOB_TYPE: this.assign.queue,
          SPILLWAY_ATTEMPT: String(this.assign.attempt),
        },
        cwd,
        timeoutMs: this.assign.timeoutSec * 1000,
        ...(limits && { limits }),
        ...(this.disk && { disk: this.disk }),
        ...(this.deps.killGraceMs !== undefined && { killGraceMs: this.deps.killGraceMs }),
      },
      this.deps.onOutput,
      // Confinement costs a wrapper exec and cgroup set-up per build, worth it where a job
      // asks for limits or the agent keeps its builds in a cpu group; others keep the fast path.
      {
        clock: this.deps.clock,
        ...(this.deps.isolation && (payload.resources || this.deps.isolation.buildsCpu) && { isolation: this.deps.isolation }),
        ...(this.deps.identity && { identity: this.deps.identity }),
      },
    );
    return toBuildResult(await this.handle.result);
  }
}

/** Queue names and BullMQ ids may hold characters that are awkward or unsafe in a path. */
function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_');
}

/** Creates an empty directory; a leftover of an earlier run of the same attempt is removed first. */
async function freshDir(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
  }
}

/** Many builds leave nothing behind: one rmdir then, the recursive walk only when needed. */
async function removeDir(dir: string): Promise<void> {
  try {
    await rmdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    await rm(dir, { recursive: true, force: true });
  }
}
