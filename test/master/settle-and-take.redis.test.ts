import assert from 'node:assert/strict';
import { TestFarm } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';

const result = { exitCode: 0, signal: null, timedOut: false, startedAt: 1, finishedAt: 2 };

/**
 * A finished build's settle may take the next job in the same round trip; BullMQ locks that
 * job with the finishing agent's token. These check that such a job never reaches another
 * agent with that token, and that it does reach the finishing agent.
 */
describe('settle and take: the next job taken with a build result (real master, real sockets)', function () {
  this.timeout(30_000);
  let farm: TestFarm;
  const agents: RawAgent[] = [];

  beforeEach(async () => {
    farm = await new TestFarm().start();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) a.ws.terminate();
    await farm.stop();
  });

  async function connect(name: string, labels: string[] = []): Promise<RawAgent> {
    const a = await RawAgent.connect(farm.addr.agentUrl, { name, labels, executors: 1, jobTypes: ['b2g'] });
    agents.push(a);
    return a;
  }

  it('a job the finishing agent cannot run goes back to its queue and reaches the agent that can with a lock of its own', async () => {
    const queue = farm.queue('b2g');
    const gpu = await connect('gpu-agent', ['gpu']);
    await queue.add('build', { argv: ['true'], requirements: { labels: ['gpu'] } });
    const first = await gpu.next('assign');
    gpu.send({ type: 'started', queue: 'b2g', jobId: first.jobId, lockToken: first.lockToken, startedAt: 1 });
    const plain = await connect('plain-agent');
    const a = await queue.add('build', { argv: ['true'] });
    const assignA = await plain.next('assign');
    assert.equal(assignA.jobId, a.id);
    // Next in the queue, and runnable only on the busy gpu agent.
    const b = await queue.add('build', { argv: ['true'], requirements: { labels: ['gpu'] } });
    plain.send({ type: 'started', queue: 'b2g', jobId: a.id, lockToken: assignA.lockToken, startedAt: 1 });
    plain.send({ type: 'finished', queue: 'b2g', jobId: a.id, lockToken: assignA.lockToken, result });
    await plain.next('ack');
    gpu.send({ type: 'finished', queue: 'b2g', jobId: first.jobId, lockToken: first.lockToken, result });
    const [, assignB] = await gpu.all('assign', 2);
    assert.equal(assignB!.jobId, b.id);
    assert.notEqual(assignB!.lockToken, assignA.lockToken, 'never the lock token another agent was given');
    assert.deepEqual(plain.frames.filter((f) => f.type === 'assign').map((f) => (f as { jobId: string }).jobId), [a.id]);
    gpu.send({ type: 'started', queue: 'b2g', jobId: b.id, lockToken: assignB!.lockToken, startedAt: 1 });
    gpu.send({ type: 'finished', queue: 'b2g', jobId: b.id, lockToken: assignB!.lockToken, result });
    const rec = await farm.finished(b.id!);
    assert.equal(rec.agent, 'gpu-agent');
    assert.equal(rec.result, 'success');
  });

  it('a job taken with a result goes to the agent that sent it, with its token, and settles with it', async () => {
    const queue = farm.queue('b2g');
    const agent = await connect('solo');
    const a = await queue.add('build', { argv: ['true'] });
    const assignA = await agent.next('assign');
    const b = await queue.add('build', { argv: ['true'] });
    agent.send({ type: 'started', queue: 'b2g', jobId: a.id, lockToken: assignA.lockToken, startedAt: 1 });
    agent.send({ type: 'finished', queue: 'b2g', jobId: a.id, lockToken: assignA.lockToken, result });
    const [, assignB] = await agent.all('assign', 2);
    assert.equal(assignB!.jobId, b.id);
    agent.send({ type: 'started', queue: 'b2g', jobId: b.id, lockToken: assignB!.lockToken, startedAt: 3 });
    agent.send({ type: 'finished', queue: 'b2g', jobId: b.id, lockToken: assignB!.lockToken, result: { ...result, startedAt: 3, finishedAt: 4 } });
    const rec = await farm.finished(b.id!);
    assert.equal(rec.agent, 'solo');
    assert.equal(await (await queue.getJob(b.id!))!.getState(), 'completed');
  });
});
