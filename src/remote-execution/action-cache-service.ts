import { Readable } from 'node:stream';
import type { Digest } from '../cas';
import { readBlob } from './blob-read';
import { unary } from './grpc-handlers';
import { reapiProtos } from './reapi-protos';
import { requestDigest, requestInstance, requireSha256 } from './request-digest';
import { invalidArgument, notFound } from './rpc-error';
import type { CacheServiceDeps } from './cache-deps';
import type { ActionCacheHandlers, ActionResult, ActionResult__Output, Digest__Output } from './reapi-types';

/** Output directories whose Tree is larger than this are not opened for the completeness check. */
const MAX_TREE_BYTES = 64 * 1024 * 1024;
/** Larger /ac/ values are opaque client data (ccache), never read into memory here. */
const MAX_RESULT_BYTES = 16 * 1024 * 1024;

/**
 * ActionCache over the existing action cache's raw namespace: a result is the serialized REAPI
 * ActionResult proto, stored under the action digest's hash, so `GET /ac/<hash>` returns the
 * same bytes and a result Bazel PUT over HTTP is served here. Like the HTTP action cache for
 * its own results, a result is served only when every blob it names is still in the CAS
 * (outputs, stdout/stderr, output directories' Trees and the files in them); otherwise it is a
 * miss, so the client runs the action again instead of failing to download.
 */
export function actionCacheService(deps: CacheServiceDeps): ActionCacheHandlers {
  const { auth, log, actionCache } = deps;
  const codec = reapiProtos().actionResult;
  return {
    GetActionResult: unary(log, 'GetActionResult', async (call): Promise<ActionResult> => {
      auth.require(call.metadata, 'read');
      const req = call.request;
      requestInstance(req.instanceName);
      requireSha256(req.digestFunction);
      const action = requestDigest(req.actionDigest, 'action_digest');
      const miss = () => notFound(`no action result for ${action.hash}/${action.size}`);
      const reader = await actionCache.getRaw(action.hash);
      if (!reader) throw miss();
      reader.stream.destroy();
      if (reader.digest.size > MAX_RESULT_BYTES) throw miss(); // not an ActionResult anyone wrote over REAPI
      const bytes = await readBlob(deps.store, reader.digest);
      if (!bytes) throw miss();
      let result: ActionResult__Output;
      try {
        result = codec.decode(bytes);
      } catch {
        throw miss(); // an opaque value some other client stored under /ac/ (ccache), not ours to parse
      }
      const needed = await referencedBlobs(deps, result);
      if (needed === undefined || (await deps.store.findMissing(needed)).length > 0) throw miss();
      return result;
    }),

    UpdateActionResult: unary(log, 'UpdateActionResult', async (call): Promise<ActionResult> => {
      auth.require(call.metadata, 'read-write');
      const req = call.request;
      requestInstance(req.instanceName);
      requireSha256(req.digestFunction);
      const action = requestDigest(req.actionDigest, 'action_digest');
      const result = req.actionResult;
      if (!result) throw invalidArgument('action_result is required');
      checkResultDigests(result);
      const bytes = codec.encode(result);
      if (bytes.length > deps.maxBlobBytes) throw invalidArgument(`action result of ${bytes.length} bytes exceeds the blob limit`);
      await actionCache.putRaw(action.hash, Readable.from([bytes]), bytes.length);
      return result;
    }),
  };
}

/** Every digest in a result must be well formed before it is stored (it is served back as is). */
function checkResultDigests(r: ActionResult__Output): void {
  r.outputFiles.forEach((f, i) => requestDigest(f.digest, `action_result.output_files[${i}].digest`));
  r.outputDirectories.forEach((d, i) => {
    requestDigest(d.treeDigest, `action_result.output_directories[${i}].tree_digest`);
    if (d.rootDirectoryDigest) requestDigest(d.rootDirectoryDigest, `action_result.output_directories[${i}].root_directory_digest`);
  });
  if (r.stdoutDigest) requestDigest(r.stdoutDigest, 'action_result.stdout_digest');
  if (r.stderrDigest) requestDigest(r.stderrDigest, 'action_result.stderr_digest');
}

/** The blobs a result needs, or undefined when one of its Trees is missing or unreadable. */
async function referencedBlobs(deps: CacheServiceDeps, r: ActionResult__Output): Promise<Digest[] | undefined> {
  const out: Digest[] = [];
  const add = (d: Digest__Output | null): void => {
    if (d && d.hash !== '') out.push({ hash: d.hash, size: d.sizeBytes });
  };
  r.outputFiles.forEach((f) => add(f.digest));
  add(r.stdoutDigest);
  add(r.stderrDigest);
  for (const dir of r.outputDirectories) {
    if (!dir.treeDigest) continue;
    const tree = { hash: dir.treeDigest.hash, size: dir.treeDigest.sizeBytes };
    if (tree.size > MAX_TREE_BYTES) return undefined;
    const bytes = await readBlob(deps.store, tree);
    if (!bytes) return undefined;
    try {
      const t = reapiProtos().tree.decode(bytes);
      for (const d of [t.root, ...t.children]) d?.files.forEach((f) => add(f.digest));
    } catch {
      return undefined;
    }
  }
  return out;
}
