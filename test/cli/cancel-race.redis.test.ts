import assert from 'node:assert/strict';
import { QueueEvents } from 'bullmq';
import type { Cancelled } from '../../src/master';
import { controlFarm, READ } from '../helpers/control-farm';
import type { CliProcess } from '../helpers/farm';
import { seededRandom, seedFrom } from '../helpers/prng';
import { waitUntil } from '../helpers/wait-until';

const N = Number(process.env.CANCEL_RACE_N ?? 40);

/**
 * Cancels landing at the moment a master takes the job: two real masters on one Redis (each
 * with a real agent), jobs submitted through one and cancelled through either, after a
 * seeded pause of 0-12 ms, which puts the cancel before, in and after the take. Every job
 * must end exactly once, cancelled: never run to an end, never retried, never lost.
 * CANCEL_RACE_SEED=<n> replays a schedule.
 */
describe('cancel racing the dispatch (two masters, real agents, seeded schedule)', function () {
  this.timeout(180_000);
  const procs: CliProcess[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
    await Promise.allSettled(closers.splice(0).map((c) => c()));
  });

  it('ends every job exactly once: cancelled and never run, or run and then killed, never both, never lost', async () => {
    const seed = seedFrom('CANCEL_RACE_SEED');
    const random = seededRandom(seed);
    const farm = await controlFarm(procs, { masters: 2 });
    const [m1, m2] = farm.masters as [(typeof farm.masters)[0], (typeof farm.masters)[0]];
    await farm.startAgent('race-a', ['--executors', '3', '--kill-grace-sec', '5'], m1);
    await farm.startAgent('race-b', ['--executors', '3', '--kill-grace-sec', '5'], m2);
    // Every event of the queue from the stream's start.
    const redis = farm.redis;
    const events = new QueueEvents('b2g', { connection: { url: redis.url }, prefix: redis.queuePrefix, lastEventId: '0-0' });
    closers.push(() => events.close());
    await events.waitUntilReady();
    const ends = new Map<string, string[]>();
    const note = (id: string, what: string) => ends.set(id, [...(ends.get(id) ?? []), what]);
    events.on('completed', ({ jobId }) => note(jobId, 'completed'));
    events.on('failed', ({ jobId, failedReason }) => note(jobId, `failed: ${failedReason}`));

    // Six executors run the first jobs; the rest wait. Cancelling a running job frees an
    // executor, and its master takes the next job at once: the one cancelled next, moments
    // later. The cancels go out on a seeded schedule without waiting for each other's answer.
    const build = { shell: 'echo "ran $SPILLWAY_JOB_ID attempt $SPILLWAY_ATTEMPT"; exec sleep 120', attempts: 3 };
    const ids: string[] = [];
    for (let i = 0; i < N; i++) ids.push(await farm.submit(build, random() < 0.5 ? m1.http : m2.http));
    await waitUntil(async () => (await Promise.all(ids.slice(0, 10).map((id) => farm.view(id)))).filter((v) => v.builds.length === 1).length === 6, {
      timeoutMs: 20_000,
      what: 'six builds running',
    });
    const order = [...ids];
    for (let i = 0; i + 1 < order.length; i++) if (random() < 0.4) [order[i], order[i + 1]] = [order[i + 1]!, order[i]!];
    let at = 0;
    const answers = new Map<string, { status: number; body: Cancelled }>();
    await Promise.all(
      order.map((id, i) => {
        at += Math.floor(random() * 13);
        const via = random() < 0.5 ? m1 : m2;
        return new Promise<void>((resolve) =>
          setTimeout(() => {
            void farm.call<Cancelled>('POST', `/api/jobs/${id}/cancel`, { reason: `race ${i}` }, undefined, via.http).then((a) => {
              answers.set(id, a);
              resolve();
            });
          }, at),
        );
      }),
    );

    // Every killed build reported (its record is finished), and every job's end reached the stream.
    await waitUntil(async () => (await Promise.all(ids.map((id) => farm.view(id)))).every((v) => v.builds.every((b) => b.state === 'finished')), {
      timeoutMs: 60_000,
      what: 'every cancelled build recorded',
    });
    await waitUntil(() => ids.every((id) => ends.has(id)), { timeoutMs: 10_000, what: 'every job ended in the queue' });

    const was: Record<string, number> = {};
    for (const id of ids) {
      const a = answers.get(id)!;
      const why = `seed ${seed}, job ${id}: ${JSON.stringify(a)}`;
      assert.equal(a.status, 200, why);
      assert.equal(a.body.state, 'cancelled', why);
      was[a.body.was] = (was[a.body.was] ?? 0) + 1;
      const v = await farm.view(id);
      assert.equal(v.state, 'failed', why);
      assert.match(v.failedReason ?? '', /^cancelled by submit token [0-9a-f]{8}: race \d+$/, why);
      assert.ok(v.builds.length <= 1, `${why}: ran ${v.builds.length} times`);
      for (const b of v.builds) assert.equal(b.result, 'cancelled', why);
      assert.deepEqual(ends.get(id)!.length, 1, `${why}: ended ${JSON.stringify(ends.get(id))}`);
      assert.match(ends.get(id)![0]!, /^failed: cancelled by/, why);
      const log = (await farm.call<{ data: string }>('GET', `/api/jobs/${id}/log?attempt=0&offset=0`, undefined, READ)).body.data;
      assert.ok((log.match(/^ran /gm) ?? []).length <= 1, `${why}: started more than once: ${log}`);
      if (v.builds.length === 0) assert.equal(log, '', `${why}: ran without a record`);
    }
    // Where each cancel took effect, from the masters' logs: in the queue (waiting, delayed), or
    // on the master holding the job (pending: taken, not placed yet; assigned: sent to its agent, not started).
    const where: Record<string, number> = {};
    for (const m of farm.masters) {
      for (const line of m.proc.output().split('\n')) {
        if (!line.includes('"job.cancelled"')) continue;
        const w = (JSON.parse(line) as { was: string }).was;
        where[w] = (where[w] ?? 0) + 1;
      }
    }
    assert.equal(Object.values(where).reduce((a, b) => a + b, 0), N, `seed ${seed}: one cancel per job in the logs: ${JSON.stringify(where)}`);
    process.stdout.write(`      seed ${seed} (CANCEL_RACE_SEED to replay): ${N} jobs, answered was ${JSON.stringify(was)}, took effect ${JSON.stringify(where)}\n`);

    // No executor is left taken by a cancelled build: both agents run new jobs at once.
    const quick = await Promise.all(Array.from({ length: 6 }, (_, i) => farm.submit({ argv: ['true'] }, i % 2 ? m1.http : m2.http)));
    await waitUntil(async () => (await Promise.all(quick.map((id) => farm.view(id)))).every((v) => v.state === 'completed'), { timeoutMs: 30_000, what: 'the agents take new jobs' });
  });
});
