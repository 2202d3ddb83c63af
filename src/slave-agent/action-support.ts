import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CasClient, DiskStore } from '../cas';
import type { AgentOptions } from '../config';
import { ActionFailure, executeAction, type ActionInput, type BuildIdentity, type DiskGuard, type Isolation, type OutputStream, type runProcess } from '../executor';
import type { Clock, Logger } from '../lib';
import { actionDigestOf, type AssignFrame, type BuildResult } from '../protocol';
import { toBuildResult } from './build-result-of';

/**
 * Runs jobs that are actions: inputs from the agent's local CAS cache (filled from the master's
 * CAS on a miss), outputs and the result back to the master. Opened on the first action, so
 * agents that never see one never touch the cache dir.
 */
export class ActionSupport {
  private opened: Promise<{ local: DiskStore; remote: CasClient }> | undefined;

  constructor(
    private readonly d: {
      options: AgentOptions;
      clock: Clock;
      log: Logger;
      runner: typeof runProcess;
      isolation?: Isolation;
      identity?: BuildIdentity;
      baseEnv: Record<string, string>;
      /** Between SIGTERM and SIGKILL to a cancelled or timed-out action. @defaultValue options.killGraceSec */
      killGraceMs?: number;
    },
  ) {}

  get available(): boolean {
    return this.d.options.casUrl !== undefined;
  }

  /** Runs the action; `signal` cancels it (its command is killed, its result never cached). */
  async run(assign: AssignFrame, workDir: string, onOutput: (stream: OutputStream, chunk: string) => void, disk?: DiskGuard, signal?: AbortSignal): Promise<BuildResult> {
    const { payload } = assign;
    const startedAt = this.d.clock.now();
    if (!this.available || !payload.argv) {
      return { exitCode: null, signal: null, timedOut: false, error: 'this agent has no CAS to run actions with (start it with --cas)', startedAt, finishedAt: this.d.clock.now() };
    }
    if (payload.remoteAction) return this.runRemote(assign, payload.argv, workDir, onOutput, disk, signal);
    const spec = payload.action!;
    const env = payload.env ?? {};
    const action = actionDigestOf({
      argv: payload.argv,
      env,
      cwd: payload.cwd,
      inputRoot: spec.inputRoot,
      outputFiles: spec.outputFiles,
      outputDirs: spec.outputDirs,
      timeoutSec: payload.timeoutSec,
      resources: payload.resources,
    });
    const { remote } = await this.open();
    // The same action already ran somewhere: its result stands, nothing runs again.
    const hit = await remote.getActionResult(action.hash);
    if (hit) {
      const [stdout, stderr] = await Promise.all([remote.getBlob(hit.stdout), remote.getBlob(hit.stderr)]);
      if (stdout?.length) onOutput('stdout', stdout.toString());
      if (stderr?.length) onOutput('stderr', stderr.toString());
      onOutput('stderr', `[spillway: action ${action.hash.slice(0, 12)} served from the action cache; nothing ran]\n`);
      const now = this.d.clock.now();
      return { exitCode: hit.exitCode, signal: null, timedOut: false, action: { hash: action.hash, cached: true }, startedAt: now, finishedAt: now };
    }
    return this.execute(
      {
        actionHash: action.hash,
        argv: payload.argv,
        env,
        ...(payload.cwd && { cwd: payload.cwd }),
        inputRoot: spec.inputRoot,
        outputFiles: spec.outputFiles,
        outputDirs: spec.outputDirs,
        timeoutSec: assign.timeoutSec,
        ...(payload.resources && { resources: payload.resources }),
        cacheFailed: spec.cacheFailed,
      },
      assign,
      workDir,
      onOutput,
      startedAt,
      disk,
      signal,
    );
  }

