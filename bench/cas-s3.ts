/**
 * S3 tier benchmark (issue 19's figures): what the tier adds to the local store, side by side.
 *
 *  - PUT answered: a blob into the disk store alone, and through the S3 tier (which also writes
 *    and fsyncs the upload journal entry before answering).
 *  - GET: a local hit through the tier, and a miss filled from S3 (GetObject streamed into the
 *    local store, verified, then read back), after the local store is emptied.
 *  - A miss in both tiers (the price of asking S3 before answering 404).
 *  - Write-through lag: from the PUT being answered to S3 holding the object, one blob at a time
 *    (idle queue) and for a burst of BENCH_S3_BURST blobs PUT back to back.
 *
 * The S3 side is s3rver (an S3-compatible server on npm) in a child process on loopback,
 * storing on the same disk, reached through the real SDK: the figures are the tier's own cost
 * plus a local server's, not AWS's network (expect more per S3 call against a real bucket).
 *
 *   npm run bench:cas-s3            # or: node dist/bench/cas-s3.js
 *   BENCH_S3_SIZES_KIB=4,1024 BENCH_S3_SAMPLES=100 BENCH_S3_BURST=200 node dist/bench/cas-s3.js
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { createS3Client, digestOf, DiskStore, readBlobData, S3Objects, S3Tier, UploadJournal, type ObjectStore } from '../src/cas';
import { createLogger, systemClock } from '../src/lib';
import { f2, intEnv, machineInfo, machineLine, once, runBench, say, stats, type Stats } from './harness';
import { poll, spawnLogged, stopChild, type LoggedChild } from './procs';

const KiB = 1024;
const SIZES_KIB = (process.env.BENCH_S3_SIZES_KIB ?? '4,64,1024')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const SAMPLES = intEnv('BENCH_S3_SAMPLES', 60);
const BURST = intEnv('BENCH_S3_BURST', 200);
const BUCKET = 'spillway-bench';

const work = mkdtempSync(join(tmpdir(), 'spillway-bench-s3-'));
let s3: LoggedChild | undefined;
const cleanup = once(async () => {
  if (s3) await stopChild(s3, 5000).catch(() => undefined);
});

/** Records when S3 acknowledged each key, so the lag is exact rather than polled. */
class TimedObjects implements ObjectStore {
  readonly uploadedAt = new Map<string, number>();
  private waiters = new Map<string, () => void>();
  constructor(private readonly inner: ObjectStore) {}
  async put(key: string, body: Buffer | Readable, size: number, signal: AbortSignal): Promise<void> {
    await this.inner.put(key, body, size, signal);
    this.uploadedAt.set(key, performance.now());
    this.waiters.get(key)?.();
  }
  get(key: string, signal: AbortSignal) {
    return this.inner.get(key, signal);
  }
  head(key: string, signal: AbortSignal) {
    return this.inner.head(key, signal);
  }
  uploaded(key: string): Promise<number> {
    const at = this.uploadedAt.get(key);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((r) => this.waiters.set(key, () => r(this.uploadedAt.get(key)!)));
  }
}

interface Tiered {
  disk: DiskStore;
  tier: S3Tier;
  objects: TimedObjects;
  close(): Promise<void>;
}

async function openTiered(root: string, endpoint: string): Promise<Tiered> {
  const log = createLogger({ silent: true });
  const client = createS3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const disk = await DiskStore.open({ root, maxBytes: 8 * 1024 * 1024 * 1024, clock: systemClock, log });
  const objects = new TimedObjects(new S3Objects(client, BUCKET));
  const tier = new S3Tier({
    inner: disk,
    objects,
    journal: await UploadJournal.open(join(root, 's3-journal')),
    prefix: 'bench/',
    uploads: { maxQueued: 100_000, concurrency: 4, backoff: { baseMs: 500, maxMs: 30_000 } },
    timeoutMs: 30_000,
    known: { maxEntries: 100_000, ttlMs: 600_000 },
    maxEntryBytes: 1024 * 1024,
    clock: systemClock,
    log,
  });
  await tier.start();
  return {
    disk,
    tier,
    objects,
    close: async () => {
      await tier.stop();
      await disk.close();
      client.destroy();
    },
  };
}

const msRow = (name: string, s: Stats): string =>
  `  ${name.padEnd(44)} p50 ${f2(s.p50).padStart(7)} ms  p90 ${f2(s.p90).padStart(7)} ms  p99 ${f2(s.p99).padStart(7)} ms  (n ${s.n})`;

