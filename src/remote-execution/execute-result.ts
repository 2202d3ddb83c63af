import { Readable } from 'node:stream';
import { status as grpcStatus } from '@grpc/grpc-js';
import { digestOf, parseOwnActionResultBytes, parseDigestString, type ActionCache, type ActionResult as SpillwayResult, type BlobStore, type Digest } from '../cas';
import type { BuildRecord } from '../master';
import type { RemoteAction } from '../protocol';
import { readBlob } from './blob-read';
import { reapiProtos } from './reapi-protos';
import type { ActionResult, Directory, ExecuteResponse, OutputDirectory, OutputFile } from './reapi-types';

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
  const outputFiles: OutputFile[] = [];
  const underDir = new Map<string, Array<{ path: string; digest: Digest; executable: boolean }>>();
  const dirOf = (p: string): string | undefined => {
    for (const d of [...action.outputDirs, ...action.outputPaths]) if (p.startsWith(`${d}/`)) return d;
    return undefined;
  };
  for (const f of r.outputFiles) {
    const dir = dirOf(f.path);
    if (dir === undefined) {
      outputFiles.push({ path: f.path, digest: wire(f.digest), isExecutable: (f.mode & 0o111) !== 0 });
      continue;
    }
    let list = underDir.get(dir);
    if (!list) underDir.set(dir, (list = []));
    list.push({ path: f.path.slice(dir.length + 1), digest: f.digest, executable: (f.mode & 0o111) !== 0 });
  }
  const outputDirectories: OutputDirectory[] = [];
  for (const [path, files] of [...underDir].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const tree = encodeTree(files);
    const { digest } = await store.put(Readable.from([tree]), { hash: digestOf(tree).hash, size: tree.length });
    outputDirectories.push({ path, treeDigest: wire(digest) });
  }
  const t = r.timings;
  return {
    outputFiles,
    outputDirectories,
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

/** A REAPI Tree (root and every distinct descendant, canonically encoded) of an output directory's files. */
export function encodeTree(files: ReadonlyArray<{ path: string; digest: Digest; executable: boolean }>): Buffer {
  interface Dir {
    files: Array<{ name: string; digest: Digest; executable: boolean }>;
    dirs: Map<string, Dir>;
  }
  const root: Dir = { files: [], dirs: new Map() };
  for (const f of files) {
    const parts = f.path.split('/');
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      let next = dir.dirs.get(part);
      if (!next) dir.dirs.set(part, (next = { files: [], dirs: new Map() }));
      dir = next;
    }
    dir.files.push({ name: parts[parts.length - 1]!, digest: f.digest, executable: f.executable });
  }
  const codec = reapiProtos().directory;
  const children = new Map<string, Directory>();
  const byName = (a: { name: string }, b: { name: string }) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));
  const build = (d: Dir): Directory => ({
    files: [...d.files].sort(byName).map((f) => ({ name: f.name, digest: wire(f.digest), isExecutable: f.executable })),
    directories: [...d.dirs]
      .map(([name, sub]) => {
        const node = build(sub);
        const digest = digestOf(codec.encode(node));
        children.set(digest.hash, node);
        return { name, digest: wire(digest) };
      })
      .sort(byName),
  });
  const top = build(root);
  return reapiProtos().tree.encode({ root: top, children: [...children.values()] });
}
