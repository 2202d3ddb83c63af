import { Readable } from 'node:stream';
import { mapBounded } from '../lib';
import { readBlob } from './blob-read';
import type { CacheServiceDeps } from './cache-deps';
import { unary } from './grpc-handlers';
import { directoryTree } from './directory-tree';
import { requestDigest, requestInstance, requireSha256, wireDigest } from './request-digest';
import { Code, invalidArgument, OK_STATUS, statusOf } from './rpc-error';
import type { BatchReadBlobsResponse, BatchUpdateBlobsResponse, ContentAddressableStorageHandlers } from './reapi-types';


/** More digests than this in one FindMissingBlobs is refused (gRPC's message limit bounds it anyway). */
const MAX_FIND_MISSING = 100_000;
/** Blobs of one batch stored or read at once. */
const BATCH_CONCURRENCY = 16;

/** ContentAddressableStorage: FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs, GetTree. */
export function storageService(deps: CacheServiceDeps): ContentAddressableStorageHandlers {
  const { store, auth, log } = deps;
  return {
    FindMissingBlobs: unary(log, 'FindMissingBlobs', async (call) => {
      auth.require(call.metadata, 'read');
      const req = call.request;
      requestInstance(req.instanceName);
      requireSha256(req.digestFunction);
      if (req.blobDigests.length > MAX_FIND_MISSING) throw invalidArgument(`at most ${MAX_FIND_MISSING} digests per FindMissingBlobs`);
      const digests = req.blobDigests.map((d, i) => requestDigest(d, `blob_digests[${i}]`));
      const missing = await store.findMissing(digests);
      return { missingBlobDigests: missing.map(wireDigest) };
    }),

    BatchUpdateBlobs: unary(log, 'BatchUpdateBlobs', async (call): Promise<BatchUpdateBlobsResponse> => {
      auth.require(call.metadata, 'read-write');
      const req = call.request;
      requestInstance(req.instanceName);
      requireSha256(req.digestFunction);
      const total = req.requests.reduce((n, r) => n + r.data.length, 0);
      if (total > deps.maxBatchBytes) {
        throw invalidArgument(`batch of ${total} bytes exceeds max_batch_total_size_bytes ${deps.maxBatchBytes}: use ByteStream.Write`);
      }
      const responses = await mapBounded(req.requests, BATCH_CONCURRENCY, async (r, i) => {
        const echo = r.digest ? { hash: r.digest.hash, sizeBytes: r.digest.sizeBytes } : null;
        try {
          const digest = requestDigest(r.digest, `requests[${i}].digest`);
          if (r.compressor !== 'IDENTITY') throw invalidArgument(`requests[${i}]: compressor ${r.compressor} is not supported`);
          if (r.data.length !== digest.size) throw invalidArgument(`requests[${i}]: ${r.data.length} bytes sent for a digest of size ${digest.size}`);
          await store.put(Readable.from([r.data]), { hash: digest.hash, size: digest.size });
          return { digest: echo, status: OK_STATUS };
        } catch (err) {
          return { digest: echo, status: statusOf(err) };
        }
      });
      return { responses };
    }),

    BatchReadBlobs: unary(log, 'BatchReadBlobs', async (call): Promise<BatchReadBlobsResponse> => {
      auth.require(call.metadata, 'read');
      const req = call.request;
      requestInstance(req.instanceName);
      requireSha256(req.digestFunction);
      const digests = req.digests.map((d, i) => requestDigest(d, `digests[${i}]`));
      const total = digests.reduce((n, d) => n + d.size, 0);
      if (total > deps.maxBatchBytes) {
        throw invalidArgument(`batch of ${total} bytes exceeds max_batch_total_size_bytes ${deps.maxBatchBytes}: use ByteStream.Read`);
      }
      const responses = await mapBounded(digests, BATCH_CONCURRENCY, async (digest) => {
        try {
          const data = await readBlob(store, digest);
          if (!data) return { digest: wireDigest(digest), data: Buffer.alloc(0), status: { code: Code.NOT_FOUND, message: `blob ${digest.hash}/${digest.size} not found` } };
          return { digest: wireDigest(digest), data, compressor: 'IDENTITY' as const, status: OK_STATUS };
        } catch (err) {
          return { digest: wireDigest(digest), data: Buffer.alloc(0), status: statusOf(err) };
        }
      });
      return { responses };
    }),

    GetTree: directoryTree(deps),
  };
}