  /**
   * A REAPI action: the master looked up its action cache before submitting, so it always runs;
   * its result goes back as a CAS blob the master turns into a REAPI ActionResult (also when the
   * command failed or timed out: the client is owed its exit code and output either way).
   */
  private runRemote(assign: AssignFrame, argv: string[], workDir: string, onOutput: (stream: OutputStream, chunk: string) => void, disk?: DiskGuard, signal?: AbortSignal): Promise<BuildResult> {
    const { payload } = assign;
    const spec = payload.remoteAction!;
    return this.execute(
      {
        actionHash: spec.actionDigest.hash,
        argv,
        env: payload.env ?? {},
        ...(payload.cwd && { cwd: payload.cwd }),
        inputRoot: spec.inputRoot,
        outputFiles: spec.outputFiles,
        outputDirs: spec.outputDirs,
        outputPaths: spec.outputPaths,
        timeoutSec: assign.timeoutSec,
        ...(payload.resources && { resources: payload.resources }),
        cacheFailed: false,
        treeFormat: 'reapi',
        createOutputParents: true,
        outputSymlinks: 'keep',
        resultTo: 'blob',
      },
      assign,
      workDir,
      onOutput,
      this.d.clock.now(),
      disk,
      signal,
    );
  }

  private async execute(
    input: ActionInput,
    assign: AssignFrame,
    workDir: string,
    onOutput: (stream: OutputStream, chunk: string) => void,
    startedAt: number,
    disk: DiskGuard | undefined,
    signal: AbortSignal | undefined,
  ): Promise<BuildResult> {
    const { payload } = assign;
    const { local, remote } = await this.open();
    const action = { hash: input.actionHash };
    let out: Awaited<ReturnType<typeof executeAction>>;
    try {
      out = await executeAction(
        input,
        {
          local,
          remote,
          workDir,
          ...(disk && { disk }),
          runner: this.d.runner,
          ...(this.d.identity && { identity: this.d.identity }),
          ...(this.d.isolation && (payload.resources || this.d.isolation.buildsCpu) && { isolation: this.d.isolation }),
          baseEnv: this.d.baseEnv,
          onOutput,
          agent: this.d.options.name,
          now: () => this.d.clock.now(),
          clock: this.d.clock,
          inputLimits: { maxDepth: this.d.options.inputMaxDepth, maxEntries: this.d.options.inputMaxEntries },
          ...(signal && { signal }),
          killGraceMs: this.d.killGraceMs ?? this.d.options.killGraceSec * 1000,
        },
      );
    } catch (err) {
      if (!(err instanceof ActionFailure)) throw err;
      const ref = { hash: action.hash, cached: false };
      // Nothing ran: the command "could not start"; otherwise it ran, and the action failed anyway.
      if (!err.run) return { exitCode: null, signal: null, timedOut: false, error: err.message, action: ref, startedAt, finishedAt: this.d.clock.now() };
      return { ...toBuildResult(err.run), exitCode: nonZero(err.run.exitCode), failure: err.message, action: ref };
    }
    const ref = { hash: action.hash, cached: out.cached, ...(out.resultDigest && { result: out.resultDigest }) };
    if (out.rejected !== undefined) return { ...toBuildResult(out.run), exitCode: out.result.exitCode, failure: out.rejected, action: ref };
    return { ...toBuildResult(out.run), action: ref };
  }

  /** The local cache's directory (it may not exist yet). */
  get cacheDir(): string {
    return this.d.options.cacheDir ?? join(tmpdir(), `spillway-agent-cache-${this.d.options.name}`);
  }

  /** Evicts from the local cache to free `bytes` on its disk; 0 for an agent without a CAS. */
  async trimCache(bytes: number): Promise<number> {
    if (!this.available) return 0;
    return (await this.open()).local.trim(bytes);
  }

  async close(): Promise<void> {
    if (this.opened) await (await this.opened).local.close();
  }

  private open(): Promise<{ local: DiskStore; remote: CasClient }> {
    this.opened ??= (async () => {
      const o = this.d.options;
      const local = await DiskStore.open({
        root: this.cacheDir,
        maxBytes: o.cacheMaxMb * 1024 * 1024,
        clock: this.d.clock,
        log: this.d.log,
      });
      const remote = new CasClient({ baseUrl: o.casUrl!, ...(o.casToken && { token: o.casToken }) });
      return { local, remote };
    })();
    return this.opened;
  }
}

/** The command's own exit code unless it was 0 (or none): the action failed all the same. */
function nonZero(code: number | null): number {
  return code === null || code === 0 ? 1 : code;
}
