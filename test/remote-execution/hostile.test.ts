import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { bearer, blobName, call, codeOf, digestOf, READ, startReapi, uploadName, wire, WRITE, writeStream, readStream, type ReapiFixture } from './reapi-fixture';

describe('REAPI gRPC: hostile clients', () => {
  let f: ReapiFixture;
  const w = bearer(WRITE);
  const r = bearer(READ);
  before(async () => {
    f = await startReapi({ maxBatchBytes: 64 * 1024, maxBlobBytes: 1024 * 1024 });
  });
  after(() => f.close());

  it('refuses calls without a token or with a wrong one (UNAUTHENTICATED), on every service', async () => {
    const d = digestOf('x');
    for (const md of [bearer(undefined), bearer('not-a-token-at-all-xx'), (() => { const m = bearer(undefined); m.set('authorization', 'Basic !!!'); return m; })()]) {
      const got = [
        await codeOf(call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [wire(d)] }, md)),
        await codeOf(call(f.capabilities.GetCapabilities.bind(f.capabilities), {}, md)),
        await codeOf(call(f.ac.GetActionResult.bind(f.ac), { actionDigest: wire(d) }, md)),
        await codeOf(readStream(f.bytestream, md, { resourceName: blobName(d) })),
        await codeOf(writeStream(f.bytestream, md, [{ resourceName: uploadName(d), data: Buffer.from('x'), finishWrite: true }])),
      ];
      for (const g of got) assert.equal(g.code, status.UNAUTHENTICATED, g.details);
    }
    assert.equal(await f.store.has(d), false);
  });

  it('refuses writes with a read token (PERMISSION_DENIED) and stores nothing', async () => {
    const data = Buffer.from('read tokens may not write');
    const d = digestOf(data);
    const got = [
      await codeOf(call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [{ digest: wire(d), data }] }, r)),
      await codeOf(writeStream(f.bytestream, r, [{ resourceName: uploadName(d), data, finishWrite: true }])),
      await codeOf(call(f.ac.UpdateActionResult.bind(f.ac), { actionDigest: wire(d), actionResult: { exitCode: 0 } }, r)),
      await codeOf(call(f.bytestream.QueryWriteStatus.bind(f.bytestream), { resourceName: uploadName(d) }, r)),
    ];
    for (const g of got) assert.equal(g.code, status.PERMISSION_DENIED, g.details);
    assert.equal(await f.store.has(d), false);
    // ...while reading with it works.
    const missing = await call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [wire(d)] }, r);
    assert.equal((missing as { missingBlobDigests: unknown[] }).missingBlobDigests.length, 1);
    // A read token once accepted (and remembered) for reading is still refused a write, and a
    // value differing from it by a character is still no token at all.
    assert.equal((await codeOf(call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [{ digest: wire(d), data }] }, r))).code, status.PERMISSION_DENIED);
    assert.equal((await codeOf(call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [wire(d)] }, bearer(`${READ}x`)))).code, status.UNAUTHENTICATED);
    assert.equal((await codeOf(call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [wire(d)] }, bearer(READ.slice(0, -1))))).code, status.UNAUTHENTICATED);
    assert.equal(await f.store.has(d), false);
  });

  it('BatchUpdateBlobs: a blob whose bytes do not match its digest gets INVALID_ARGUMENT alone; the others are stored', async () => {
    const good = Buffer.from('good blob');
    const bad = Buffer.from('bad blob!');
    const res = (await call(f.cas.BatchUpdateBlobs.bind(f.cas), {
      requests: [
        { digest: wire(digestOf(good)), data: good },
        { digest: wire(digestOf('something else')), data: bad },
        { digest: { hash: 'ABC', sizeBytes: 3 }, data: Buffer.from('abc') },
        { digest: { hash: digestOf(bad).hash, sizeBytes: 99 }, data: bad },
      ],
    }, w)) as { responses: Array<{ status: { code: number; message: string } }> };
    assert.deepEqual(res.responses.map((x) => x.status.code), [status.OK, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT]);
    assert.equal(await f.store.has(digestOf(good)), true);
    assert.equal(await f.store.has(digestOf(bad)), false);
    assert.equal(await f.store.has(digestOf('something else')), false);
  });

  it('batches over max_batch_total_size_bytes: INVALID_ARGUMENT, and past the message limit RESOURCE_EXHAUSTED', async () => {
    const big = randomBytes(40 * 1024);
    const reqs = [big, randomBytes(40 * 1024)].map((data) => ({ digest: wire(digestOf(data)), data }));
    const over = await codeOf(call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: reqs }, w));
    assert.equal(over.code, status.INVALID_ARGUMENT);
    assert.match(over.details, /max_batch_total_size_bytes/);
    for (const q of reqs) assert.equal(await f.store.has({ hash: q.digest.hash, size: q.digest.sizeBytes }), false);
    const huge = randomBytes(1200 * 1024);
    const tooBig = await codeOf(call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [{ digest: wire(digestOf(huge)), data: huge }] }, w));
    assert.equal(tooBig.code, status.RESOURCE_EXHAUSTED);
    const reads = await codeOf(call(f.cas.BatchReadBlobs.bind(f.cas), { digests: [wire(digestOf(big)), wire(digestOf(huge))] }, r));
    assert.equal(reads.code, status.INVALID_ARGUMENT);
  });

  it('a batch of thousands of tiny blobs is stored with bounded concurrency, every blob answered', async () => {
    const blobs = Array.from({ length: 3000 }, (_, i) => Buffer.from(`tiny blob ${i}`));
    const res = await call<{ responses: Array<{ digest: { hash: string }; status: { code: number } }> }>(
      f.cas.BatchUpdateBlobs.bind(f.cas),
      { requests: blobs.map((data) => ({ digest: wire(digestOf(data)), data })) },
      w,
    );
    assert.equal(res.responses.length, blobs.length);
    assert.ok(res.responses.every((x, i) => x.status.code === status.OK && x.digest.hash === digestOf(blobs[i]!).hash));
    const missing = await call<{ missingBlobDigests: unknown[] }>(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: blobs.map((b) => wire(digestOf(b))) }, r);
    assert.equal(missing.missingBlobDigests.length, 0);
  });

  it('ByteStream.Write with the wrong hash, a short or long body, a bad offset or no finish_write fails and commits nothing', async () => {
    const data = randomBytes(200 * 1024);
    const d = digestOf(data);
    const wrongHash = { hash: digestOf('other').hash, size: d.size };
    const cases: Array<[string, Parameters<typeof writeStream>[2], Parameters<typeof writeStream>[3]?]> = [
      ['wrong hash', [{ resourceName: uploadName(wrongHash), data, finishWrite: true }]],
      ['declared bigger than sent', [{ resourceName: uploadName({ hash: d.hash, size: d.size + 10 }), data, finishWrite: true }]],
      ['more than declared', [{ resourceName: uploadName({ hash: d.hash, size: 1000 }), data, finishWrite: true }]],
      ['first offset not 0', [{ resourceName: uploadName(d), data, writeOffset: 5, finishWrite: true }]],
      ['gap in offsets', [{ resourceName: uploadName(d), data: data.subarray(0, 1000) }, { data: data.subarray(1000), writeOffset: 2000, finishWrite: true }]],
      ['resource name changes', [{ resourceName: uploadName(d), data: data.subarray(0, 1000) }, { resourceName: uploadName(d), data: data.subarray(1000), finishWrite: true }]],
      ['truncated: half-closed before finish_write', [{ resourceName: uploadName(d), data: data.subarray(0, 1000) }]],
      ['empty stream', []],
    ];
    for (const [what, msgs, opts] of cases) {
      const got = await codeOf(writeStream(f.bytestream, w, msgs, opts));
      assert.equal(got.code, status.INVALID_ARGUMENT, `${what}: ${got.details}`);
    }
    assert.equal(await f.store.has(d), false);
    assert.equal(await f.store.has(wrongHash), false);
    const qs = (await call(f.bytestream.QueryWriteStatus.bind(f.bytestream), { resourceName: uploadName(d) }, w)) as { committedSize: number; complete: boolean };
    assert.deepEqual({ committedSize: qs.committedSize, complete: qs.complete }, { committedSize: 0, complete: false });
    // A client that goes away mid-upload leaves nothing either; the same blob then uploads fine.
    await codeOf(writeStream(f.bytestream, w, [{ resourceName: uploadName(d), data: data.subarray(0, 5000) }], { cancelAfter: true }));
    const ok = await writeStream(f.bytestream, w, [{ resourceName: uploadName(d), data: data.subarray(0, 100_000) }, { data: data.subarray(100_000), finishWrite: true }]);
    assert.equal(ok.committedSize, d.size);
    assert.deepEqual((await readStream(f.bytestream, r, { resourceName: blobName(d) })).data, data);
  });

  it('a blob over cas.maxBlobMb is refused before any byte is stored', async () => {
    const got = await codeOf(writeStream(f.bytestream, w, [{ resourceName: uploadName({ hash: digestOf('x').hash, size: 2 * 1024 * 1024 }), data: Buffer.from('x') }]));
    assert.equal(got.code, status.INVALID_ARGUMENT);
    assert.match(got.details, /limit/);
  });

  it('resource names are parsed strictly: traversal, bad hex or size, wrong shape, compressed-blobs', async () => {
    const h = digestOf('n').hash;
    const reads = [
      `../blobs/${h}/1`, `a/../blobs/${h}/1`, `a//blobs/${h}/1`, `/blobs/${h}/1`, `./blobs/${h}/1`, `blobs/${h}/1/`, `blobs/${h}/1/extra`,
      `blobs/${h.toUpperCase()}/1`, `blobs/${h.slice(1)}/1`, `blobs/${h}/01`, `blobs/${h}/-1`, `blobs/${h}/1e3`, `blobs/${h}`, 'blobs',
      `uploads/x/blobs/${h}/1`, `compressed-blobs/zstd/${h}/1`, `sha256/blobs/x/${h}/1`, `in%2F..%2F/blobs/${h}/1`, '', `${'a/'.repeat(1100)}blobs/${h}/1`,
    ];
    for (const name of reads) {
      const got = await codeOf(readStream(f.bytestream, r, { resourceName: name }));
      assert.equal(got.code, status.INVALID_ARGUMENT, `${name}: ${got.details}`);
    }
    const uuid = '3f2a1f7e-0c4b-4b4e-9a9e-2f1d8f9a7c10';
    const writes = [
      `uploads/${uuid}/blobs/../${h}/1`, `uploads/not-a-uuid/blobs/${h}/1`, `uploads/${uuid}/${h}/1`, `../uploads/${uuid}/blobs/${h}/1`,
      `uploads/${uuid}/blobs/${h}/1/..`, `uploads/${uuid}/compressed-blobs/zstd/${h}/1`, `blobs/${h}/1`, `uploads/${uuid}/blobs/${h}/007`,
    ];
    for (const name of writes) {
      const got = await codeOf(writeStream(f.bytestream, w, [{ resourceName: name, data: Buffer.from('n'), finishWrite: true }]));
      assert.equal(got.code, status.INVALID_ARGUMENT, `${name}: ${got.details}`);
    }
    assert.equal(await f.store.has(digestOf('n')), false);
  });

  it('ByteStream.Read: a missing blob is NOT_FOUND, an offset past the end OUT_OF_RANGE, a negative limit INVALID_ARGUMENT', async () => {
    const data = Buffer.from('0123456789');
    await writeStream(f.bytestream, w, [{ resourceName: uploadName(digestOf(data)), data, finishWrite: true }]);
    assert.equal((await codeOf(readStream(f.bytestream, r, { resourceName: blobName(digestOf('absent')) }))).code, status.NOT_FOUND);
    // Right hash, wrong size: not the same digest.
    assert.equal((await codeOf(readStream(f.bytestream, r, { resourceName: blobName({ hash: digestOf(data).hash, size: 11 }) }))).code, status.NOT_FOUND);
    assert.equal((await codeOf(readStream(f.bytestream, r, { resourceName: blobName(digestOf(data)), readOffset: 11 }))).code, status.OUT_OF_RANGE);
    assert.equal((await codeOf(readStream(f.bytestream, r, { resourceName: blobName(digestOf(data)), readOffset: -1 }))).code, status.OUT_OF_RANGE);
    assert.equal((await codeOf(readStream(f.bytestream, r, { resourceName: blobName(digestOf(data)), readLimit: -1 }))).code, status.INVALID_ARGUMENT);
  });

  it('malformed digests, instance names and digest functions are INVALID_ARGUMENT', async () => {
    const d = wire(digestOf('q'));
    const bad = [
      call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [d, { hash: 'zz', sizeBytes: 1 }] }, r),
      call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [{ hash: d.hash, sizeBytes: -5 }] }, r),
      call(f.cas.FindMissingBlobs.bind(f.cas), { blobDigests: [d], digestFunction: 'SHA1' }, r),
      call(f.cas.FindMissingBlobs.bind(f.cas), { instanceName: '../etc', blobDigests: [d] }, r),
      call(f.cas.FindMissingBlobs.bind(f.cas), { instanceName: 'a/blobs', blobDigests: [d] }, r),
      call(f.cas.BatchReadBlobs.bind(f.cas), { digests: [{ hash: d.hash.toUpperCase(), sizeBytes: 1 }] }, r),
      call(f.ac.GetActionResult.bind(f.ac), {}, r),
      call(f.ac.UpdateActionResult.bind(f.ac), { actionDigest: d }, w),
      call(f.ac.UpdateActionResult.bind(f.ac), { actionDigest: d, actionResult: { outputFiles: [{ path: 'a', digest: { hash: 'nothex', sizeBytes: 1 } }] } }, w),
    ];
    for (const p of bad) assert.equal((await codeOf(p)).code, status.INVALID_ARGUMENT);
  });

  it('GetTree: a root that is not a Directory proto is INVALID_ARGUMENT, a missing root NOT_FOUND, a forged page token INVALID_ARGUMENT', async () => {
    const text = Buffer.from('this is plain text, not a Directory');
    const junk = Buffer.from([0x0a, 0x05, 0x01]);
    await call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [text, junk].map((data) => ({ digest: wire(digestOf(data)), data })) }, w);
    const tree = (root: ReturnType<typeof wire>, pageToken = '') =>
      new Promise<void>((resolve, reject) => {
        const s = f.cas.GetTree({ rootDigest: root, pageToken }, r);
        s.on('data', () => undefined);
        s.on('error', reject);
        s.on('end', resolve);
      });
    for (const data of [text, junk]) {
      const got = await codeOf(tree(wire(digestOf(data))));
      assert.equal(got.code, status.INVALID_ARGUMENT, got.details);
    }
    assert.equal((await codeOf(tree(wire(digestOf('no such dir'))))).code, status.NOT_FOUND);
    // A root digest far larger than any Directory is refused without reading the blob.
    const huge = await codeOf(tree({ hash: digestOf('x').hash, sizeBytes: 1 << 30 }));
    assert.equal(huge.code, status.INVALID_ARGUMENT);
    assert.match(huge.details, /too large/);
    for (const token of ['abc', '-1', '0', '1e9', '12345678901']) assert.equal((await codeOf(tree(wire(digestOf(text)), token))).code, status.INVALID_ARGUMENT, token);
  });

  it('GetActionResult: a result whose outputs are missing from the CAS is a miss (NOT_FOUND)', async () => {
    const out = Buffer.from('output that was never uploaded');
    const action = wire(digestOf('action with missing output'));
    await call(f.ac.UpdateActionResult.bind(f.ac), { actionDigest: action, actionResult: { exitCode: 0, outputFiles: [{ path: 'out.txt', digest: wire(digestOf(out)) }] } }, w);
    const got = await codeOf(call(f.ac.GetActionResult.bind(f.ac), { actionDigest: action }, r));
    assert.equal(got.code, status.NOT_FOUND);
    // Once the output exists the same entry is served.
    await call(f.cas.BatchUpdateBlobs.bind(f.cas), { requests: [{ digest: wire(digestOf(out)), data: out }] }, w);
    const hit = (await call(f.ac.GetActionResult.bind(f.ac), { actionDigest: action }, r)) as { outputFiles: Array<{ path: string }> };
    assert.equal(hit.outputFiles[0]?.path, 'out.txt');
  });
});
