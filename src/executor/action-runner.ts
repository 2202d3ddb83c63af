import { constants as osConstants, tmpdir } from 'node:os';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { EMPTY_DIGEST, decodeReapiDirectory, materializeTree, serializeActionResult, type ActionResult, type MaterializeLimits, type CasClient, type Digest, type DiskStore, type OutputFile, type OutputRefusalCode, type UploadItem } from '../cas';
import type { DiskGuard } from './disk-limit';
import { runProcess, type OutputStream, type RunResult } from './process-runner';
import type { Isolation, ResourceLimits } from './limits';
import { cachingTreeFetcher, type InputFetchStats } from './action-inputs';
import { collectOutputs, OutputRejected, type CollectedOutputs } from './action-outputs';
import { DEFAULT_CAPTURE_MEMORY_BYTES, OutputCapture } from './output-capture';
import type { Clock } from '../lib';
import { ActionFailure, atStage } from './action-failure';
import { buildOwner, handOver, identityEnv, type BuildIdentity } from './build-identity';

/**
 * One action to execute: the protocol's action fields plus the job's command. Declared here
 * structurally because the executor sits below protocol in the layering.
 */
export interface ActionInput {
  /** The action digest's hash (the action-cache key). */
  actionHash: string;
  argv: string[];
  env: Record<string, string>;
  /** Working directory relative to the input root. @defaultValue the root */
  cwd?: string;
  inputRoot: Digest;
  /** Relative to `cwd`. */
  outputFiles: string[];
  /** Relative to `cwd`; stored as the files under them (`dir/sub/file`). */
  outputDirs: string[];
  timeoutSec: number;
  resources?: ResourceLimits;
  /** Store the result even when the command exits non-zero. */
  cacheFailed: boolean;
  /** When the action was queued (epoch ms), copied into the result's timings. */
  queuedAt?: number;
  /** How the input tree's directory blobs are encoded: ours, or REAPI `Directory` protos. @defaultValue 'spillway' */
  treeFormat?: 'spillway' | 'reapi';
  /** Relative to `cwd`; each stored as a file or as the files under it, whichever it turns out to be. */
  outputPaths?: string[];
  /**
   * `keep`: output symlinks are reported as links and every output directory (empty ones too) is
   * listed, as REAPI results need; `resolve`: results hold regular files only (see collectOutputs).
   * @defaultValue 'resolve'
   */
  outputSymlinks?: 'keep' | 'resolve';
  /** Creates the parent directories of every declared output before the run, as REAPI workers must. @defaultValue false */
  createOutputParents?: boolean;
  /**
   * Where the result goes: the master's action cache under `actionHash`, or only a CAS blob
   * (its JSON form) whose digest {@link ActionExecution.resultDigest} returns, for a caller
   * that stores results in another format (the REAPI service). @defaultValue 'action-cache'
   */
  resultTo?: 'action-cache' | 'blob';
}

export interface ActionDeps {
  /** The agent's local cache. */
  local: DiskStore;
  /** The master's CAS and action cache. */
  remote: CasClient;
  /** A fresh, empty directory for this build, created (and later removed) by the caller. */
  workDir: string;
  runner?: typeof runProcess;
  isolation?: Isolation;
  /** `workDir`'s disk limit, set up by the caller before the inputs arrive. */
  disk?: DiskGuard;
  baseEnv?: Record<string, string>;
  onOutput: (stream: OutputStream, chunk: string) => void;
  /** Name recorded in the result. */
  agent: string;
  now?: () => number;
  /** Drives the command's timeout and kill grace. @defaultValue systemClock */
  clock?: Clock;
  killGraceMs?: number;
  /** Where partial downloads and large stdout/stderr spill files go. @defaultValue os.tmpdir() */
  tmpDir?: string;
  /** Bytes of stdout (and of stderr) held in memory before spilling to a file. @defaultValue 64 MiB */
  captureMemoryBytes?: number;
  /** Bounds on the input tree (depth, entries, bytes). @defaultValue DEFAULT_MATERIALIZE_LIMITS */
  inputLimits?: MaterializeLimits;
  /** Who the command runs as; a build user is given the materialized tree. @defaultValue the agent's own user */
  identity?: BuildIdentity;
  /**
   * Cancels the action: its command's process group is terminated (SIGTERM, then SIGKILL
   * after the grace), and whatever it produced is neither collected nor cached (an
   * ActionFailure): a cancelled run's result must never stand for the action.
   */
  signal?: AbortSignal;
}

