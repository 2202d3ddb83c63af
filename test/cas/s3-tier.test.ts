import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  ActionCache,
  BadDigestError,
  DiskStore,
  MemoryTier,
  S3Tier,
  UploadJournal,
  digestOf,
  objectKey,
  readBlobData,
  type ActionResult,
  type S3Objects,
} from '../../src/cas';
import { systemClock } from '../../src/lib';
import { waitUntil } from '../helpers/wait-until';
import { TestS3 } from '../helpers/s3-server';
import { recordingLogger, tempRoot } from './cas-fixtures';

/** One master's cache: a disk store with the S3 tier (and the memory tier) in front, plus its action cache. */
interface Node {
  disk: DiskStore;
  tier: S3Tier;
  store: MemoryTier;
  ac: ActionCache;
  root: string;
  entries: ReturnType<typeof recordingLogger>['entries'];
  close(): Promise<void>;
}

async function openNode(s3: TestS3, root: string, maxQueued = 1000): Promise<Node> {
  const prefix = 'cache/';
  const { log, entries } = recordingLogger();
  const disk = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock: systemClock, log });
  const tier = new S3Tier({
    inner: disk,
    objects: s3.objects(),
    journal: await UploadJournal.open(path.join(root, 's3-journal')),
    prefix,
    uploads: { maxQueued, concurrency: 4, backoff: { baseMs: 20, maxMs: 200 } },
    timeoutMs: 5000,
    known: { maxEntries: 1000, ttlMs: 60_000 },
    maxEntryBytes: 1024 * 1024,
    clock: systemClock,
    log,
  });
  const store = new MemoryTier({ inner: tier, maxBytes: 1024 * 1024, log });
  const ac = await ActionCache.open({ root: path.join(root, 'action-cache'), store, mirror: tier.actionEntries() });
  await tier.start();
  return {
    disk,
    tier,
    store,
    ac,
    root,
    entries,
    close: async () => {
      await tier.stop();
      await disk.close();
    },
  };
}

const drained = (n: Node) => waitUntil(() => n.tier.stats().uploads.depth === 0, { timeoutMs: 15_000, what: 'upload queue drained' });

function resultOf(outputs: Buffer[]): ActionResult {
  return {
    exitCode: 0,
    stdout: digestOf(''),
    stderr: digestOf(''),
    outputFiles: outputs.map((b, i) => ({ path: `out/${i}`, digest: digestOf(b), mode: 0o644 })),
    timings: { startedAt: 1, finishedAt: 2 },
  };
}

