import assert from 'node:assert/strict';
import { once } from 'node:events';
import { parseConfig } from '../../src/config';
import { createLogger, type LogEntry } from '../../src/lib';
import { agentFromHello, AgentRegistry } from '../../src/master/agent-registry';
import type { BuildRecord } from '../../src/master/build-store';
import type { CancelRequest } from '../../src/master/cancel-store';
import { Dispatcher } from '../../src/master/dispatcher';
import type { BuildResult, HelloFrame, MasterFrame } from '../../src/protocol';
import { FakeBuildRecords } from '../fakes/fake-build-records';
import { FakeClock } from '../fakes/fake-clock';
import { FakeJobQueue } from '../fakes/fake-job-queue';
import { helloFrameFor } from '../helpers/hello-frame';

type Assign = Extract<MasterFrame, { type: 'assign' }>;

/** A dispatcher on in-memory queues and records, a fake clock and hand-made agents: no Redis, no sockets. */
function rig(over: Record<string, unknown> = {}, cancels?: Map<string, CancelRequest>) {
  const config = parseConfig(
    { agents: { token: 'unit-test-token-0123', heartbeatSec: 1, lostAfterSec: 5 }, jobTypes: { b2g: {} }, builds: { lockMs: 4000 }, ...over },
    {},
  );
  const clock = new FakeClock();
  const logs: LogEntry[] = [];
  const log = createLogger({ level: 'debug', silent: true, sink: (e) => logs.push(e) });
  const queue = new FakeJobQueue('b2g');
  const registry = new AgentRegistry();
  const builds = new FakeBuildRecords();
  const stored = cancels && { get: async (type: string, id: string) => cancels.get(`${type}/${id}`) };
  const dispatcher = new Dispatcher({ config, queues: new Map([['b2g', queue]]), registry, builds, clock, log, ...(stored && { cancels: stored }) });
  let conn = 0;
  const agent = (h: Partial<HelloFrame> = {}) => {
    const frames: MasterFrame[] = [];
    const next = new Array<(f: MasterFrame) => void>();
    const a = agentFromHello(helloFrameFor(h), {
      id: `conn-${++conn}`,
      address: '127.0.0.1',
      pool: undefined,
      now: clock.now(),
      send: (f) => (frames.push(f), next.splice(0).forEach((r) => r(f))),
      close: () => registry.remove(a),
    });
    registry.add(a);
    dispatcher.capacityChanged();
    /** Resolves with the `nth` frame of `type` (already sent or future). */
    const frame = <T extends MasterFrame['type']>(type: T, nth = 1): Promise<Extract<MasterFrame, { type: T }>> => {
      const sent = frames.filter((f) => f.type === type)[nth - 1];
      if (sent) return Promise.resolve(sent as Extract<MasterFrame, { type: T }>);
      return new Promise((resolve) => {
        const wait = () => {
          const got = frames.filter((x) => x.type === type)[nth - 1];
          if (got) resolve(got as Extract<MasterFrame, { type: T }>);
          else next.push(wait);
        };
        next.push(wait);
      });
    };
    return { a, frames, frame };
  };
  return { config, clock, logs, queue, registry, builds, dispatcher, agent };
}

const result = (exitCode: number): BuildResult => ({ exitCode, signal: null, timedOut: false, startedAt: 10, finishedAt: 20 }) as BuildResult;
const finishedFrame = (f: Assign, exitCode = 0, lockToken = f.lockToken) => ({ type: 'finished' as const, queue: f.queue, jobId: f.jobId, lockToken, result: result(exitCode) });

