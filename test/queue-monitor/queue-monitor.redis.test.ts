import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, type LogEntry } from '../../src/lib';
import { QueueMonitor, type BacklogSnapshot, type QueueMonitorOptions } from '../../src/queue-monitor';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';
import { FakeClock } from '../fakes/fake-clock';
import { waitUntil } from '../helpers/wait-until';

const RECONCILE_MS = 5_000;
const DEBOUNCE_MS = 25;

describe('queue-monitor (real redis)', function () {
  let prefix: string;
  let clock: FakeClock;
  let logs: LogEntry[];
  let redis: Redis;
  const closers: Array<() => Promise<unknown>> = [];

  beforeEach(() => {
    prefix = uniquePrefix('qm');
    clock = new FakeClock();
    logs = [];
    redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  });

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    // Every warning a test provokes is asserted (and dropped) by that test; any other is a bug.
    assert.deepEqual(logs.filter((e) => e.level === 'warn' || e.level === 'error'), []);
    await redis.quit();
  });

  function monitor(overrides: Partial<QueueMonitorOptions> = {}): QueueMonitor {
    const m = new QueueMonitor({
      connection: { url: redisUrl() },
      prefix,
      types: ['b2g'],
      clock,
      log: createLogger({ silent: true, level: 'debug', sink: (e) => logs.push(e) }),
      reconcileMs: RECONCILE_MS,
      debounceMs: DEBOUNCE_MS,
      ...overrides,
    });
    closers.push(() => m.stop());
    return m;
  }

  function producer(type = 'b2g'): Queue {
    const q = new Queue(type, { connection: redis, prefix });
    closers.push(() => q.close());
    return q;
  }

  /** Resolves with the first snapshot of `type` that satisfies `match`, emitted from now on. */
  function snapshotWhere(m: QueueMonitor, type: string, match: (s: BacklogSnapshot) => boolean): Promise<BacklogSnapshot> {
    return new Promise((resolve) => {
      const listener = (s: BacklogSnapshot) => {
        if (s.type !== type || !match(s)) return;
        m.off('snapshot', listener);
        resolve(s);
      };
      m.on('snapshot', listener);
    });
  }

  /**
   * Like snapshotWhere, for a snapshot that queue events lead to: ends each debounce window the
   * events open on the fake clock, whose one other sleeper is the reconciliation loop.
   */
  function afterEvents(m: QueueMonitor, type: string, match: (s: BacklogSnapshot) => boolean): Promise<BacklogSnapshot> {
    const found = snapshotWhere(m, type, match);
    let done = false;
    void found.then(() => (done = true));
    void (async () => {
      while (!done) {
        await Promise.race([found, clock.sleeping(2)]);
        if (!done) clock.advance(DEBOUNCE_MS);
        await nextTurn();
      }
    })();
    return found;
  }

  /**
   * Runs one reconciliation pass and resolves with the snapshot it emits for `type`, once the
   * clock has `sleepers` sleeps: the loop's, plus any debounce window still open.
   */
  async function reconcile(m: QueueMonitor, type = 'b2g', sleepers = 1): Promise<BacklogSnapshot> {
    await clock.sleeping(sleepers);
    const next = snapshotWhere(m, type, () => true);
    clock.advance(RECONCILE_MS);
    return next;
  }

  /** Connections to the server whose name carries this test's prefix. */
  async function ourConnections(): Promise<string[]> {
    const list = (await redis.client('LIST')) as string;
    return list.split('\n').filter((line) => line.includes(`name=${prefix}:`));
  }

  it('emits a first snapshot of every type on start, then one promptly after a job arrives', async () => {
    const m = monitor({ types: ['b2g', 'android'] });
    const seen: BacklogSnapshot[] = [];
    m.on('snapshot', (s) => seen.push(s));
    await m.start();
    assert.deepEqual(seen.map((s) => s.type).sort(), ['android', 'b2g']);
    assert.deepEqual(m.current('b2g'), {
      type: 'b2g', waiting: 0, prioritized: 0, delayed: 0, active: 0, oldestWaitMs: null, oldestQueuedAt: null, at: clock.now(),
    });
    assert.equal(m.all().length, 2);

    const arrived = afterEvents(m, 'b2g', (s) => s.waiting === 1);
    const t0 = performance.now();
    const queuedAt = clock.now() - 1_000;
    await producer().add('build', { n: 1 }, { timestamp: queuedAt });
    const s = await arrived;
    assert.ok(performance.now() - t0 < 1_000, `snapshot took ${performance.now() - t0}ms`);
    // Read once the debounce window (on the clock) has ended: the wait includes it.
    assert.ok(s.at >= queuedAt + 1_000 + DEBOUNCE_MS, `read at ${s.at - queuedAt} ms`);
    assert.equal(s.oldestWaitMs, s.at - queuedAt);
    assert.equal(m.current('android')?.waiting, 0);
  });

  it('reports the oldest waiting job, whose wait grows with the clock, and the next one once it is taken', async () => {
    const q = producer();
    const base = clock.now();
    await q.add('build', { n: 1 }, { timestamp: base - 3_000 });
    await q.add('build', { n: 2 }, { timestamp: base - 2_000 });
    await q.add('build', { n: 3 }, { timestamp: base - 1_000 });
    const m = monitor();
    await m.start();
    assert.equal(m.current('b2g')?.waiting, 3);
    assert.equal(m.current('b2g')?.oldestQueuedAt, base - 3_000);
    assert.equal(m.current('b2g')?.oldestWaitMs, 3_000);

    const later = await reconcile(m);
    assert.equal(later.at, base + RECONCILE_MS);
    assert.equal(later.oldestWaitMs, 3_000 + RECONCILE_MS);

    const worker = new Worker('b2g', null, { connection: redis, prefix, autorun: false });
    closers.push(() => worker.close());
    const taken = afterEvents(m, 'b2g', (s) => s.active === 1);
    assert.equal((await worker.getNextJob('t1'))?.data.n, 1);
    const s = await taken;
    assert.equal(s.waiting, 2);
    assert.equal(s.oldestQueuedAt, base - 2_000);
  });

  it('finds the oldest job of a LIFO queue at the other end of the wait list', async () => {
    const q = producer();
    const base = clock.now();
    await q.add('build', { n: 1 }, { timestamp: base - 3_000, lifo: true });
    await q.add('build', { n: 2 }, { timestamp: base - 2_000, lifo: true });
    await q.add('build', { n: 3 }, { timestamp: base - 1_000, lifo: true });
    const m = monitor();
    await m.start();
    assert.equal(m.current('b2g')?.oldestQueuedAt, base - 3_000);
  });

  it('counts prioritized and delayed jobs, and the oldest wait spans both lists', async () => {
    const m = monitor();
    await m.start();
    const q = producer();
    const base = clock.now();
    const counted = afterEvents(m, 'b2g', (s) => s.waiting === 1 && s.prioritized === 2 && s.delayed === 1);
    await q.add('build', {}, { timestamp: base - 1_000 });
    await q.add('build', {}, { timestamp: base - 4_000, priority: 1 });
    await q.add('build', {}, { timestamp: base - 2_000, priority: 5 });
    await q.add('build', {}, { delay: 60_000 });
    const s = await counted;
    assert.equal(s.oldestQueuedAt, base - 4_000);
    assert.equal(s.oldestWaitMs, s.at - (base - 4_000));
  });

  it('moves a job from waiting to active when a manual worker takes it', async () => {
    const q = producer();
    await q.add('build', {});
    const m = monitor();
    await m.start();
    assert.equal(m.current('b2g')?.waiting, 1);
    const worker = new Worker('b2g', null, { connection: redis, prefix, autorun: false });
    closers.push(() => worker.close());
    const moved = afterEvents(m, 'b2g', (s) => s.active === 1);
    const job = await worker.getNextJob('token-1');
    assert.ok(job);
    const s = await moved;
    assert.equal(s.waiting, 0);
    assert.equal(s.oldestWaitMs, null);

    const finished = afterEvents(m, 'b2g', (s) => s.active === 0);
    await job.moveToCompleted('ok', 'token-1', false);
    assert.equal((await finished).waiting, 0);
  });

  it('catches a change the events did not report on the reconciliation pass', async () => {
    // A debounce longer than the test: any snapshot after start can only come from the pass.
    const m = monitor({ debounceMs: 3_600_000 });
    await m.start();
    const sources: BacklogSnapshot[] = [];
    m.on('snapshot', (s) => sources.push(s));
    await producer().add('build', {}, { timestamp: clock.now() });
    await producer().add('build', {}, { timestamp: clock.now(), priority: 3 });
    const s = await reconcile(m);
    assert.equal(s.waiting, 1);
    assert.equal(s.prioritized, 1);
    assert.equal(s.oldestWaitMs, RECONCILE_MS);
    assert.equal(sources.length, 1);

    // The loop goes back to sleep for the next pass rather than running again at once (the
    // events' debounce window, an hour long, is still open beside it).
    const again = await reconcile(m, 'b2g', 2);
    assert.equal(again.oldestWaitMs, 2 * RECONCILE_MS);
  });

  it('keeps running when a pass fails for one type, logging it for that type', async () => {
    const m = monitor({ types: ['b2g', 'android'], debounceMs: 3_600_000 });
    await m.start();
    // A key of the wrong kind makes BullMQ's count script fail for b2g only.
    await redis.del(`${prefix}:b2g:wait`);
    await redis.set(`${prefix}:b2g:wait`, 'not a list');
    const android = await reconcile(m, 'android');
    assert.equal(android.waiting, 0);
    await clock.sleeping();
    const failures = logs.filter((e) => e.event === 'queue-monitor.refresh-failed');
    assert.deepEqual(failures.map((e) => e.type), ['b2g']);
    logs = logs.filter((e) => !failures.includes(e));

    await redis.del(`${prefix}:b2g:wait`);
    await producer().add('build', {});
    assert.equal((await reconcile(m, 'b2g')).waiting, 1);
  });

  it('watches types added at runtime and forgets removed ones', async () => {
    const m = monitor({ types: ['b2g'] });
    await m.start();
    const first = snapshotWhere(m, 'linux', () => true);
    await m.setTypes(['b2g', 'linux']);
    assert.equal((await first).waiting, 0);

    const arrived = afterEvents(m, 'linux', (s) => s.waiting === 1);
    await producer('linux').add('build', {});
    await arrived;

    await m.setTypes(['linux']);
    assert.equal(m.current('b2g'), undefined);
    assert.deepEqual(m.all().map((s) => s.type), ['linux']);
    const types = logs.filter((e) => e.event === 'queue-monitor.type-removed').map((e) => e.type);
    assert.deepEqual(types, ['b2g']);
  });

  it('closes every connection it opened on stop, and leaves a shared client open', async () => {
    const m = monitor({ types: ['b2g', 'android'] });
    await m.start();
    assert.ok((await ourConnections()).length >= 3, 'expected the shared and two event connections');
    await m.stop();
    await m.stop();
    // The server notices a dropped socket a moment after the client drops it.
    await waitUntil(async () => (await ourConnections()).length === 0, { what: 'every connection of ours closed' });
    assert.deepEqual(m.all(), []);

    const shared = monitor({ connection: redis, types: ['b2g'] });
    await shared.start();
    await shared.stop();
    assert.equal(await redis.ping(), 'PONG');
    await waitUntil(async () => (await ourConnections()).length === 0, { what: 'every connection of ours closed' });
  });

  it('settles a start overtaken by a stop, leaving nothing open', async () => {
    const m = monitor({ types: ['b2g', 'android'] });
    const started = m.start();
    await m.stop();
    await started;
    assert.deepEqual(m.all(), []);
    await waitUntil(async () => (await ourConnections()).length === 0, { what: 'every connection of ours closed' });
  });

  it('can be started again after a stop', async () => {
    const m = monitor();
    await m.start();
    await m.stop();
    const q = producer();
    await q.add('build', {});
    await m.start();
    assert.equal(m.current('b2g')?.waiting, 1);
    const arrived = afterEvents(m, 'b2g', (s) => s.waiting === 2);
    await q.add('build', {});
    await arrived;
  });
});