async function timedMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<number> {
  say(machineLine(machineInfo()));
  mkdirSync(join(work, 's3'));
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  s3 = spawnLogged('s3rver', process.execPath, [resolve(__dirname, 's3-server.js'), join(work, 's3'), BUCKET], join(work, 's3rver.log'), env);
  const m = await poll('s3rver to listen', 20_000, () => /listening (http:\/\/\S+)/.exec(s3!.log()) ?? undefined);
  const endpoint = m[1]!;

  const plain = await DiskStore.open({ root: join(work, 'plain'), maxBytes: 8 * 1024 * 1024 * 1024, clock: systemClock, log: createLogger({ silent: true }) });
  let a = await openTiered(join(work, 'a'), endpoint);
  const rows: string[] = [];
  for (const kib of SIZES_KIB) {
    const blobs = Array.from({ length: SAMPLES }, () => randomBytes(kib * KiB));
    const putPlain: number[] = [];
    const putTier: number[] = [];
    const lagIdle: number[] = [];
    for (const blob of blobs) {
      putPlain.push(await timedMs(() => plain.put(Readable.from([blob]), {})));
      let answered = 0;
      putTier.push(await timedMs(async () => {
        await a.tier.put(Readable.from([blob]), {});
        answered = performance.now();
      }));
      lagIdle.push((await a.objects.uploaded(`bench/cas/${digestOf(blob).hash}`)) - answered);
    }
    const hitLocal: number[] = [];
    for (const blob of blobs) hitLocal.push(await timedMs(async () => readBlobData((await a.tier.get(digestOf(blob).hash))!)));
    // A second master's view: an empty local store on the same bucket.
    const b = await openTiered(join(work, `b-${kib}`), endpoint);
    const fill: number[] = [];
    for (const blob of blobs) {
      fill.push(await timedMs(async () => {
        const got = await readBlobData((await b.tier.get(digestOf(blob).hash))!);
        if (!got?.equals(blob)) throw new Error('fill returned the wrong bytes');
      }));
    }
    const missBoth: number[] = [];
    for (let i = 0; i < SAMPLES; i++) missBoth.push(await timedMs(async () => {
      if (await b.tier.get(randomBytes(32).toString('hex'))) throw new Error('a random hash was found');
    }));
    await b.close();
    rows.push(`${kib} KiB blobs:`);
    rows.push(msRow('PUT answered, disk store alone', stats(putPlain)));
    rows.push(msRow('PUT answered, through the S3 tier (+journal)', stats(putTier)));
    rows.push(msRow('write-through lag, idle queue', stats(lagIdle)));
    rows.push(msRow('GET local hit through the tier', stats(hitLocal)));
    rows.push(msRow('GET miss filled from S3 (other master)', stats(fill)));
    rows.push(msRow('GET miss in both tiers (404)', stats(missBoth)));
  }

  // A burst: PUTs answered as fast as the disk allows while four uploads at a time drain them.
  await a.close();
  a = await openTiered(join(work, 'burst'), endpoint);
  const burst = Array.from({ length: BURST }, () => randomBytes(64 * KiB));
  const answeredAt: number[] = [];
  const t0 = performance.now();
  for (const blob of burst) {
    await a.tier.put(Readable.from([blob]), {});
    answeredAt.push(performance.now());
  }
  const putsDone = performance.now() - t0;
  const lags = await Promise.all(burst.map(async (blob, i) => (await a.objects.uploaded(`bench/cas/${digestOf(blob).hash}`)) - answeredAt[i]!));
  const drained = Math.max(...burst.map((blob) => a.objects.uploadedAt.get(`bench/cas/${digestOf(blob).hash}`)!)) - t0;
  rows.push(`burst of ${BURST} x 64 KiB PUT back to back (uploadConcurrency 4):`);
  rows.push(`  PUTs answered in ${f2(putsDone)} ms, bucket caught up ${f2(drained)} ms after the first PUT`);
  rows.push(msRow('write-through lag in the burst', stats(lags)));
  await a.close();
  await plain.close();
  console.log(rows.join('\n'));
  return 0;
}

runBench(main, {
  budgetMs: intEnv('BENCH_BUDGET_MS', 300_000),
  cleanup,
  kill: () => s3?.child.kill('SIGKILL'),
  afterCleanup: () => {
    if (process.env.BENCH_KEEP) say(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  },
});