describe('dispatcher (in-memory queue, fake clock)', () => {
  let r: ReturnType<typeof rig>;
  beforeEach(() => {
    r = rig();
    r.dispatcher.start();
  });
  afterEach(() => r.dispatcher.stop());

  it('hands a job to an agent and completes it from the agent\'s result', async () => {
    const { a, frame } = r.agent({ name: 'rack-1' });
    const busy = once(r.dispatcher, 'agent-busy');
    r.queue.add('1', { argv: ['true'] });
    const assign = await frame('assign');
    assert.equal(assign.jobId, '1');
    assert.equal((await busy)[0], a);
    assert.deepEqual([...a.running], ['b2g/1']);

    r.dispatcher.onStarted(a, { queue: 'b2g', jobId: '1', lockToken: assign.lockToken, startedAt: 10 });
    r.dispatcher.onLog(a, 'b2g', '1', 'hello\n');
    const idle = once(r.dispatcher, 'agent-idle');
    const finished = once(r.dispatcher, 'build-finished');
    await r.dispatcher.onFinished(a, finishedFrame(assign));
    assert.equal(((await finished)[0] as BuildRecord).result, 'success');
    await idle;
    assert.equal(r.queue.stateOf('1'), 'completed');
    assert.equal(r.builds.logs.get('b2g:1:1'), 'hello\n');
    assert.equal(a.running.size, 0);
  });

  it('refuses frames about a job from an agent it is not assigned to, whatever token they quote', async () => {
    const holder = r.agent({ name: 'rack-1' });
    r.queue.add('1', { argv: ['true'] });
    const assign = await holder.frame('assign');
    const rogue = r.agent({ name: 'rogue' });
    r.dispatcher.onStarted(rogue.a, { queue: 'b2g', jobId: '1', lockToken: assign.lockToken, startedAt: 10 });
    r.dispatcher.onLog(rogue.a, 'b2g', '1', 'forged\n');
    await r.dispatcher.onFinished(rogue.a, finishedFrame(assign, 0));
    assert.equal(r.queue.stateOf('1'), 'active', 'the job is still the holder\'s');
    assert.equal(r.builds.logs.get('b2g:1:1'), undefined);
    assert.ok(r.logs.some((e) => e.event === 'job.frame-refused' && e.agent === 'rogue' && e.code === 'not-holder'));
    await r.dispatcher.onFinished(holder.a, finishedFrame(assign, 0));
    assert.equal(r.queue.stateOf('1'), 'completed');
  });

  it('retries the build of an agent that went silent, on another agent', async () => {
    const first = r.agent({ name: 'rack-1' });
    r.queue.add('1', { argv: ['true'] }, { attempts: 2 });
    await first.frame('assign');
    const lost = once(r.dispatcher, 'build-finished');
    r.clock.advance(6000);
    assert.equal(((await lost)[0] as BuildRecord).result, 'lost');
    assert.equal(r.queue.entry('1')!.job.attemptsMade, 1);
    const second = r.agent({ name: 'rack-2' });
    assert.equal((await second.frame('assign')).attempt, 2);
  });

  it('tells the agent to cancel when the lock is lost and frees its executor', async () => {
    const { a, frame } = r.agent({ name: 'rack-1' });
    r.queue.add('1', { argv: ['true'] });
    await frame('assign');
    r.queue.steal('1');
    r.clock.advance(2000);
    const cancel = await frame('cancel');
    assert.equal(cancel.jobId, '1');
    assert.equal(a.running.size, 0);
    assert.equal(r.dispatcher.heldJobs().length, 0);
  });

  it('requeues the builds of a preempted instance without using an attempt, once', async () => {
    const { frame } = r.agent({ name: 'spot-1', location: 'cloud', instanceId: 'i-1' });
    r.queue.add('1', { argv: ['true'] });
    await frame('assign');
    assert.equal(r.dispatcher.noticeInstance('i-1', 'spot-interruption'), true);
    await Promise.all([r.dispatcher.preemptInstance('i-1', 'gone'), r.dispatcher.preemptInstance('i-1', 'gone')]);
    assert.equal(r.queue.calls.filter((c) => c === 'giveBack 1').length, 1);
    assert.equal(r.queue.entry('1')!.job.attemptsMade, 0);
    assert.equal(await r.builds.preemptions('b2g', '1'), 1);
  });

  it('gives a reconnecting agent its build back and accepts its result from the new connection', async () => {
    const first = r.agent({ name: 'rack-1' });
    r.queue.add('1', { argv: ['true'] });
    const assign = await first.frame('assign');
    r.registry.remove(first.a);
    r.dispatcher.orphan(first.a);
    const again = agentFromHello(helloFrameFor({ name: 'rack-1' }), { id: 'conn-back', address: '127.0.0.1', pool: undefined, now: r.clock.now(), send: () => undefined, close: () => undefined });
    r.registry.joining(again);
    const kept = await r.dispatcher.reattach(again, [{ queue: 'b2g', jobId: '1', lockToken: assign.lockToken }]);
    r.registry.add(again);
    assert.deepEqual(kept, [{ queue: 'b2g', jobId: '1' }]);
    assert.deepEqual([...again.running], ['b2g/1']);
    await r.dispatcher.onFinished(again, finishedFrame(assign));
    assert.equal(r.queue.stateOf('1'), 'completed');
  });

  it('parks jobs no agent can run, so a runnable one behind them is placed at once; promotes them when a capable agent comes', async () => {
    const plain = r.agent({ name: 'plain' });
    for (let i = 0; i < 20; i++) r.queue.add(`gpu-${i}`, { argv: ['true'], requirements: { labels: ['gpu'] } });
    r.queue.add('plain-1', { argv: ['true'] });
    assert.equal((await plain.frame('assign')).jobId, 'plain-1');
    assert.equal(r.queue.calls.filter((c) => c.startsWith('park ')).length, 20);
    assert.deepEqual(r.dispatcher.unrunnableOf('b2g'), { count: 20, reason: 'no agent offers label gpu' });
    const gpu = r.agent({ name: 'gpu-box', labels: ['gpu'] });
    assert.equal((await gpu.frame('assign')).jobId.startsWith('gpu-'), true);
    assert.equal(r.dispatcher.unrunnableOf('b2g').count, 0);
  });

  it('fails an invalid payload for good without holding it', async () => {
    r.agent({ name: 'rack-1' });
    const settled = once(r.dispatcher, 'job-settled');
    r.queue.add('bad', { argv: 'not an array' });
    await settled;
    assert.equal(r.queue.stateOf('bad'), 'failed');
    assert.equal(r.dispatcher.heldJobs().length, 0);
  });
});