export interface ActionExecution {
  /** How the command ended (exit, signal, timeout, OOM, not started). */
  run: RunResult;
  result: ActionResult;
  /** Whether the master's action cache stored the result. */
  cached: boolean;
  /** How the inputs were obtained. */
  inputs: InputFetchStats;
  /** Blobs uploaded to the master (the ones it was missing). */
  uploaded: Digest[];
  /** Why the outputs were refused (the result's exit code is then non-zero); absent when accepted. */
  rejected?: string;
  /** With `resultTo: 'blob'`: the digest of the result's JSON form, uploaded to the master's CAS. */
  resultDigest?: Digest;
}

/** Exit code recorded for a run that timed out (as timeout(1) does). */
export const TIMED_OUT_EXIT = 124;
/** Exit code recorded for a command that could not be started (as a shell does). */
export const NOT_STARTED_EXIT = 127;

/**
 * Executes one action on this agent: materializes its input tree into `deps.workDir` (through
 * the local cache, hardlinking where the mode allows), runs the command there under the limits,
 * stores stdout, stderr and the declared outputs in the local cache, uploads what the master
 * lacks, and stores the result in the master's action cache.
 *
 * Only a clean exit is cached, and a non-zero one only with `cacheFailed`; a run that timed out,
 * was killed, ran out of memory or could not start never is, nor one whose outputs were
 * rejected. Rejected outputs (escaping the work directory) are neither stored nor uploaded;
 * the result then has `outcome` saying why and a non-zero exit code. A run that did not end by
 * itself has the exit code a shell would report (124 timed out, 127 not started, 128+n signal).
 *
 * @throws ActionFailure naming the stage, for anything but the command's own outcome: inputs
 *   that cannot be materialized (InvalidTreeError, MissingInputError, transport errors, the
 *   tree limits), a command that cannot be spawned, outputs that cannot be collected, results
 *   that cannot be stored or uploaded. Its `run` says how the command ended when it did run.
 */
