import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { BlobStore, Digest } from '../../src/cas';
import { CompleteResults, reapiProtos, type ActionResult__Output } from '../../src/remote-execution';
import { FakeClock } from '../fakes/fake-clock';
import { bearer, call, codeOf, digestOf, READ, startReapi, wire, WRITE, type ReapiFixture } from './reapi-fixture';

const w = bearer(WRITE);
const r = bearer(READ);

/** A stored result naming one output file and a Tree of one more file, all uploaded. */
async function storedResult(f: ReapiFixture, tag: string): Promise<{ action: { hash: string; sizeBytes: number }; out: Digest; inTree: Digest; tree: Digest }> {
  const codecs = reapiProtos();
  const out = Buffer.from(`output of ${tag}`);
  const inTree = Buffer.from(`file in the output directory of ${tag}`);
  const tree = codecs.tree.encode({ root: { files: [{ name: 'f', digest: wire(digestOf(inTree)) }] } });
  for (const b of [out, inTree, tree]) await f.store.put(Readable.from([b]));
  const action = wire(digestOf(`action ${tag}`));
  const actionResult = {
    exitCode: 0,
    outputFiles: [{ path: 'out.txt', digest: wire(digestOf(out)) }],
    outputDirectories: [{ path: 'dir', treeDigest: wire(digestOf(tree)) }],
  };
  await call(f.ac.UpdateActionResult.bind(f.ac), { actionDigest: action, actionResult }, w);
  return { action, out: digestOf(out), inTree: digestOf(inTree), tree: digestOf(tree) };
}

const get = (f: ReapiFixture, action: { hash: string; sizeBytes: number }) => call<{ outputFiles: Array<{ path: string }> }>(f.ac.GetActionResult.bind(f.ac), { actionDigest: action }, r);

describe('REAPI gRPC: remembered complete results never outlive their blobs', () => {
  let f: ReapiFixture;
  let clock: FakeClock;
  beforeEach(async () => {
    clock = new FakeClock();
    f = await startReapi({ clock });
  });
  afterEach(() => f.close());

  for (const which of ['out', 'inTree', 'tree'] as const) {
    it(`a remembered result whose ${which === 'out' ? 'output file' : which === 'tree' ? 'output Tree' : 'file inside an output Tree'} is deleted is NOT_FOUND next time`, async () => {
      const s = await storedResult(f, which);
      assert.equal((await get(f, s.action)).outputFiles[0]?.path, 'out.txt');
      assert.equal(f.completeResults.size, 1);
      assert.equal(await f.store.delete(s[which].hash), true);
      assert.equal((await codeOf(get(f, s.action))).code, status.NOT_FOUND);
      assert.equal(f.completeResults.size, 0);
    });
  }

  it('a remembered result whose output the store evicts is NOT_FOUND next time', async () => {
    const s = await storedResult(f, 'evicted');
    await get(f, s.action);
    // Least recently used first: make the output file the only blob older than the rest.
    for (const d of [s.inTree, s.tree]) f.store.touch(d.hash);
    const raw = await f.actionCache.getRaw(s.action.hash);
    assert.ok(raw);
    raw.stream.destroy();
    f.store.touch(raw.digest.hash);
    assert.ok((await f.store.trim(1)) >= s.out.size);
    assert.equal(await f.store.has(s.out), false, 'the output is the one evicted');
    assert.equal((await codeOf(get(f, s.action))).code, status.NOT_FOUND);
  });

  it('a file removed behind the store is found at the re-check a minute later', async () => {
    const s = await storedResult(f, 'behind');
    await get(f, s.action);
    await fsp.rm(f.store.blobPath(s.out.hash));
    clock.advance(60_000);
    assert.equal((await codeOf(get(f, s.action))).code, status.NOT_FOUND);
  });

  it('serves the stored result bytes as they are, unknown fields included', async () => {
    const codec = reapiProtos().actionResult;
    const out = Buffer.from('an output for the raw result');
    await f.store.put(Readable.from([out]));
    // Field 999 (varint 7) is no field of ActionResult: a decode and re-encode would drop it.
    const bytes = Buffer.concat([codec.encode({ exitCode: 3, outputFiles: [{ path: 'o', digest: wire(digestOf(out)) }] }), Buffer.from([0xb8, 0x3e, 0x07])]);
    const action = digestOf('raw action');
    await f.actionCache.putRaw(action.hash, Readable.from([bytes]), bytes.length);
    const client = new grpc.Client(f.address, grpc.credentials.createInsecure());
    try {
      const served = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          '/build.bazel.remote.execution.v2.ActionCache/GetActionResult',
          (req: object) => Buffer.from(reapiProtos().grpc.build.bazel.remote.execution.v2.ActionCache.service.GetActionResult.requestSerialize(req)),
          (b: Buffer) => b,
          { actionDigest: wire(action) },
          r,
          (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)),
        ),
      );
      assert.deepEqual(served, bytes);
      assert.equal(codec.decode(served).exitCode, 3);
    } finally {
      client.close();
    }
  });

  it('Execute-side and GetActionResult share one check: a result answered once is not checked again', async () => {
    const s = await storedResult(f, 'counted');
    let finds = 0;
    const counting: BlobStore = new Proxy(f.store, {
      get: (target, prop, receiver) => (prop === 'findMissing' ? (d: readonly Digest[]) => (finds++, target.findMissing(d)) : Reflect.get(target, prop, receiver)),
    });
    const raw = await f.actionCache.getRaw(s.action.hash);
    assert.ok(raw);
    raw.stream.destroy();
    assert.equal(f.completeResults.known(raw.digest.hash), false);
    await get(f, s.action);
    assert.equal(f.completeResults.known(raw.digest.hash), true);
    const result = reapiProtos().actionResult.decode((await f.store.getBuffer(raw.digest.hash))!);
    assert.equal(await f.completeResults.check(counting, raw.digest.hash, result), true);
    assert.equal(finds, 0);
    clock.advance(60_000);
    assert.equal(await f.completeResults.check(counting, raw.digest.hash, result), true);
    assert.equal(finds, 1, 'checked again after a minute');
  });
});