describe('dispatcher: cancel (in-memory queue, fake clock)', () => {
  let r: ReturnType<typeof rig>;
  const cancels = new Map<string, CancelRequest>();
  const request: CancelRequest = { by: 'submit token 3f9a1c2e', reason: 'superseded', at: 5 };
  beforeEach(() => {
    cancels.clear();
    r = rig({}, cancels);
    r.dispatcher.start();
  });
  afterEach(() => r.dispatcher.stop());

  const settled = (id: string) => new Promise<void>((resolve) => r.dispatcher.on('job-settled', (_q, j) => j === id && resolve()));
  const finishedOf = (id: string) =>
    new Promise<BuildRecord>((resolve) => r.dispatcher.on('build-finished', (rec) => rec.id === id && resolve(rec)));

  it('kills a running build through its agent, keeps the executor taken until the agent reports, records who, and never retries it', async () => {
    const holder = r.agent({ name: 'rack-1' });
    r.queue.add('1', { argv: ['sleep', '600'] }, { attempts: 3 });
    const assign = await holder.frame('assign');
    r.dispatcher.onStarted(holder.a, { queue: 'b2g', jobId: '1', lockToken: assign.lockToken, startedAt: 10 });
    const failed = settled('1');
    assert.equal(r.dispatcher.cancel('b2g', '1', request), true);
    assert.equal(r.dispatcher.cancel('b2g', '1', request), false, 'once');
    assert.deepEqual(await holder.frame('cancel'), { type: 'cancel', queue: 'b2g', jobId: '1', reason: 'cancelled by submit token 3f9a1c2e: superseded', report: true });
    await failed;
    assert.equal(r.queue.stateOf('1'), 'failed');
    assert.equal(r.queue.entry('1')!.failedReason, 'cancelled by submit token 3f9a1c2e: superseded');
    // Until the agent says the build is gone, its executor is not free: the next job waits.
    r.queue.add('2', { argv: ['true'] });
    r.clock.advance(2000);
    assert.deepEqual([...holder.a.running], ['b2g/1']);
    assert.equal(holder.frames.filter((f) => f.type === 'assign').length, 1);
    assert.equal(r.logs.some((e) => e.event === 'job.lock-lost'), false, 'a cancelled job has no lock left to renew');

    // Only its holder's report counts. The rogue takes no work: otherwise job 2 would go to
    // it, the least recently used agent (on-prem placement spreads).
    const rogue = r.agent({ name: 'rogue', draining: true });
    await r.dispatcher.onFinished(rogue.a, { ...finishedFrame(assign), result: { ...result(0), signal: 'SIGTERM', exitCode: null } });
    assert.ok(r.logs.some((e) => e.event === 'job.frame-refused' && e.agent === 'rogue' && e.code === 'not-holder'));
    const rec = finishedOf('1');
    await r.dispatcher.onFinished(holder.a, { ...finishedFrame(assign), result: { ...result(0), exitCode: null, signal: 'SIGTERM' } });
    const done = await rec;
    assert.deepEqual([done.result, done.signal, done.reason], ['cancelled', 'SIGTERM', 'cancelled by submit token 3f9a1c2e: superseded']);
    assert.equal(r.queue.stateOf('1'), 'failed', 'not retried, with two attempts left');
    assert.equal((await holder.frame('assign', 2)).jobId, '2', 'the freed executor takes the next job');
  });

  it('ends a cancelled build as cancelled whatever ends it first: its agent disconnecting, declining, or going silent', async () => {
    for (const how of ['disconnect', 'decline', 'silent'] as const) {
      const holder = r.agent({ name: `rack-${how}` });
      r.queue.add(how, { argv: ['true'] }, { attempts: 3 });
      const assign = await holder.frame('assign');
      const rec = finishedOf(how);
      assert.equal(r.dispatcher.cancel('b2g', how, request), true);
      if (how === 'disconnect') {
        r.registry.remove(holder.a);
        r.dispatcher.orphan(holder.a);
      } else if (how === 'decline') {
        r.dispatcher.onDeclined(holder.a, { queue: 'b2g', jobId: how, lockToken: assign.lockToken, reason: 'draining' });
      } else {
        r.clock.advance(6000);
      }
      const done = await rec;
      assert.equal(done.result, 'cancelled', how);
      assert.equal(done.startedAt, null, `${how}: it never started`);
      assert.equal(r.dispatcher.heldJobs().length, 0, how);
      assert.equal(r.queue.stateOf(how), 'failed', how);
      assert.equal(r.queue.entry(how)!.job.attemptsMade, 1, `${how}: failed once, for good`);
      r.registry.remove(holder.a);
    }
  });

  it('cancels a job waiting here for an executor at once, and one whose agent is away without waiting for it', async () => {
    const busy = r.agent({ name: 'rack-1' });
    r.queue.add('running', { argv: ['true'] });
    await busy.frame('assign');
    r.queue.add('pending', { argv: ['true'] });
    // Taken ahead of a free executor (prefetch): no event says so, the count does.
    await new Promise<void>((resolve) => {
      const check = () => (r.dispatcher.pendingCount('b2g') === 1 ? resolve() : setImmediate(check));
      check();
    });
    const failed = settled('pending');
    assert.equal(r.dispatcher.cancel('b2g', 'pending', request), true);
    await failed;
    assert.equal(r.queue.stateOf('pending'), 'failed');
    assert.equal(r.dispatcher.pendingCount('b2g'), 0);

    r.registry.remove(busy.a);
    r.dispatcher.orphan(busy.a);
    const rec = finishedOf('running');
    assert.equal(r.dispatcher.cancel('b2g', 'running', request), true);
    assert.equal((await rec).result, 'cancelled');
    assert.equal(r.dispatcher.heldJobs().length, 0);
  });

  it('cancels a job whose cancel request is stored by the time it is taken: it never completes', async () => {
    const holder = r.agent({ name: 'rack-1' });
    cancels.set('b2g/taken', request);
    const failed = settled('taken');
    r.queue.add('taken', { argv: ['true'] });
    const assign = await holder.frame('assign');
    await failed;
    assert.equal((await holder.frame('cancel')).jobId, 'taken');
    await r.dispatcher.onFinished(holder.a, finishedFrame(assign, 0));
    assert.equal(r.queue.stateOf('taken'), 'failed');
    assert.equal(r.queue.entry('taken')!.failedReason, 'cancelled by submit token 3f9a1c2e: superseded');
  });
});
