import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { DiskStore, MemoryTier, digestOf, type BlobReader, type BlobStore, type Digest } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { readAll, recordingLogger, tempRoot } from './cas-fixtures';

/** An inner store that answers every get with the bytes it is given, right or wrong. */
class LyingStore implements BlobStore {
  readonly deleted: string[] = [];
  constructor(private readonly served: Map<string, Buffer>) {}
  async get(hash: string): Promise<BlobReader | undefined> {
    const data = this.served.get(hash);
    return data ? { digest: { hash, size: data.length }, stream: Readable.from([data]) } : undefined;
  }
  async delete(hash: string): Promise<boolean> {
    this.deleted.push(hash);
    return this.served.delete(hash);
  }
  put(): never {
    throw new Error('LyingStore.put: not used by these tests');
  }
  has(): never {
    throw new Error('LyingStore.has: not used by these tests');
  }
  sizeOf(): never {
    throw new Error('LyingStore.sizeOf: not used by these tests');
  }
  findMissing(_d: readonly Digest[]): never {
    throw new Error('LyingStore.findMissing: not used by these tests');
  }
  touch(hash: string): boolean {
    return this.served.has(hash);
  }
}

describe('cas MemoryTier', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let disk: DiskStore;
  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('memory'));
    disk = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log: recordingLogger().log });
  });
  afterEach(async () => {
    await disk.close();
    await cleanup();
  });

  it('serves a hot small blob from memory without touching the disk, and keeps it recent there', async () => {
    const tier = new MemoryTier({ inner: disk, maxBytes: 1024 * 1024, log: recordingLogger().log });
    const data = randomBytes(4096);
    const d = digestOf(data);
    await disk.putBuffer(data);
    assert.ok((await tier.get(d.hash))?.data?.equals(data));
    const realOpen = fsp.open;
    const realReadFile = fsp.readFile;
    let touched = 0;
    (fsp as { open: unknown }).open = (...a: Parameters<typeof fsp.open>) => (touched++, realOpen(...a));
    (fsp as { readFile: unknown }).readFile = (...a: Parameters<typeof fsp.readFile>) => (touched++, realReadFile(...a));
    try {
      for (let i = 0; i < 20; i++) {
        const r = await tier.get(d.hash);
        assert.ok(r?.data?.equals(data));
        assert.ok((await readAll(r!.stream)).equals(data), 'the stream form is there for callers that want it');
      }
    } finally {
      (fsp as { open: unknown }).open = realOpen;
      (fsp as { readFile: unknown }).readFile = realReadFile;
    }
    assert.equal(touched, 0);
    assert.equal(tier.stats().hits, 20);
    assert.equal(disk.stats().hits, 21, 'memory hits are counted (and kept recent) in the disk store');
  });

  it('verifies a blob on its way in: a corrupt one is never served and is removed from the inner store', async () => {
    const { log, entries } = recordingLogger();
    const good = Buffer.from('the real bytes');
    const inner = new LyingStore(new Map([[digestOf(good).hash, Buffer.from('rotten bytes!!')]]));
    const tier = new MemoryTier({ inner, maxBytes: 1024 * 1024, log });
    assert.equal(await tier.get(digestOf(good).hash), undefined);
    assert.deepEqual(inner.deleted, [digestOf(good).hash]);
    assert.equal(tier.stats().entries, 0);
    assert.equal(tier.stats().corruptionsDetected, 1);
    assert.ok(entries.some((e) => e.event === 'cas.corrupt-blob' && e.tier === 'memory'));
  });

  it('stays within maxBytes, evicting least recently used first, and holds no blob above maxBlobBytes', async () => {
    const tier = new MemoryTier({ inner: disk, maxBytes: 10_000, maxBlobBytes: 5000, log: recordingLogger().log });
    const blobs = [randomBytes(4000), randomBytes(4000), randomBytes(4000), randomBytes(6000)];
    for (const b of blobs) await disk.putBuffer(b);
    const [a, b, c, big] = blobs.map((x) => digestOf(x).hash) as [string, string, string, string];
    await tier.get(a);
    await tier.get(b);
    await tier.get(a);
    await tier.get(c);
    assert.deepEqual(tier.stats(), { entries: 2, bytes: 8000, maxBytes: 10_000, hits: 1, misses: 3, corruptionsDetected: 0 });
    const before = tier.stats().misses;
    assert.ok((await tier.get(a))?.data, 'a was used more recently than b, so b went');
    assert.equal((await tier.get(b))?.data?.length, 4000);
    assert.equal(tier.stats().misses, before + 1);
    const held = tier.stats();
    const reader = await tier.get(big);
    assert.equal((await readAll(reader!.stream)).length, 6000);
    assert.deepEqual([tier.stats().entries, tier.stats().bytes], [held.entries, held.bytes], 'served from disk, not held');
  });

  it('never serves a blob the disk evicted behind it: GET agrees with HEAD and find-missing', async () => {
    const tier = new MemoryTier({ inner: disk, maxBytes: 1024 * 1024, log: recordingLogger().log });
    const data = randomBytes(100);
    const d = digestOf(data);
    await disk.putBuffer(data);
    assert.ok(await tier.get(d.hash));
    await disk.delete(d.hash); // as the disk's own eviction does, without going through the tier
    assert.equal(await tier.has(d), false);
    assert.equal(await tier.get(d.hash), undefined);
    assert.equal(tier.stats().bytes, 0, 'and it is no longer held');
  });

  it('keeps a small blob written through it, verified, without counting the write as a hit; never one the disk evicted since', async () => {
    const tier = new MemoryTier({ inner: disk, maxBytes: 1024 * 1024, log: recordingLogger().log });
    const small = randomBytes(1000);
    const large = randomBytes(200 * 1024);
    await tier.put(Readable.from([small.subarray(0, 300), small.subarray(300)]), { hash: digestOf(small).hash, size: small.length });
    await tier.put(Readable.from([large]), { hash: digestOf(large).hash });
    await assert.rejects(tier.put(Readable.from([Buffer.from('not what it claims')]), { hash: digestOf(small.subarray(1)).hash }), /hash|digest|match/i);
    assert.deepEqual([tier.stats().entries, tier.stats().bytes], [1, 1000], 'only the small blob, and nothing of the rejected upload');
    assert.equal(disk.stats().hits, 0, 'writing is no hit');
    const realOpen = fsp.open;
    let opened = 0;
    (fsp as { open: unknown }).open = (...a: Parameters<typeof fsp.open>) => (opened++, realOpen(...a));
    try {
      assert.ok((await tier.get(digestOf(small).hash))?.data?.equals(small));
    } finally {
      (fsp as { open: unknown }).open = realOpen;
    }
    assert.equal(opened, 0, 'served from memory, as written');
    assert.equal(tier.stats().hits, 1);
    await disk.delete(digestOf(small).hash); // the disk's eviction, behind the tier's back
    assert.deepEqual(await tier.findMissing([digestOf(small)]), [digestOf(small)]);
    assert.equal(await tier.get(digestOf(small).hash), undefined);
  });

  it('forgets a deleted blob', async () => {
    const tier = new MemoryTier({ inner: disk, maxBytes: 1024 * 1024, log: recordingLogger().log });
    const data = randomBytes(100);
    await disk.putBuffer(data);
    await tier.get(digestOf(data).hash);
    assert.equal(await tier.delete(digestOf(data).hash), true);
    assert.equal(await tier.get(digestOf(data).hash), undefined);
    assert.equal(tier.stats().bytes, 0);
  });
});