describe('CompleteResults', () => {
  const result = (blobs: Digest[]): ActionResult__Output =>
    ({ outputFiles: blobs.map((d, i) => ({ path: `o${i}`, digest: { hash: d.hash, sizeBytes: d.size } })), outputDirectories: [], stdoutDigest: null, stderrDigest: null }) as unknown as ActionResult__Output;
  /** A store holding everything; `during` runs inside each findMissing. */
  const store = (during: () => void = () => undefined): BlobStore =>
    ({
      findMissing: async () => {
        during();
        return [];
      },
    }) as unknown as BlobStore;

  it('does not remember a check that overlapped a removal (the blob it saw may be the one that left)', async () => {
    const memo = new CompleteResults({ clock: new FakeClock() });
    const a = digestOf('a');
    assert.equal(await memo.check(store(() => memo.removed(a.hash)), 'result-1', result([a])), true);
    assert.equal(memo.known('result-1'), false);
    assert.equal(await memo.check(store(), 'result-1', result([a])), true);
    assert.equal(memo.known('result-1'), true);
  });

  it('is bounded: the oldest checked result goes first, and its blobs no longer point at it', async () => {
    const memo = new CompleteResults({ clock: new FakeClock(), maxEntries: 2 });
    const shared = digestOf('shared');
    for (const id of ['r1', 'r2', 'r3']) await memo.check(store(), id, result([shared, digestOf(id)]));
    assert.equal(memo.size, 2);
    assert.deepEqual(['r1', 'r2', 'r3'].map((id) => memo.known(id)), [false, true, true]);
    memo.removed(shared.hash);
    assert.equal(memo.size, 0);
  });

  it('a removal of the result blob itself forgets it; removals of unrelated blobs do not', async () => {
    const memo = new CompleteResults({ clock: new FakeClock() });
    await memo.check(store(), 'r', result([digestOf('x')]));
    memo.removed(digestOf('unrelated').hash);
    assert.equal(memo.known('r'), true);
    memo.removed('r');
    assert.equal(memo.known('r'), false);
  });
});
