import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ActionCache, DiskStore, digestOf, type Digest } from '../../src/cas';
import { systemClock, type Clock } from '../../src/lib';
import { CallAuth, cacheServices, CompleteResults, EXECUTION_SERVICE, ReapiServer, reapiProtos, type ReapiService } from '../../src/remote-execution';
import type {
  ActionCacheClient,
  ByteStreamClient,
  CapabilitiesClient,
  ContentAddressableStorageClient,
} from '../../src/remote-execution';
import { recordingLogger, tempRoot } from '../cas/cas-fixtures';

export const WRITE = 'grpc-write-token-0123456789';
export const READ = 'grpc-read-token-0123456789';

export interface ReapiFixture {
  server: ReapiServer;
  store: DiskStore;
  /** The memo GetActionResult uses, told of every blob the store removes (as the master wires it). */
  completeResults: CompleteResults;
  actionCache: ActionCache;
  address: string;
  cas: ContentAddressableStorageClient;
  bytestream: ByteStreamClient;
  ac: ActionCacheClient;
  capabilities: CapabilitiesClient;
  close(): Promise<void>;
}

/** A REAPI server on a real disk store, port 0, with one write and one read token; `more` are extra services. */
export async function startReapi(options: { maxBatchBytes?: number; maxBlobBytes?: number; more?: ReapiService[]; clock?: Clock } = {}): Promise<ReapiFixture> {
  const { root, cleanup } = await tempRoot('reapi');
  const { log } = recordingLogger();
  const store = await DiskStore.open({ root, maxBytes: 512 * 1024 * 1024, clock: systemClock, log });
  const actionCache = await ActionCache.open({ root: `${root}/action-cache`, store });
  const completeResults = new CompleteResults({ clock: options.clock ?? systemClock });
  store.onRemoved((hash) => completeResults.removed(hash));
  const maxBatchBytes = options.maxBatchBytes ?? 4 * 1024 * 1024;
  const server = new ReapiServer({ host: '127.0.0.1', port: 0, maxMessageBytes: maxBatchBytes + 1024 * 1024, clock: systemClock, log });
  const services = cacheServices({
    store,
    actionCache,
    auth: new CallAuth({ tokens: [WRITE], readTokens: [READ] }),
    completeResults,
    maxBatchBytes,
    maxBlobBytes: options.maxBlobBytes ?? 64 * 1024 * 1024,
    log,
    executionEnabled: () => server.hasService(EXECUTION_SERVICE),
  });
  for (const s of [...services, ...(options.more ?? [])]) server.addService(s);
  const port = await server.start();
  const address = `127.0.0.1:${port}`;
  const { grpc: g } = reapiProtos();
  const v2 = g.build.bazel.remote.execution.v2;
  const creds = grpc.credentials.createInsecure();
  const clients = {
    cas: new v2.ContentAddressableStorage(address, creds),
    bytestream: new g.google.bytestream.ByteStream(address, creds),
    ac: new v2.ActionCache(address, creds),
    capabilities: new v2.Capabilities(address, creds),
  };
  return {
    server,
    store,
    completeResults,
    actionCache,
    address,
    ...clients,
    close: async () => {
      for (const c of Object.values(clients)) c.close();
      await server.stop();
      await store.close();
      await cleanup();
    },
  };
}

export function bearer(token: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return md;
}

/** Promise form of a unary client call (the method bound to its client). */
export function call<Res = unknown>(fn: (...args: never[]) => unknown, req: unknown, md: grpc.Metadata): Promise<Res> {
  const invoke = fn as unknown as (r: unknown, m: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown;
  return new Promise((resolve, reject) => invoke(req, md, (err, res) => (err ? reject(err) : resolve(res as Res))));
}

/** Resolves with the gRPC code a promise rejects with. */
export async function codeOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('expected the call to fail');
}

export const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });
export const uploadName = (d: Digest, instance = '') => `${instance ? `${instance}/` : ''}uploads/${randomUUID()}/blobs/${d.hash}/${d.size}`;
export const blobName = (d: Digest, instance = '') => `${instance ? `${instance}/` : ''}blobs/${d.hash}/${d.size}`;
export { digestOf };

/** ByteStream.Write of `chunks` as given (offsets computed unless overridden), resolving with the response or rejecting with the status. */
export function writeStream(
  client: ByteStreamClient,
  md: grpc.Metadata,
  messages: Array<{ resourceName?: string; data?: Buffer; writeOffset?: number; finishWrite?: boolean }>,
  opts: { halfClose?: boolean; cancelAfter?: boolean } = {},
): Promise<{ committedSize: number }> {
  return new Promise((resolve, reject) => {
    const stream = client.Write(md, (err, res) => (err ? reject(err) : resolve(res as { committedSize: number })));
    let offset = 0;
    for (const m of messages) {
      stream.write({ resourceName: m.resourceName ?? '', writeOffset: m.writeOffset ?? offset, finishWrite: m.finishWrite ?? false, data: m.data ?? Buffer.alloc(0) });
      offset += m.data?.length ?? 0;
    }
    if (opts.cancelAfter) stream.cancel();
    else if (opts.halfClose ?? true) stream.end();
  });
}

/** ByteStream.Read to the end, concatenated. */
export function readStream(client: ByteStreamClient, md: grpc.Metadata, req: { resourceName: string; readOffset?: number; readLimit?: number }): Promise<{ data: Buffer; messages: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = client.Read({ resourceName: req.resourceName, readOffset: req.readOffset ?? 0, readLimit: req.readLimit ?? 0 }, md);
    s.on('data', (m: { data: Buffer }) => chunks.push(m.data));
    s.on('error', reject);
    s.on('end', () => resolve({ data: Buffer.concat(chunks), messages: chunks.length }));
  });
}
