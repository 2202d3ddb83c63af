import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config';
import { createLogger } from '../../src/lib';
import { agentFromHello, AgentRegistry } from '../../src/master/agent-registry';
import { Dispatcher } from '../../src/master/dispatcher';
import type { HelloFrame, MasterFrame } from '../../src/protocol';
import { FakeBuildRecords } from '../fakes/fake-build-records';
import { FakeClock } from '../fakes/fake-clock';
import { FakeJobQueue } from '../fakes/fake-job-queue';
import { helloFrameFor } from '../helpers/hello-frame';

type Assign = Extract<MasterFrame, { type: 'assign' }>;
const result = { exitCode: 0, signal: null, timedOut: false, startedAt: 10, finishedAt: 20 };

/**
 * The dispatcher on an in-memory queue that settles and takes in one step, as BullMQ's
 * fetchNext does (the next job locked with the settling token), with takes held so that the
 * job comes with the settle and not from the feed loop.
 */
function rig() {
  const config = parseConfig({ agents: { token: 'unit-test-token-0123', heartbeatSec: 1, lostAfterSec: 5 }, jobTypes: { b2g: {} }, builds: { lockMs: 4000 } }, {});
  const clock = new FakeClock();
  const queue = new FakeJobQueue('b2g', { settleTakes: true });
  const registry = new AgentRegistry();
  const log = createLogger({ level: 'error', silent: true });
  const dispatcher = new Dispatcher({ config, queues: new Map([['b2g', queue]]), registry, builds: new FakeBuildRecords(), clock, log });
  let conn = 0;
  const agent = (h: Partial<HelloFrame>) => {
    const assigns: Assign[] = [];
    const waiters: Array<() => void> = [];
    const a = agentFromHello(helloFrameFor(h), {
      id: `conn-${++conn}`,
      address: '127.0.0.1',
      pool: undefined,
      now: clock.now(),
      send: (f) => {
        if (f.type === 'assign') assigns.push(f);
        waiters.splice(0).forEach((w) => w());
      },
      close: () => registry.remove(a),
    });
    registry.add(a);
    dispatcher.capacityChanged();
    const assigned = async (n: number): Promise<Assign> => {
      while (assigns.length < n) await new Promise<void>((r) => waiters.push(r));
      return assigns[n - 1]!;
    };
    return { a, assigns, assigned };
  };
  const finish = (x: ReturnType<typeof agent>, f: Assign) => dispatcher.onFinished(x.a, { type: 'finished', queue: f.queue, jobId: f.jobId, lockToken: f.lockToken, result });
  return { queue, dispatcher, agent, finish };
}

describe('settle and take (in-memory queue that takes with the settle)', () => {
  let r: ReturnType<typeof rig>;
  beforeEach(() => {
    r = rig();
    r.dispatcher.start();
  });
  afterEach(() => r.dispatcher.stop());

  it('gives the job taken with a result to the agent that sent it, with its token', async () => {
    const x = r.agent({ name: 'x' });
    r.queue.add('a', { argv: ['true'] });
    const a = await x.assigned(1);
    const release = r.queue.holdTakes();
    r.queue.add('b', { argv: ['true'] });
    await r.finish(x, a);
    const b = await x.assigned(2);
    assert.equal(b.jobId, 'b');
    assert.equal(b.lockToken, a.lockToken);
    assert.ok(r.queue.calls.includes("take b with a's token"));
    release();
  });

  it('sends a job taken with one agent\'s result that does not fit there back to its queue, never to another agent with that token', async () => {
    const gpu = r.agent({ name: 'gpu', labels: ['gpu'] });
    r.queue.add('g', { argv: ['true'], requirements: { labels: ['gpu'] } });
    const g = await gpu.assigned(1);
    const x = r.agent({ name: 'x' });
    r.queue.add('a', { argv: ['true'] });
    const a = await x.assigned(1);
    const release = r.queue.holdTakes();
    r.queue.add('b', { argv: ['true'], requirements: { labels: ['gpu'] } });
    await r.finish(x, a);
    assert.ok(r.queue.calls.includes("take b with a's token"), r.queue.calls.join(', '));
    assert.equal(r.queue.calls.at(-1), 'giveBack b');
    assert.equal(r.queue.stateOf('b'), 'waiting');
    assert.deepEqual(x.assigns.map((f) => f.jobId), ['a']);
    // Taken again by the feed loop, with a token of its own, for the agent that can run it.
    release();
    await r.finish(gpu, g);
    const b = await gpu.assigned(2);
    assert.equal(b.jobId, 'b');
    assert.notEqual(b.lockToken, a.lockToken);
  });
});
