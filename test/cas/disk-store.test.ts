import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  BlobCorruptError,
  CasFullError,
  DigestMismatchError,
  DiskStore,
  EMPTY_DIGEST,
  digestOf,
  type DiskStoreOptions,
} from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { readAll, recordingLogger, tempRoot } from './cas-fixtures';

describe('cas DiskStore', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let clock: FakeClock;
  const stores: DiskStore[] = [];

  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('disk'));
    clock = new FakeClock();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    await cleanup();
  });

  async function open(extra: Partial<DiskStoreOptions> = {}) {
    const { log, entries } = recordingLogger();
    const store = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock, log, ...extra });
    stores.push(store);
    return { store, entries };
  }

  it('stores, finds, reads and deletes a blob', async () => {
    const { store } = await open();
    const data = randomBytes(300_000);
    const d = digestOf(data);
    assert.equal(await store.has(d), false);
    assert.deepEqual(await store.findMissing([d, d, EMPTY_DIGEST]), [d]);
    const put = await store.put(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), { hash: d.hash });
    assert.deepEqual(put, { digest: d, stored: true });
    assert.equal(await store.has(d), true);
    assert.equal(await store.has({ hash: d.hash, size: d.size + 1 }), false);
    assert.deepEqual(await store.findMissing([d]), []);
    const reader = await store.get(d.hash);
    assert.ok(reader);
    assert.deepEqual(reader.digest, d);
    assert.ok((await readAll(reader.stream)).equals(data));
    assert.ok((await fsp.stat(store.blobPath(d.hash))).isFile());
    assert.equal(store.blobPath(d.hash), path.join(root, 'cas', d.hash.slice(0, 2), d.hash));
    assert.equal(await store.delete(d.hash), true);
    assert.equal(await store.delete(d.hash), false);
    assert.equal(await store.get(d.hash), undefined);
    assert.equal(await store.has(d), false);
  });

  it('always has the empty blob', async () => {
    const { store } = await open();
    assert.equal(await store.has(EMPTY_DIGEST), true);
    assert.deepEqual(await store.findMissing([EMPTY_DIGEST]), []);
    const reader = await store.get(EMPTY_DIGEST.hash);
    assert.ok(reader);
    assert.equal((await readAll(reader.stream)).length, 0);
    assert.deepEqual(await store.putBuffer(Buffer.alloc(0)), { digest: EMPTY_DIGEST, stored: false });
    assert.equal(await store.delete(EMPTY_DIGEST.hash), false);
    assert.equal(await store.has(EMPTY_DIGEST), true);
  });

  it('rejects an upload whose hash or size does not match, leaving nothing behind', async () => {
    const { store } = await open();
    const data = Buffer.from('the real bytes');
    const d = digestOf(data);
    const other = digestOf('something else');
    await assert.rejects(store.put(Readable.from([data]), { hash: other.hash }), DigestMismatchError);
    await assert.rejects(store.put(Readable.from([data]), { hash: d.hash, size: d.size + 1 }), DigestMismatchError);
    await assert.rejects(store.put(Readable.from([data]), { hash: d.hash, size: d.size - 1 }), DigestMismatchError);
    await assert.rejects(store.put(Readable.from([data]), { hash: 'ABC' }), /bad blob hash/);
    assert.equal(await store.has(d), false);
    assert.equal(await store.has(other), false);
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), []);
    assert.equal(store.stats().reservedBytes, 0);
  });

  it('lets concurrent uploads of the same blob all succeed, storing it once', async () => {
    const { store } = await open();
    const data = randomBytes(2 * 1024 * 1024);
    const d = digestOf(data);
    const chunks = [data.subarray(0, 700_000), data.subarray(700_000, 1_500_000), data.subarray(1_500_000)];
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.put(Readable.from(i % 2 ? chunks : [data]), { hash: d.hash, size: i % 3 ? d.size : undefined })),
    );
    assert.ok(results.every((r) => r.digest.hash === d.hash && r.digest.size === d.size));
    assert.equal(results.filter((r) => r.stored).length, 1);
    assert.equal(store.stats().entries, 1);
    assert.equal(store.stats().usedBytes, d.size);
    assert.ok((await store.getBuffer(d.hash))?.equals(data));
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), []);
  });

  it('detects a flipped byte while streaming (above verifyFirstMaxBytes), never delivers the whole blob, and removes it', async () => {
    const { store, entries } = await open({ verifyFirstMaxBytes: 0 });
    const data = randomBytes(1024 * 1024);
    const d = digestOf(data);
    await store.putBuffer(data);
    const file = store.blobPath(d.hash);
    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 10] ^= 0xff;
    await fsp.writeFile(file, bytes);

    const reader = await store.get(d.hash);
    assert.ok(reader, 'the size still matches, so only reading can tell');
    let received = 0;
    await assert.rejects(async () => {
      for await (const c of reader.stream) received += (c as Buffer).length;
    }, BlobCorruptError);
    assert.ok(received < d.size, `received ${received} of ${d.size} bytes`);
    assert.equal(store.stats().corruptionsDetected, 1, 'counted (and removed) before the reader sees the error');
    await assert.rejects(fsp.stat(file), { code: 'ENOENT' });
    assert.equal(await store.has(d), false);
    assert.equal(await store.get(d.hash), undefined);
    assert.ok(entries.some((e) => e.event === 'cas.corrupt-blob' && e['hash'] === d.hash));
    // And it can be uploaded again.
    assert.equal((await store.putBuffer(data)).stored, true);
    assert.ok((await store.getBuffer(d.hash))?.equals(data));
  });

  it('serves concurrent GETs of one small blob from one read, and never a corrupted small blob', async () => {
    const { store } = await open();
    const data = randomBytes(4096);
    const d = digestOf(data);
    await store.putBuffer(data);
    const realReadFile = fsp.readFile;
    let reads = 0;
    (fsp as { readFile: typeof fsp.readFile }).readFile = ((...args: Parameters<typeof fsp.readFile>) => {
      reads++;
      return realReadFile(...args);
    }) as typeof fsp.readFile;
    try {
      const got = await Promise.all(Array.from({ length: 10 }, () => store.getBuffer(d.hash)));
      assert.ok(got.every((b) => b?.equals(data)));
      assert.equal(reads, 1);
    } finally {
      (fsp as { readFile: typeof fsp.readFile }).readFile = realReadFile;
    }
    const other = randomBytes(4096);
    await store.putBuffer(other);
    const bytes = await fsp.readFile(store.blobPath(digestOf(other).hash));
    bytes[7] ^= 0xff;
    await fsp.writeFile(store.blobPath(digestOf(other).hash), bytes);
    assert.equal(await store.get(digestOf(other).hash), undefined, 'detected before a byte is served');
    assert.equal(store.stats().corruptionsDetected, 1);
    assert.equal(await store.has(digestOf(other)), false);
  });

  it('verifies a blob up to verifyFirstMaxBytes before handing out a byte, and only on its first read after open', async () => {
    const { store } = await open({ verifyFirstMaxBytes: 4 * 1024 * 1024 });
    const bad = randomBytes(3 * 1024 * 1024);
    await store.putBuffer(bad);
    const file = store.blobPath(digestOf(bad).hash);
    const fh = await fsp.open(file, 'r+');
    await fh.write(Buffer.from([bad[0]! ^ 1]), 0, 1, 0);
    await fh.close();
    assert.equal(await store.get(digestOf(bad).hash), undefined, 'a miss, not a stream that fails later');
    assert.equal(store.stats().corruptionsDetected, 1);

    const good = randomBytes(2 * 1024 * 1024);
    await store.putBuffer(good);
    assert.ok((await store.getBuffer(digestOf(good).hash))?.equals(good));
    // Verified once: rot after that first read is caught on the next start (or a client's own check), not per hit.
    const gfh = await fsp.open(store.blobPath(digestOf(good).hash), 'r+');
    await gfh.write(Buffer.from([good[0]! ^ 1]), 0, 1, 0);
    await gfh.close();
    assert.ok(await store.getBuffer(digestOf(good).hash), 'served without rehashing');
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const { store: reopened } = await open({ verifyFirstMaxBytes: 4 * 1024 * 1024 });
    assert.equal(await reopened.get(digestOf(good).hash), undefined, 'verified again after a restart');
    assert.equal(reopened.stats().corruptionsDetected, 1);
  });

  it('treats a truncated file as corrupt without streaming it', async () => {
    const { store } = await open();
    const data = randomBytes(5000);
    const d = digestOf(data);
    await store.putBuffer(data);
    await fsp.truncate(store.blobPath(d.hash), 100);
    assert.equal(await store.get(d.hash), undefined);
    assert.equal(store.stats().corruptionsDetected, 1);
    assert.equal(await store.getBuffer(d.hash), undefined);
  });

  it('evicts least recently used blobs between the watermarks', async () => {
    const { store, entries } = await open({ maxBytes: 1000, highWatermark: 900, lowWatermark: 500 });
    const blobs = Array.from({ length: 9 }, (_, i) => Buffer.alloc(100, i + 1));
    const ds = blobs.map((b) => digestOf(b));
    for (const b of blobs) {
      clock.advance(1000);
      await store.putBuffer(b);
    }
    assert.equal(store.stats().usedBytes, 900, 'at, not above, the high watermark: nothing evicted yet');
    clock.advance(1000);
    assert.ok(await store.getBuffer(ds[0]!.hash)); // blob 0 becomes most recent
    assert.deepEqual(await store.findMissing([ds[1]!]), []); // then blob 1
    clock.advance(1000);
    await store.putBuffer(Buffer.alloc(100, 0xaa)); // 1000 > 900: evict down to 500
    assert.equal(store.stats().usedBytes, 500);
    const present = await Promise.all(ds.map((d) => store.has(d)));
    // LRU order was 2,3,4,5,6,7,8,0,1,new: the five oldest go.
    assert.deepEqual(present, [true, true, false, false, false, false, false, true, true]);
    assert.equal(store.stats().evictions, 5);
    assert.ok(entries.some((e) => e.event === 'cas.evicted' && e['count'] === 5));
  });

  it('refuses (CasFullError) a blob that cannot fit, and one that uploads in flight crowd out', async () => {
    const { store } = await open({ maxBytes: 1000 });
    await assert.rejects(store.putBuffer(Buffer.alloc(1001, 1)), CasFullError);
    const unknownSize = Buffer.alloc(1001, 2);
    await assert.rejects(store.put(Readable.from([unknownSize]), { hash: digestOf(unknownSize).hash }), CasFullError);
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), []);

    const slow = Buffer.alloc(800, 3);
    const body = new PassThrough();
    const inFlight = store.put(body, { hash: digestOf(slow).hash, size: slow.length });
    await new Promise((r) => setImmediate(r));
    assert.equal(store.stats().reservedBytes, 800);
    await assert.rejects(store.putBuffer(Buffer.alloc(300, 4)), CasFullError);
    body.end(slow);
    assert.equal((await inFlight).stored, true);
    assert.equal(store.stats().reservedBytes, 0);
    // Now the 800-byte blob is evictable, so a 300-byte one fits by evicting it.
    assert.equal((await store.putBuffer(Buffer.alloc(300, 4))).stored, true);
    assert.equal(await store.has(digestOf(slow)), false);
  });

  it('reopens from its index without rehashing, keeping LRU order and verifying on read', async () => {
    let { store } = await open({ maxBytes: 1000, highWatermark: 1000, lowWatermark: 300 });
    const ds = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(10);
      ds.push((await store.putBuffer(Buffer.alloc(100, i + 1))).digest);
    }
    clock.advance(10);
    await store.findMissing([ds[0]!]); // 0 is now the most recent
    await store.close();
    stores.length = 0;

    // Corrupt one blob and delete another behind the store's back; open must not notice
    // (no rescan), reads must.
    const f2 = path.join(root, 'cas', ds[2]!.hash.slice(0, 2), ds[2]!.hash);
    const b = await fsp.readFile(f2);
    b[0] ^= 1;
    await fsp.writeFile(f2, b);
    await fsp.rm(path.join(root, 'cas', ds[3]!.hash.slice(0, 2), ds[3]!.hash));
    await fsp.writeFile(path.join(root, 'tmp', 'leftover.partial'), 'x');
    await fsp.appendFile(path.join(root, 'index.log'), '+ 12ab torn li');

    ({ store } = await open({ maxBytes: 1000, highWatermark: 1000, lowWatermark: 300 }));
    assert.equal(store.stats().entries, 5);
    assert.equal(store.stats().corruptionsDetected, 0);
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), []);
    assert.equal(await store.getBuffer(ds[2]!.hash), undefined);
    assert.equal(store.stats().corruptionsDetected, 1);
    assert.equal(await store.has(ds[3]!), false);
    assert.equal(store.stats().entries, 3);
    // LRU survived the restart: 1 is oldest, then 4, then 0 (touched just before close).
    clock.advance(10);
    await store.putBuffer(Buffer.alloc(900, 9)); // 300 + 900 > 1000: evict until it fits
    assert.deepEqual(await Promise.all([ds[0]!, ds[1]!, ds[4]!].map((d) => store.has(d))), [true, false, false]);
    assert.equal(store.stats().usedBytes, 1000);
  });
});