export async function executeAction(input: ActionInput, deps: ActionDeps): Promise<ActionExecution> {
  const now = deps.now ?? Date.now;
  const runner = deps.runner ?? runProcess;
  const tmp = deps.tmpDir ?? tmpdir();
  const workDir = path.resolve(deps.workDir);

  const cancelled = (run: RunResult | undefined) => new ActionFailure(run ? 'run' : 'inputs', `cancelled: ${String(deps.signal?.reason ?? 'aborted')}`, run);
  if (deps.signal?.aborted) throw cancelled(undefined);
  // (1) Inputs.
  const inputs: InputFetchStats = { localHits: 0, downloaded: 0, downloadedBytes: 0, linked: 0, copied: 0 };
  await atStage('inputs', 'cannot materialize the input tree', undefined, () =>
    {
      const decode = input.treeFormat === 'reapi' ? decodeReapiDirectory : undefined;
      return materializeTree(input.inputRoot, workDir, cachingTreeFetcher(input.inputRoot, deps.local, deps.remote, tmp, inputs, decode), deps.inputLimits, decode);
    },
  );

  // (2) Run.
  const stdout = new OutputCapture(tmp, 'stdout', deps.captureMemoryBytes ?? DEFAULT_CAPTURE_MEMORY_BYTES);
  const stderr = new OutputCapture(tmp, 'stderr', deps.captureMemoryBytes ?? DEFAULT_CAPTURE_MEMORY_BYTES);
  try {
    const cwdProblem = checkCwd(input.cwd);
    const cwd = cwdProblem ? workDir : path.join(workDir, input.cwd ?? '');
    let run: RunResult;
    if (cwdProblem) {
      const t = now();
      run = { exitCode: null, signal: null, timedOut: false, error: cwdProblem, startedAt: t, finishedAt: t };
    } else {
      const [realCwd, realWork, escapedParent] = await atStage('run', 'cannot prepare the working directory', undefined, async () => {
        await fsp.mkdir(cwd, { recursive: true });
        const escaped = input.createOutputParents ? await createOutputParents(workDir, cwd, declaredOutputs(input)) : undefined;
        const owner = buildOwner(deps.identity);
        if (owner) await handOver(workDir, owner);
        return [await fsp.realpath(cwd), await fsp.realpath(workDir), escaped] as const;
      });
      if (escapedParent !== undefined) {
        const t = now();
        run = { exitCode: null, signal: null, timedOut: false, error: `the parent directory of output ${escapedParent} escapes the work directory`, startedAt: t, finishedAt: t };
      } else if (realCwd !== realWork && !realCwd.startsWith(realWork + path.sep)) {
        const t = now();
        run = { exitCode: null, signal: null, timedOut: false, error: `working directory ${input.cwd} escapes the work directory`, startedAt: t, finishedAt: t };
      } else {
        const spawnRun = async () =>
          runner(
            {
              argv: input.argv,
              env: input.env,
              baseEnv: { ...deps.baseEnv, ...identityEnv(deps.identity, workDir) },
              cwd,
              timeoutMs: input.timeoutSec * 1000,
              ...(deps.killGraceMs !== undefined && { killGraceMs: deps.killGraceMs }),
              ...(input.resources && { limits: input.resources }),
              ...(deps.disk && { disk: deps.disk }),
            },
            (stream, chunk) => {
              (stream === 'stdout' ? stdout : stderr).write(chunk);
              deps.onOutput(stream, chunk);
            },
            {
              now,
              ...(deps.clock && { clock: deps.clock }),
              ...(deps.isolation && { isolation: deps.isolation }),
              ...(deps.identity && { identity: deps.identity }),
            },
          );
        if (deps.signal?.aborted) throw cancelled(undefined);
        const handle = await atStage('run', 'cannot start the command', undefined, spawnRun);
        const onAbort = () => handle.cancel(String(deps.signal?.reason ?? 'cancelled'));
        deps.signal?.addEventListener('abort', onAbort, { once: true });
        if (deps.signal?.aborted) onAbort();
        try {
          run = await handle.result;
        } finally {
          deps.signal?.removeEventListener('abort', onAbort);
        }
        if (deps.signal?.aborted) throw cancelled(run);
      }
    }

    // (3) Outputs. Only a run that ended by itself produced outputs worth keeping.
    const ended = run.error === undefined && !run.timedOut && run.signal === null && !run.oomKilled && run.exitCode !== null;
    let collected: CollectedOutputs = { files: [], symlinks: [], directories: [] };
    let rejection: Rejection | undefined;
    if (ended) {
      const found = await atStage('outputs', 'cannot collect the outputs', run, () =>
        collectOutputs(workDir, cwd, input.outputFiles, input.outputDirs, input.outputPaths ?? [], { symlinks: input.outputSymlinks ?? 'resolve' }).catch((err: unknown) => {
          if (err instanceof OutputRejected) return err;
          throw err;
        }),
      );
      if (found instanceof OutputRejected) rejection = { message: found.message, code: found.code };
      else collected = found;
    }
    const incomplete = incompleteCapture(stdout, stderr);
    rejection ??= incomplete === undefined ? undefined : { message: incomplete };
    return await atStage('upload', 'cannot store or upload the results', run, () => store(run, ended, collected, rejection));
  } finally {
    await stdout.dispose();
    await stderr.dispose();
  }

  async function store(run: RunResult, ended: boolean, collected: CollectedOutputs, rejection: Rejection | undefined): Promise<ActionExecution> {
    // (4) Store locally, upload what the master lacks, record the result.
    const items: UploadItem[] = [];
    const putCapture = async (c: OutputCapture): Promise<Digest> => {
      const captured = c.finish();
      const digest =
        'data' in captured
          ? (await deps.local.putBuffer(captured.data)).digest
          : (await deps.local.put(createReadStream(captured.path), { size: c.size - c.droppedBytes })).digest;
      items.push({ digest, ...captured });
      return digest;
    };
    const outputFiles: OutputFile[] = [];
    try {
      for (const o of collected.files) {
        const handle = await o.open();
        let digest: Digest;
        try {
          ({ digest } = await deps.local.put(handle.createReadStream({ autoClose: false })));
        } finally {
          await handle.close();
        }
        outputFiles.push({ path: o.path, digest, mode: o.mode });
        // Uploaded from the local cache's copy: the work directory's file is the build's to change.
        items.push({ digest, path: deps.local.blobPath(digest.hash) });
      }
    } catch (err) {
      // A file swapped while it is read refuses the outputs like one found bad while collecting.
      if (!(err instanceof OutputRejected)) throw err;
      rejection = { message: err.message, code: err.code };
      outputFiles.length = 0;
      items.length = 0;
    }
    const stdoutDigest = await putCapture(stdout);
    const stderrDigest = await putCapture(stderr);
    const uploaded = await deps.remote.uploadMissing(items.filter((i) => i.digest.hash !== EMPTY_DIGEST.hash));

    const result: ActionResult = {
      exitCode: exitCodeOf(run, rejection),
      stdout: stdoutDigest,
      stderr: stderrDigest,
      outputFiles,
      ...(input.outputSymlinks === 'keep' && rejection === undefined && { outputSymlinks: collected.symlinks, outputDirectories: collected.directories }),
      agent: deps.agent,
      timings: {
        ...(input.queuedAt !== undefined && { queuedAt: input.queuedAt }),
        startedAt: run.startedAt,
        finishedAt: run.finishedAt,
      },
    };
    // How a run that did not end by itself ended is in `run`, for the caller to put in words
    // (the agent maps it onto the protocol's BuildResult, whose describeResult is the one wording).
    if (rejection !== undefined) {
      result.outcome = rejection.message;
      if (rejection.code) result.refused = rejection.code;
    }

    const done = { run, result, inputs, uploaded, ...(rejection !== undefined && { rejected: rejection.message }) };
    if (input.resultTo === 'blob') {
      const data = serializeActionResult(result);
      const { digest } = await deps.local.putBuffer(data);
      uploaded.push(...(await deps.remote.uploadMissing([{ digest, data }])));
      return { ...done, cached: false, resultDigest: digest };
    }
    const cacheable = ended && rejection === undefined && (run.exitCode === 0 || input.cacheFailed);
    const cached = cacheable ? await deps.remote.putActionResult(input.actionHash, result, { allowFailed: input.cacheFailed }) : false;
    return { ...done, cached };
  }
}

