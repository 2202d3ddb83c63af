import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { reapiProtos, unary, type ReapiService } from '../../src/remote-execution';
import { recordingLogger } from '../cas/cas-fixtures';
import { bearer, blobName, call, digestOf, READ, readStream, startReapi, uploadName, wire, WRITE, writeStream, type ReapiFixture } from './reapi-fixture';

type Caps = {
  cacheCapabilities: { digestFunctions: string[]; actionCacheUpdateCapabilities: { updateEnabled: boolean }; maxBatchTotalSizeBytes: number };
  executionCapabilities: { execEnabled: boolean; digestFunction: string };
  lowApiVersion: { major: number; minor: number };
  highApiVersion: { major: number; minor: number };
};

describe('REAPI gRPC: the cache services through a real grpc-js client', () => {
  let f: ReapiFixture;
  const w = bearer(WRITE);
  const r = bearer(READ);
  before(async () => {
    f = await startReapi({ maxBatchBytes: 1024 * 1024 });
  });
  after(() => f.close());

  it('Capabilities: SHA-256, the batch limit, AC updates only for write tokens, execution off without an Execution service, API 2.0-2.3', async () => {
    const asWriter = await call<Caps>(f.capabilities.GetCapabilities.bind(f.capabilities), {}, w);
    assert.deepEqual(asWriter.cacheCapabilities.digestFunctions, ['SHA256']);
    assert.equal(asWriter.cacheCapabilities.maxBatchTotalSizeBytes, 1024 * 1024);
    assert.equal(asWriter.cacheCapabilities.actionCacheUpdateCapabilities.updateEnabled, true);
    assert.equal(asWriter.executionCapabilities.execEnabled, false);
    assert.equal(asWriter.executionCapabilities.digestFunction, 'SHA256');
    assert.deepEqual([asWriter.lowApiVersion.major, asWriter.lowApiVersion.minor, asWriter.highApiVersion.major, asWriter.highApiVersion.minor], [2, 0, 2, 3]);
    const asReader = await call<Caps>(f.capabilities.GetCapabilities.bind(f.capabilities), { instanceName: 'main' }, r);
    assert.equal(asReader.cacheCapabilities.actionCacheUpdateCapabilities.updateEnabled, false);
  });

  it('Capabilities reports execution enabled once an Execution service is registered on the server', async () => {
    const { grpc } = reapiProtos();
    const { log } = recordingLogger();
    const fail = (): Promise<never> => Promise.reject(new Error('not part of this test'));
    const execution: ReapiService = {
      definition: grpc.build.bazel.remote.execution.v2.Execution.service,
      implementation: { Execute: unary(log, 'Execute', fail), WaitExecution: unary(log, 'WaitExecution', fail) },
    };
    const g = await startReapi({ more: [execution] });
    try {
      const caps = await call<Caps>(g.capabilities.GetCapabilities.bind(g.capabilities), {}, w);
      assert.equal(caps.executionCapabilities.execEnabled, true);
    } finally {
      await g.close();
    }
  });

  it('BatchUpdateBlobs, FindMissingBlobs and BatchReadBlobs round-trip; the empty blob always exists; misses are per-blob NOT_FOUND', async () => {
    const blobs = [Buffer.from('alpha'), randomBytes(300 * 1024), Buffer.from('gamma')];
    const empty = digestOf(Buffer.alloc(0));
    const absent = digestOf('never uploaded');
    const before = await call<{ missingBlobDigests: Array<{ hash: string }> }>(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [...blobs.map((b) => wire(digestOf(b))), wire(empty)] }, r);
    assert.deepEqual(before.missingBlobDigests.map((d) => d.hash), blobs.map((b) => digestOf(b).hash));
    const up = await call<{ responses: Array<{ status: { code: number } }> }>(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: blobs.map((data) => ({ digest: wire(digestOf(data)), data })) }, w);
    assert.deepEqual(up.responses.map((x) => x.status.code), [0, 0, 0]);
    const after = await call<{ missingBlobDigests: unknown[] }>(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [...blobs.map((b) => wire(digestOf(b))), wire(absent)] }, r);
    assert.equal(after.missingBlobDigests.length, 1);
    const read = await call<{ responses: Array<{ digest: { hash: string }; data: Buffer; status: { code: number } }> }>(
      f.cas.BatchReadBlobs.bind(f.cas),
      { digests: [...blobs.map((b) => wire(digestOf(b))), wire(absent), wire(empty)] },
      r,
    );
    assert.deepEqual(read.responses.map((x) => x.status.code), [0, 0, 0, status.NOT_FOUND, 0]);
    blobs.forEach((b, i) => assert.deepEqual(read.responses[i]!.data, b));
    assert.equal(read.responses[4]!.data.length, 0);
  });

  it('ByteStream: a multi-megabyte blob written in chunks reads back whole, and by offset and limit, in bounded messages', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const d = digestOf(data);
    const chunks = [];
    for (let at = 0; at < data.length; at += 1024 * 1024) chunks.push({ data: data.subarray(at, at + 1024 * 1024) });
    chunks[0] = { ...chunks[0]!, resourceName: uploadName(d, 'ci/main') } as (typeof chunks)[number];
    (chunks[chunks.length - 1] as { finishWrite?: boolean }).finishWrite = true;
    const res = await writeStream(f.bytestream, w, chunks);
    assert.equal(res.committedSize, d.size);
    const whole = await readStream(f.bytestream, r, { resourceName: blobName(d, 'ci/main') });
    assert.ok(whole.data.equals(data));
    assert.ok(whole.messages >= Math.ceil(d.size / (64 * 1024)), `${whole.messages} messages`);
    const part = await readStream(f.bytestream, r, { resourceName: blobName(d), readOffset: 1_000_000, readLimit: 777_777 });
    assert.ok(part.data.equals(data.subarray(1_000_000, 1_777_777)));
    const tail = await readStream(f.bytestream, r, { resourceName: blobName(d), readOffset: d.size - 5 });
    assert.ok(tail.data.equals(data.subarray(d.size - 5)));
    const status_ = await call<{ committedSize: number; complete: boolean }>(f.bytestream.QueryWriteStatus.bind(f.bytestream), { resourceName: uploadName(d) }, w);
    assert.deepEqual({ c: status_.committedSize, done: status_.complete }, { c: d.size, done: true });
  });

  it('ByteStream: concurrent uploads of one blob all succeed, and uploading an existing blob is success at once with committed_size = size', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const d = digestOf(data);
    const half = data.length / 2;
    const results = await Promise.all(
      [1, 2, 3].map(() => writeStream(f.bytestream, w, [{ resourceName: uploadName(d), data: data.subarray(0, half) }, { data: data.subarray(half), finishWrite: true }])),
    );
    for (const x of results) assert.equal(x.committedSize, d.size);
    // Only the first message is sent, without finish_write: the server answers without waiting for the rest.
    const again = await writeStream(f.bytestream, w, [{ resourceName: uploadName(d), data: data.subarray(0, 10) }], { halfClose: false });
    assert.equal(again.committedSize, d.size);
    assert.ok((await readStream(f.bytestream, r, { resourceName: blobName(d) })).data.equals(data));
  });

  it('GetTree returns every directory once, breadth first, in pages whose tokens resume the walk', async () => {
    const p = reapiProtos();
    const file = Buffer.from('leaf file');
    const leafA = p.directory.encode({ files: [{ name: 'f', digest: wire(digestOf(file)) }] });
    const leafB = p.directory.encode({ files: [{ name: 'g', digest: wire(digestOf(file)), isExecutable: true }] });
    const mid = p.directory.encode({ directories: [{ name: 'a', digest: wire(digestOf(leafA)) }, { name: 'b', digest: wire(digestOf(leafB)) }] });
    const missing = wire(digestOf('a directory nobody uploaded'));
    const root = p.directory.encode({
      directories: [
        { name: 'gone', digest: missing },
        { name: 'm1', digest: wire(digestOf(mid)) },
        { name: 'm2', digest: wire(digestOf(mid)) },
      ],
    });
    await call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [file, leafA, leafB, mid, root].map((data) => ({ digest: wire(digestOf(data)), data })) }, w);
    const getTree = (pageSize: number, pageToken = '') =>
      new Promise<Array<{ directories: unknown[]; nextPageToken: string }>>((resolve, reject) => {
        const pages: Array<{ directories: unknown[]; nextPageToken: string }> = [];
        const s = f.cas.GetTree({ rootDigest: wire(digestOf(root)), pageSize, pageToken }, r);
        s.on('data', (m: { directories: unknown[]; nextPageToken: string }) => pages.push(m));
        s.on('error', reject);
        s.on('end', () => resolve(pages));
      });
    const encodeAll = (pages: Array<{ directories: unknown[] }>) => pages.flatMap((pg) => pg.directories.map((d) => p.directory.encode(d as never).toString('hex')));
    const all = await getTree(0);
    assert.equal(all.length, 1);
    assert.deepEqual(encodeAll(all), [root, mid, leafA, leafB].map((b) => b.toString('hex')));
    assert.equal(all[0]!.nextPageToken, '');
    const paged = await getTree(1);
    assert.deepEqual(paged.map((pg) => pg.directories.length), [1, 1, 1, 1]);
    assert.deepEqual(encodeAll(paged), encodeAll(all));
    assert.equal(paged[paged.length - 1]!.nextPageToken, '');
    const resumed = await getTree(2, paged[1]!.nextPageToken);
    assert.deepEqual(encodeAll(resumed), encodeAll(all).slice(2));
  });

  it('ActionCache: UpdateActionResult then GetActionResult; the stored bytes are the canonical ActionResult proto', async () => {
    const out = Buffer.from('built output');
    const stderr = Buffer.from('warning: something');
    await call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [out, stderr].map((data) => ({ digest: wire(digestOf(data)), data })) }, w);
    const action = wire(digestOf('an action proto'));
    const result = { exitCode: 0, outputFiles: [{ path: 'bazel-out/k8/bin/out.txt', digest: wire(digestOf(out)), isExecutable: true }], stderrDigest: wire(digestOf(stderr)), executionMetadata: { worker: 'agent-1' } };
    await call(f.ac.UpdateActionResult.bind(f.ac), { actionDigest: action, actionResult: result }, w);
    const got = await call<{ exitCode: number; outputFiles: Array<{ path: string; isExecutable: boolean }>; executionMetadata: { worker: string } }>(f.ac.GetActionResult.bind(f.ac), { actionDigest: action }, r);
    assert.equal(got.outputFiles[0]!.path, 'bazel-out/k8/bin/out.txt');
    assert.equal(got.outputFiles[0]!.isExecutable, true);
    assert.equal(got.executionMetadata.worker, 'agent-1');
    const raw = await f.actionCache.getRaw(action.hash);
    assert.ok(raw);
    const chunks: Buffer[] = [];
    for await (const c of raw.stream) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), reapiProtos().actionResult.encode(result));
    const miss = await call(f.ac.GetActionResult.bind(f.ac), { actionDigest: wire(digestOf('never run')) }, r).catch((e: { code: number }) => e.code);
    assert.equal(miss, status.NOT_FOUND);
  });
});
