import { strict as assert } from 'node:assert';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BackgroundLoop, createLogger, runEvery, type BackgroundLoopOptions, type LogEntry } from '../../src/lib';
import { FakeClock } from '../fakes/fake-clock';

describe('lib/background-loop', () => {
  let clock: FakeClock;
  let logs: LogEntry[];
  const loops: BackgroundLoop[] = [];

  beforeEach(() => {
    clock = new FakeClock();
    logs = [];
  });
  afterEach(async () => {
    for (const l of loops.splice(0)) await l.stop();
  });

  function loop(o: Partial<BackgroundLoopOptions> & Pick<BackgroundLoopOptions, 'run'>): BackgroundLoop {
    const l = new BackgroundLoop({
      name: 'test',
      everyMs: 1000,
      clock,
      log: createLogger({ silent: true, sink: (e) => logs.push(e) }),
      errorEvent: 'pool.error',
      ...o,
    });
    loops.push(l);
    return l;
  }

  /** A run the test ends by hand, counting runs and how many were in flight at once. */
  function gated() {
    const g = { runs: 0, inFlight: 0, maxInFlight: 0 };
    const gates: Array<() => void> = [];
    let onStart: (() => void) | undefined;
    const run = async () => {
      g.runs++;
      g.maxInFlight = Math.max(g.maxInFlight, ++g.inFlight);
      onStart?.();
      await new Promise<void>((resolve) => gates.push(resolve));
      g.inFlight--;
    };
    const nextStart = () => new Promise<void>((resolve) => (onStart = resolve));
    return { g, run, nextStart, release: () => gates.shift()?.() };
  }

  it('runs after every pause, or at once with runAtStart', async () => {
    let runs = 0;
    const l = loop({ run: async () => void runs++ });
    l.start();
    l.start();
    await clock.sleeping();
    assert.equal(runs, 0);
    clock.advance(1000);
    await clock.sleeping();
    clock.advance(1000);
    await clock.sleeping();
    assert.equal(runs, 2);

    let eager = 0;
    loop({ run: async () => void eager++, runAtStart: true }).start();
    await clock.sleeping(2);
    assert.equal(eager, 1);
  });

  it('never overlaps runs, and kicks during a run make one more run, right after it', async () => {
    const { g, run, nextStart, release } = gated();
    const l = loop({ run, runAtStart: true });
    const first = nextStart();
    l.start();
    await first;
    l.kick();
    l.kick();
    const second = nextStart();
    release();
    await second;
    assert.equal(g.runs, 2, 'the kicked run started without waiting for the clock');
    release();
    await clock.sleeping();
    assert.equal(g.runs, 2);
    assert.equal(g.maxInFlight, 1);
  });

  it('kick() cuts a pause short', async () => {
    let runs = 0;
    const l = loop({ run: async () => void runs++ });
    l.start();
    await clock.sleeping();
    l.kick();
    await nextTurn();
    await clock.sleeping();
    assert.equal(runs, 1);
    assert.equal(clock.pending(), 1, 'the cut-short sleep is gone');
  });

  it('reports a failed run and carries on', async () => {
    let runs = 0;
    const l = loop({
      run: async () => {
        if (++runs === 1) throw new Error('boom');
      },
      runAtStart: true,
    });
    l.start();
    await clock.sleeping();
    assert.deepEqual(
      logs.map((e) => [e.level, e.event, e.loop, (e.error as Error | undefined)?.message]),
      [['error', 'pool.error', 'test', 'boom']],
    );
    clock.advance(1000);
    await clock.sleeping();
    assert.equal(runs, 2);
  });

  it('follows what a run asks: another pause, or the end', async () => {
    const pauses: number[] = [];
    let runs = 0;
    const l = loop({
      run: async () => {
        runs++;
        return runs === 1 ? { afterMs: 0 } : runs === 2 ? { afterMs: 5 } : 'done';
      },
      runAtStart: true,
    });
    const sleep = clock.sleep.bind(clock);
    clock.sleep = (ms, signal) => (pauses.push(ms), sleep(ms, signal));
    l.start();
    await clock.sleeping();
    clock.advance(5);
    await nextTurn();
    await l.stop();
    assert.equal(runs, 3);
    assert.deepEqual(pauses, [5]);
  });

  it('stop() aborts the run in flight and waits for it; start() after stop does nothing', async () => {
    let aborted = false;
    let runs = 0;
    const l = loop({
      run: (signal) =>
        new Promise<void>((resolve) => {
          runs++;
          signal.addEventListener('abort', () => setTimeout(() => ((aborted = true), resolve()), 5), { once: true });
        }),
      runAtStart: true,
    });
    l.start();
    await nextTurn();
    await l.stop();
    assert.equal(aborted, true, 'stop() resolved only after the run ended');
    l.start();
    await nextTurn();
    assert.equal(runs, 1);
    assert.equal(clock.pending(), 0);
    assert.deepEqual(logs, [], 'a run failing because of stop() is not an error');
  });

  it('runEvery: the same loop, ended by its signal', async () => {
    const ac = new AbortController();
    let runs = 0;
    const done = runEvery('legacy', 1000, async () => void runs++, { clock, signal: ac.signal, log: createLogger({ silent: true }), errorEvent: 'pool.error' });
    await clock.sleeping();
    clock.advance(1000);
    await clock.sleeping();
    ac.abort();
    await done;
    assert.equal(runs, 1);
    assert.equal(clock.pending(), 0);
  });
});
