import { Readable } from 'node:stream';
import { status as grpcStatus } from '@grpc/grpc-js';
import { checkSymlinkTarget, digestOf, InvalidTreeError, parseOwnActionResultBytes, parseDigestString, type ActionCache, type ActionResult as SpillwayResult, type BlobStore, type Digest } from '../cas';
import type { BuildRecord } from '../master';
import type { RemoteAction } from '../protocol';
import { readBlob } from './blob-read';
import { reapiProtos } from './reapi-protos';
import { encodeTree } from './output-tree';
import type { ActionResult, ExecuteResponse, OutputDirectory, OutputFile } from './reapi-types';

const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });
const stamp = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

/** What finishing an operation needs to know of it besides its build record. */
export interface FinishedAction {
  action: RemoteAction;
  doNotCache: boolean;
}

/** The ExecuteResponse of an operation and whether its ActionResult went into the action cache. */
export interface ExecuteOutcome {
  response: ExecuteResponse;
  cached: boolean;
}

/**
 * Turns the last build of a remote action into its ExecuteResponse: the agent's result blob
 * (spillway's JSON form) becomes a REAPI ActionResult, each output directory a Tree stored in
 * the CAS. A run that ended by itself is status OK whatever its exit code (the client judges
 * that); a timeout is DEADLINE_EXCEEDED with the partial result; a build that never ran has no
 * result and a status saying why. An exit 0 result is written to the action cache under the
 * action digest (the raw namespace, where Bazel's HTTP cache and the gRPC ActionCache read it),
 * unless the action is do_not_cache.
 */
export async function executeOutcome(rec: BuildRecord, op: FinishedAction, store: BlobStore, actionCache: ActionCache): Promise<ExecuteOutcome> {
  const result = rec.actionResult ? await loadResult(store, rec.actionResult) : undefined;
  if (!result) {
    const reason = rec.reason ?? `the build ended: ${rec.result ?? 'unknown'}`;
    return { response: { status: { code: noResultCode(rec), message: `action did not run to the end on ${rec.agent}: ${reason}` } }, cached: false };
  }
  const refused = refusedSymlink(result);
  if (refused !== undefined) {
    const partial = await toReapiResult({ ...result, outputFiles: [], outputSymlinks: [], outputDirectories: [] }, op.action, store, rec);
    return { response: { result: partial, cachedResult: false, status: { code: grpcStatus.FAILED_PRECONDITION, message: `${rec.agent}: ${refused}` } }, cached: false };
  }
  const actionResult = await toReapiResult(result, op.action, store, rec);
  const timedOut = rec.result === 'timeout';
  const response: ExecuteResponse = {
    result: actionResult,
    cachedResult: false,
    status: timedOut ? { code: grpcStatus.DEADLINE_EXCEEDED, message: rec.reason ?? 'the action timed out' } : { code: grpcStatus.OK },
    ...(rec.result !== 'success' && rec.reason && { message: `${rec.agent}: ${rec.reason}` }),
  };
  let cached = false;
  if (!timedOut && result.exitCode === 0 && rec.result === 'success' && !op.doNotCache) {
    const bytes = reapiProtos().actionResult.encode(actionResult);
    await actionCache.putRaw(op.action.actionDigest.hash, Readable.from([bytes]), bytes.length);
    cached = true;
  }
  return { response, cached };
}

function noResultCode(rec: BuildRecord): number {
  if (rec.reason?.includes('is not in the local cache nor on the master')) return grpcStatus.FAILED_PRECONDITION;
  if (rec.result === 'lost' || rec.result === 'preempted') return grpcStatus.UNAVAILABLE;
  if (rec.result === 'cancelled') return grpcStatus.CANCELLED;
  if (rec.result === 'timeout') return grpcStatus.DEADLINE_EXCEEDED;
  return grpcStatus.INTERNAL;
}

async function loadResult(store: BlobStore, digestText: string): Promise<SpillwayResult | undefined> {
  const bytes = await readBlob(store, parseDigestString(digestText));
  return bytes ? parseOwnActionResultBytes(bytes) : undefined;
}