async function objectBytes(objects: S3Objects, key: string): Promise<Buffer | undefined> {
  const obj = await objects.get(key, AbortSignal.timeout(5000));
  if (!obj) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of obj.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('cas S3Tier (against s3rver through the SDK)', function () {
  this.timeout(60_000);
  let s3: TestS3;
  let bucket: S3Objects;
  const roots: Array<() => Promise<void>> = [];
  const nodes: Node[] = [];

  async function node(root?: string, maxQueued?: number): Promise<Node> {
    let dir = root;
    if (!dir) {
      const t = await tempRoot('s3tier');
      roots.push(t.cleanup);
      dir = t.root;
    }
    const n = await openNode(s3, dir, maxQueued);
    nodes.push(n);
    return n;
  }

  beforeEach(async () => {
    s3 = await TestS3.start();
    bucket = s3.objects();
  });
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.close().catch(() => undefined);
    await s3.close();
    for (const c of roots.splice(0)) await c();
  });

  it('hostile: object keys are only made from validated hashes, before any request', async () => {
    for (const bad of ['../etc/passwd', 'A'.repeat(64), '', 'x/../../' + 'a'.repeat(56), `${'a'.repeat(64)}/../b`]) {
      assert.throws(() => objectKey('p/', 'cas', bad), BadDigestError);
    }
    const a = await node();
    await assert.rejects(a.tier.sizeOf('../../outside'), BadDigestError);
    await assert.rejects(a.tier.get('../../outside'), BadDigestError);
    assert.deepEqual(a.tier.stats().errors, {});
  });

  it('writes through: the PUT is answered locally, the upload follows, and the bytes in S3 are the blob', async () => {
    const a = await node();
    const blob = randomBytes(300_000);
    const big = randomBytes(3 * 1024 * 1024);
    const d = digestOf(blob);
    const put = await a.store.put(Readable.from([blob]), { hash: d.hash, size: d.size });
    assert.equal(put.stored, true);
    await a.store.put(Readable.from([big]), {});
    await drained(a);
    assert.deepEqual(await objectBytes(bucket, `cache/cas/${d.hash}`), blob);
    assert.deepEqual(await objectBytes(bucket, `cache/cas/${digestOf(big).hash}`), big);
    assert.equal(a.tier.stats().uploads.uploaded, 2);
    assert.deepEqual(await fsp.readdir(path.join(a.root, 's3-journal')), []);
  });

  it('fills a local miss from S3 after the local store is wiped, verified, then serves it locally', async () => {
    const a = await node();
    const blob = randomBytes(50_000);
    const d = digestOf(blob);
    await a.store.put(Readable.from([blob]), {});
    await drained(a);
    await a.close();
    nodes.splice(nodes.indexOf(a), 1);
    await fsp.rm(a.root, { recursive: true, force: true });

    const fresh = await node(a.root);
    assert.equal(await fresh.disk.has(d), false);
    assert.deepEqual(await fresh.store.findMissing([d]), [], 'present in S3 counts as present');
    assert.equal(await fresh.store.sizeOf(d.hash), d.size);
    const reader = await fresh.store.get(d.hash);
    assert.ok(reader);
    assert.deepEqual(await readBlobData(reader), blob);
    assert.equal(await fresh.disk.has(d), true, 'the fill is stored locally');
    assert.equal(fresh.tier.stats().s3Hits, 1);
    assert.equal(fresh.tier.stats().uploads.uploaded, 0, 'a fill is not uploaded back');
  });

  it('two masters sharing a bucket see each other\'s blobs and action results; the completeness check spans both tiers', async () => {
    const a = await node();
    const b = await node();
    const out = randomBytes(20_000);
    const action = digestOf('action-1').hash;
    await a.store.put(Readable.from([out]), {});
    assert.equal(await a.ac.put(action, resultOf([out])), true);
    const raw = Buffer.from('a bazel ActionResult protobuf, opaque to us');
    const rawKey = digestOf('raw-key').hash;
    await a.ac.putRaw(rawKey, Readable.from([raw]), raw.length);
    await drained(a);

    const seen = await b.ac.get(action);
    assert.ok(seen, 'B finds the result A stored, complete although its output is only in S3');
    assert.deepEqual(seen.outputFiles, resultOf([out]).outputFiles);
    const reader = await b.store.get(digestOf(out).hash);
    assert.deepEqual(reader && (await readBlobData(reader)), out);
    const rawReader = await b.ac.getRaw(rawKey);
    assert.deepEqual(rawReader && (await readBlobData(rawReader)), raw);

    // A result whose output is nowhere (neither disk nor S3) is a miss for every master.
    const gone = randomBytes(100);
    const lost = digestOf('action-2').hash;
    await a.ac.put(lost, resultOf([gone]));
    await drained(a);
    assert.equal(await b.ac.get(lost), undefined);
    assert.equal(await a.ac.get(lost), undefined);
    // FindMissing is exact: the right hash with the wrong size is missing.
    assert.deepEqual(await b.store.findMissing([{ hash: digestOf(out).hash, size: out.length + 1 }]), [{ hash: digestOf(out).hash, size: out.length + 1 }]);
  });

  it('S3 down: PUTs still succeed locally, nothing is lost across a restart with a non-empty journal, and the queue drains when S3 returns', async () => {
    const a = await node();
    await s3.stop();
    const blobs = Array.from({ length: 5 }, () => randomBytes(10_000 + Math.floor(Math.random() * 1000)));
    for (const blob of blobs) assert.equal((await a.store.put(Readable.from([blob]), {})).stored, true);
    const action = digestOf('down-action').hash;
    await a.ac.put(action, resultOf([blobs[0]!]));
    for (const blob of blobs) assert.deepEqual(await readBlobData((await a.store.get(digestOf(blob).hash))!), blob, 'served locally meanwhile');
    await waitUntil(() => (a.tier.stats().errors.ECONNREFUSED ?? 0) > 0, { what: 'an upload refused' });
    assert.equal(a.tier.stats().uploads.depth, 6);
    assert.deepEqual(await a.store.findMissing([{ hash: randomBytes(32).toString('hex'), size: 1 }]).then((m) => m.length), 1, 'S3 unreachable: absent locally is missing');

    // The master restarts while S3 is still down: the journal holds all six.
    await a.close();
    nodes.splice(nodes.indexOf(a), 1);
    assert.equal((await fsp.readdir(path.join(a.root, 's3-journal'))).length, 6);
    const again = await node(a.root);
    assert.equal(again.tier.stats().uploads.depth, 6);

    await s3.start();
    await drained(again);
    for (const blob of blobs) assert.deepEqual(await objectBytes(bucket, `cache/cas/${digestOf(blob).hash}`), blob);
    assert.ok(await objectBytes(bucket, `cache/ac/${action}`));
    const b = await node();
    assert.ok(await b.ac.get(action), 'another master sees the result written during the outage');
    assert.ok(again.entries.some((e) => e.event === 'cas.s3-journal-replayed'));
  });

  it('the queue drains without a restart once S3 is back', async () => {
    const a = await node();
    await s3.stop();
    const blob = randomBytes(5000);
    await a.store.put(Readable.from([blob]), {});
    await waitUntil(() => a.tier.stats().uploads.failures > 0, { what: 'a failed upload' });
    await s3.start();
    await drained(a);
    assert.deepEqual(await objectBytes(bucket, `cache/cas/${digestOf(blob).hash}`), blob);
  });

  it('a corrupt object in S3 is never served nor stored locally, and is counted', async () => {
    const a = await node();
    const wanted = randomBytes(4000);
    const d = digestOf(wanted);
    const wrong = Buffer.from(wanted);
    wrong[100] = wrong[100]! ^ 0xff;
    await bucket.put(`cache/cas/${d.hash}`, wrong, wrong.length, AbortSignal.timeout(5000));
    // Large enough to stream through the local store in several chunks.
    const bigWanted = randomBytes(2 * 1024 * 1024);
    const bigWrong = Buffer.concat([bigWanted.subarray(0, bigWanted.length - 1), Buffer.from([bigWanted.at(-1)! ^ 1])]);
    await bucket.put(`cache/cas/${digestOf(bigWanted).hash}`, bigWrong, bigWrong.length, AbortSignal.timeout(5000));

    assert.equal(await a.store.get(d.hash), undefined);
    assert.equal(await a.store.get(digestOf(bigWanted).hash), undefined);
    assert.equal(await a.disk.has(d), false);
    assert.equal(a.tier.stats().corruptObjects, 2);
    assert.equal(a.entries.filter((e) => e.event === 'cas.s3-corrupt-object').length, 2);

    // A garbage action result under a real key is refused too.
    const key = digestOf('poisoned').hash;
    const junk = Buffer.from('{"not":"a result"}');
    await bucket.put(`cache/ac/${key}`, junk, junk.length, AbortSignal.timeout(5000));
    assert.equal(await a.ac.get(key), undefined);
    assert.equal(a.tier.stats().corruptObjects, 3);
    await assert.rejects(fsp.access(path.join(a.root, 'action-cache', 'ac', key.slice(0, 2), key)));
  });

  it('a bounded queue: past maxQueued a PUT still succeeds locally, the upload is dropped, counted and logged', async () => {
    const a = await node(undefined, 2);
    await s3.stop();
    const blobs = [randomBytes(100), randomBytes(100), randomBytes(100)];
    for (const blob of blobs) assert.equal((await a.store.put(Readable.from([blob]), {})).stored, true);
    const st = a.tier.stats().uploads;
    assert.equal(st.depth, 2);
    assert.equal(st.dropped, 1);
    assert.ok(a.entries.some((e) => e.event === 'cas.s3-queue-full' && e.hash === digestOf(blobs[2]!).hash));
    assert.deepEqual(await readBlobData((await a.store.get(digestOf(blobs[2]!).hash))!), blobs[2]);
  });

  it('a blob that was local before the tier (or expired in S3) is uploaded when PUT again', async () => {
    const { root, cleanup } = await tempRoot('s3tier');
    roots.push(cleanup);
    const blob = randomBytes(1234);
    const { log } = recordingLogger();
    const before = await DiskStore.open({ root, maxBytes: 1024 * 1024, clock: systemClock, log });
    await before.putBuffer(blob);
    await before.close();
    const a = await node(root);
    assert.equal((await a.store.put(Readable.from([blob]), {})).stored, false);
    await waitUntil(() => a.tier.stats().uploads.uploaded === 1, { what: 'the refresh upload' });
    assert.deepEqual(await objectBytes(bucket, `cache/cas/${digestOf(blob).hash}`), blob);
  });

  it('hostile: the journal replays only entries it wrote; a half-written one (tmp.*) and foreign names are not uploads', async () => {
    const { root, cleanup } = await tempRoot('journal');
    roots.push(cleanup);
    const h = 'a'.repeat(64);
    for (const name of ['tmp.123', 'README', `cas.${h.toUpperCase()}`, `cas.${h}.bak`, `xcas.${h}`, `s3.${h}`]) {
      await fsp.writeFile(path.join(root, name), 'x');
    }
    await fsp.writeFile(path.join(root, `ac.${h}`), 'result bytes');
    const journal = await UploadJournal.open(root);
    assert.deepEqual((await journal.load()).map((e) => `${e.kind}.${e.hash}`), [`ac.${h}`]);
    assert.equal((await fsp.readdir(root)).includes('tmp.123'), false);
    assert.deepEqual(await journal.read('ac', h), Buffer.from('result bytes'));
  });
});
