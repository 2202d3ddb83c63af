import { Readable } from 'node:stream';
import { readBlobData } from '../cas';
import { preEncoded } from './encoded-message';
import { unary } from './grpc-handlers';
import { reapiProtos } from './reapi-protos';
import { requestDigest, requestInstance, requireSha256 } from './request-digest';
import { invalidArgument, notFound } from './rpc-error';
import type { CacheServiceDeps } from './cache-deps';
import type { ActionCacheHandlers, ActionResult, ActionResult__Output } from './reapi-types';

/** Larger /ac/ values are opaque client data (ccache), never read into memory here. */
const MAX_RESULT_BYTES = 16 * 1024 * 1024;

/**
 * ActionCache over the existing action cache's raw namespace: a result is the serialized REAPI
 * ActionResult proto, stored under the action digest's hash, so `GET /ac/<hash>` returns the
 * same bytes and a result Bazel PUT over HTTP is served here. Like the HTTP action cache for
 * its own results, a result is served only when every blob it names is still in the CAS
 * (outputs, stdout/stderr, output directories' Trees and the files in them); otherwise it is a
 * miss, so the client runs the action again instead of failing to download. The check is
 * remembered per stored result (complete-results.ts).
 */
export function actionCacheService(deps: CacheServiceDeps): ActionCacheHandlers {
  const { auth, log, actionCache, completeResults } = deps;
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
      if (reader.digest.size > MAX_RESULT_BYTES) {
        reader.stream.destroy();
        throw miss(); // not an ActionResult anyone wrote over REAPI
      }
      const bytes = await readBlobData(reader);
      if (!bytes) throw miss();
      if (!completeResults.known(reader.digest.hash)) {
        let result: ActionResult__Output;
        try {
          result = codec.decode(bytes);
        } catch {
          throw miss(); // an opaque value some other client stored under /ac/ (ccache), not ours to parse
        }
        if (!(await completeResults.check(deps.store, reader.digest.hash, result))) throw miss();
      }
      // The stored bytes are the result's encoding: sent as they are. Inlining stdout, stderr
      // or output files is a hint the server may ignore, and this one does.
      return preEncoded<ActionResult>(bytes);
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