/** Why a run's outputs were refused; `code` when an output was (see OutputRejected). */
interface Rejection {
  message: string;
  code?: OutputRefusalCode;
}

/**
 * A capture the disk could not hold is not the command's output: stored as a result, a cache
 * hit would serve the truncated stdout as complete. What was kept is still stored, to be shown.
 */
function incompleteCapture(stdout: OutputCapture, stderr: OutputCapture): string | undefined {
  const lost = [
    ['stdout', stdout.droppedBytes],
    ['stderr', stderr.droppedBytes],
  ].filter(([, n]) => Number(n) > 0);
  if (lost.length === 0) return undefined;
  return `captured output incomplete: ${lost.map(([name, n]) => `${n} bytes of ${name}`).join(' and ')} could not be stored (disk full?)`;
}

function declaredOutputs(input: ActionInput): string[] {
  return [...input.outputFiles, ...input.outputDirs, ...(input.outputPaths ?? [])];
}

/**
 * Makes the parent directories of the declared outputs below `cwd`; returns the first output
 * whose parent would lie outside `workDir` (through a symlink of the input tree), after which
 * nothing more is created. Paths are plain relative ones (the payload schema says so).
 */
async function createOutputParents(workDir: string, cwd: string, outputs: readonly string[]): Promise<string | undefined> {
  const realWork = await fsp.realpath(workDir);
  for (const out of outputs) {
    if (out.startsWith('/') || out.split('/').includes('..')) return out;
    const parts = out.split('/').slice(0, -1);
    let dir = cwd;
    for (const part of parts) {
      dir = path.join(dir, part);
      const st = await fsp.lstat(dir).catch(() => undefined);
      if (!st) await fsp.mkdir(dir, { mode: 0o755 });
      const real = await fsp.realpath(dir);
      if (real !== realWork && !real.startsWith(realWork + path.sep)) return out;
    }
  }
  return undefined;
}

function checkCwd(cwd: string | undefined): string | undefined {
  if (cwd === undefined || cwd === '' || cwd === '.') return undefined;
  if (cwd.startsWith('/') || cwd.includes('\0') || cwd.split('/').some((s) => s === '..')) {
    return `working directory ${JSON.stringify(cwd)} is not a plain relative path inside the work directory`;
  }
  return undefined;
}

/** The exit code recorded in the result; non-zero for anything but a clean, accepted exit 0. */
function exitCodeOf(run: RunResult, rejection: Rejection | undefined): number {
  if (run.error !== undefined) return NOT_STARTED_EXIT;
  if (run.timedOut) return TIMED_OUT_EXIT;
  if (run.signal !== null) return 128 + ((osConstants.signals as Record<string, number>)[run.signal] ?? 0);
  if (run.exitCode === null) return 1;
  if (rejection !== undefined && run.exitCode === 0) return 1;
  return run.exitCode;
}
