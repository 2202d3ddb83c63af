import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BULLMQ_CHECKED_VERSION } from '../../src/master/bullmq-internals';
import { JobTypeQueue } from '../../src/master/job-type-queue';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

const bullmqDir = join(dirname(require.resolve('bullmq')), '..', '..');

describe('BullMQ internals the master relies on (src/master/bullmq-internals.ts)', () => {
  it('is the BullMQ version they were read against: a new one must be read again first', () => {
    const installed = (JSON.parse(readFileSync(join(bullmqDir, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(installed, BULLMQ_CHECKED_VERSION);
  });

  it("moveToFinished still takes the next job with the settling job's token (ARGV[6] fetch next, opts.token)", () => {
    const script = readFileSync(join(bullmqDir, 'dist', 'cjs', 'scripts', 'moveToFinished-14.js'), 'utf8');
    assert.match(script, /ARGV\[6\] +fetch next\?/);
    assert.match(script, /opts - token - lock token/);
    assert.match(script, /if \(ARGV\[6\] == "1"\) then\s+local result = fetchNextJob\(/);
  });

  describe('completeAndTake (real redis)', () => {
    let redis: Redis;
    let q: JobTypeQueue;
    let producer: Queue;

    beforeEach(async () => {
      redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
      const prefix = uniquePrefix('bullmq');
      q = new JobTypeQueue({ type: 'b2g', connection: redis, prefix, lockMs: 30_000, masterId: 'm' });
      await q.start();
      producer = new Queue('b2g', { connection: redis, prefix });
    });
    afterEach(async () => {
      await q.close();
      await producer.close();
      await redis.quit();
    });

    it('completes the job and takes the next, locked with the same token; none when the queue is empty', async () => {
      const [a, b] = await producer.addBulk([
        { name: 'build', data: { n: 1 } },
        { name: 'build', data: { n: 2 } },
      ]);
      const first = await q.take();
      assert.equal(first?.job.id, a!.id);
      const next = await q.completeAndTake(first!.job.id, first!.token, { ok: 1 });
      assert.equal(next?.job.id, b!.id);
      assert.deepEqual(next?.job.data, { n: 2 });
      assert.equal(next?.token, first!.token);
      assert.equal(await redis.get(`${producer.toKey(b!.id!)}:lock`), first!.token, "the next job's lock is the settling token");
      assert.equal(await (await producer.getJob(a!.id!))!.getState(), 'completed');
      assert.equal(await (await producer.getJob(b!.id!))!.getState(), 'active');
      // The job so taken is settled like any other, with its token.
      assert.equal(await q.completeAndTake(next!.job.id, next!.token, { ok: 2 }), undefined);
      assert.equal(await (await producer.getJob(b!.id!))!.getState(), 'completed');
    });

    it('settles a job it did not take (taken over after a restart) without taking the next: that Job lacks the lock duration', async () => {
      const [a] = await producer.addBulk([
        { name: 'build', data: { n: 1 } },
        { name: 'build', data: { n: 2 } },
      ]);
      const first = await q.take();
      const successor = new JobTypeQueue({ type: 'b2g', connection: redis, prefix: q.opts.prefix, lockMs: 30_000, masterId: 'm2' });
      try {
        assert.equal(await successor.completeAndTake(first!.job.id, first!.token, { ok: 1 }), undefined);
        assert.equal(await (await producer.getJob(a!.id!))!.getState(), 'completed');
        assert.equal(await producer.getWaitingCount(), 1, 'the next job is still waiting');
      } finally {
        await successor.close();
      }
    });

    it('refuses a settle with a token that does not hold the lock, and takes nothing', async () => {
      await producer.addBulk([
        { name: 'build', data: { n: 1 } },
        { name: 'build', data: { n: 2 } },
      ]);
      const first = await q.take();
      await assert.rejects(q.completeAndTake(first!.job.id, 'f'.repeat(32), {}));
      assert.equal(await producer.getWaitingCount(), 1);
    });
  });
});