/** The REAPI ActionResult of an agent's result; output directories' Trees are stored in `store`. */
export async function toReapiResult(r: SpillwayResult, action: RemoteAction, store: BlobStore, rec: Pick<BuildRecord, 'agent' | 'queuedAt'>): Promise<ActionResult> {
  const links = r.outputSymlinks ?? [];
  const reported = new Set(r.outputDirectories ?? []);
  const under = (p: string, d: string): boolean => p.startsWith(`${d}/`);
  // A declared directory is present when the agent walked it; an agent that lists no
  // directories (older) reports one only through the files under it.
  const present = [...new Set([...action.outputDirs, ...action.outputPaths])]
    .filter((d) => reported.has(d) || r.outputFiles.some((f) => under(f.path, d)) || links.some((l) => under(l.path, d)))
    .sort();
  const inDir = (p: string): boolean => present.some((d) => under(p, d));

  const outputFiles: OutputFile[] = r.outputFiles
    .filter((f) => !inDir(f.path))
    .map((f) => ({ path: f.path, digest: wire(f.digest), isExecutable: (f.mode & 0o111) !== 0 }));
  const outputDirectories: OutputDirectory[] = [];
  for (const dir of present) {
    const rel = (p: string) => p.slice(dir.length + 1);
    const tree = encodeTree({
      files: r.outputFiles.filter((f) => under(f.path, dir)).map((f) => ({ path: rel(f.path), digest: f.digest, executable: (f.mode & 0o111) !== 0 })),
      symlinks: links.filter((l) => under(l.path, dir)).map((l) => ({ path: rel(l.path), target: l.target })),
      directories: [...reported].filter((d) => under(d, dir)).map(rel),
    });
    const { digest } = await store.put(Readable.from([tree]), { hash: digestOf(tree).hash, size: tree.length });
    outputDirectories.push({ path: dir, treeDigest: wire(digest) });
  }
  // REAPI v2.1 clients (output_paths) read output_symlinks; v2.0 clients, Bazel 4 among them,
  // read the file and directory lists of the field their path was declared in.
  const top = links.filter((l) => !inDir(l.path));
  const declaredIn = (list: readonly string[]) => top.filter((l) => list.includes(l.path)).map((l) => ({ path: l.path, target: l.target }));
  const outputSymlinks = declaredIn(action.outputPaths);
  const outputDirectorySymlinks = declaredIn(action.outputDirs);
  const outputFileSymlinks = declaredIn(action.outputFiles);
  const t = r.timings;
  return {
    outputFiles,
    outputDirectories,
    ...(outputSymlinks.length > 0 && { outputSymlinks }),
    ...(outputFileSymlinks.length > 0 && { outputFileSymlinks }),
    ...(outputDirectorySymlinks.length > 0 && { outputDirectorySymlinks }),
    exitCode: r.exitCode,
    stdoutDigest: wire(r.stdout),
    stderrDigest: wire(r.stderr),
    executionMetadata: {
      worker: r.agent ?? rec.agent,
      queuedTimestamp: stamp(rec.queuedAt),
      workerStartTimestamp: stamp(t.startedAt),
      executionStartTimestamp: stamp(t.startedAt),
      executionCompletedTimestamp: stamp(t.finishedAt),
      workerCompletedTimestamp: stamp(t.finishedAt),
    },
  };
}

/**
 * Why a result's symlinks cannot be handed to a client, or undefined: the agent refused one
 * (absolute, or climbing out of the work directory), or reports one the master's own check
 * refuses (an agent is not trusted to have checked: a client creates these links as they are).
 * Capabilities announce symlink_absolute_path_strategy DISALLOWED, whose answer is FAILED_PRECONDITION.
 */
function refusedSymlink(r: SpillwayResult): string | undefined {
  if (r.refused === 'symlink-target') return r.outcome ?? 'an output symlink has an absolute target or leads out of the work directory';
  for (const l of r.outputSymlinks ?? []) {
    try {
      checkSymlinkTarget(l.target, Infinity, l.path);
    } catch (err) {
      if (err instanceof InvalidTreeError) return `output symlink refused: ${err.message}`;
      throw err;
    }
  }
  return undefined;
}
