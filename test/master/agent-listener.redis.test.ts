import assert from 'node:assert/strict';
import { Worker } from 'bullmq';
import WebSocket from 'ws';
import { CloseCode, type MasterFrame } from '../../src/protocol';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { helloFrameFor as hello } from '../helpers/hello-frame';

/** A hand-driven websocket client: the frames an attacker or a broken agent could send. */
async function connect(url: string): Promise<{ ws: WebSocket; frames: MasterFrame[]; next: () => Promise<MasterFrame>; closed: Promise<[number, string]> }> {
  const ws = new WebSocket(url);
  const frames: MasterFrame[] = [];
  const waiters: Array<(f: MasterFrame) => void> = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as MasterFrame;
    const w = waiters.shift();
    if (w) w(f);
    else frames.push(f);
  });
  const closed = new Promise<[number, string]>((r) => ws.on('close', (code, reason) => r([code, reason.toString()])));
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  return { ws, frames, closed, next: () => (frames.length ? Promise.resolve(frames.shift()!) : new Promise((r) => waiters.push(r))) };
}

describe('agent listener: authentication and hostile frames', function () {
  let farm: TestFarm;
  beforeEach(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
  });
  afterEach(() => farm.stop());

  it('closes a connection with a wrong token with 4401, logs it, never registers it', async () => {
    const c = await connect(farm.addr.agentUrl);
    c.ws.send(JSON.stringify(hello({ token: 'wrong-token-value' })));
    const [code, reason] = await c.closed;
    assert.equal(code, CloseCode.unauthorized);
    assert.match(reason, /unauthorized/);
    const line = await farm.logs.waitFor((e) => e.event === 'agent.auth-failed');
    assert.equal(line.reason, 'wrong token');
    assert.equal(JSON.stringify(farm.logs.entries).includes('wrong-token-value'), false, 'the token must not be logged');
    assert.deepEqual(await farm.api('/api/agents'), { agents: [] });
  });

  it('closes a connection whose first frame is not a hello', async () => {
    const c = await connect(farm.addr.agentUrl);
    c.ws.send('{"type":"heartbeat","running":[]}');
    assert.equal((await c.closed)[0], CloseCode.badHello);
  });

  it('rejects malformed JSON and unknown frames with an error frame and keeps the connection and the daemon', async () => {
    const c = await connect(farm.addr.agentUrl);
    c.ws.send(JSON.stringify(hello()));
    assert.equal((await c.next()).type, 'welcome');
    c.ws.send('{not json');
    const e1 = await c.next();
    assert.deepEqual(e1.type === 'error' && e1.message, 'malformed JSON');
    c.ws.send(JSON.stringify({ type: 'launch-missiles' }));
    const e2 = await c.next();
    assert.equal(e2.type, 'error');
    c.ws.send(JSON.stringify({ type: 'finished', queue: 'b2g', jobId: 'x' }));
    assert.equal((await c.next()).type, 'error');
    // Still registered and still dispatching.
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const assign = await c.next();
    assert.equal(assign.type, 'assign');
    assert.equal(assign.type === 'assign' && assign.jobId, id);
    assert.equal(farm.logs.entries.filter((e) => e.event === 'agent.frame-rejected').length, 3);
    c.ws.close();
  });

  it('a result claiming a job this master does not hold cannot settle it, not even with the lock token "0" [BUG: BullMQ skips the lock check for "0"]', async () => {
    // Another master holds the job (its lock, its token) while its agent builds it.
    const queue = farm.queue('b2g');
    await queue.add('build', { argv: ['true'] });
    const other = new Worker('b2g', null, { connection: { url: farm.redisUrl }, prefix: farm.config.redis.queuePrefix, autorun: false });
    const job = (await other.getNextJob('master-other:1'))!;
    const c = await connect(farm.addr.agentUrl);
    c.ws.send(JSON.stringify(hello({ jobTypes: ['linux64'] })));
    assert.equal((await c.next()).type, 'welcome');
    const result = { exitCode: 0, signal: null, timedOut: false, startedAt: 1, finishedAt: 2 };
    for (const lockToken of ['0', 'master-other:2']) {
      c.ws.send(JSON.stringify({ type: 'finished', queue: 'b2g', jobId: job.id, lockToken, result }));
      assert.deepEqual(await c.next(), { type: 'ack', queue: 'b2g', jobId: job.id });
    }
    assert.equal(await job.getState(), 'active', 'still the other master\'s to settle');
    await job.moveToCompleted({ ok: true }, 'master-other:1', false);
    await other.close();
    c.ws.close();
  });

  it('survives a frame whose "type" cannot be turned into a string [BUG: one frame crashed the master]', async () => {
    const evil = JSON.stringify({ type: { toString: 'no', valueOf: 'no' } });
    const before = await connect(farm.addr.agentUrl);
    before.ws.send(evil);
    assert.equal((await before.closed)[0], CloseCode.badHello);
    const c = await connect(farm.addr.agentUrl);
    c.ws.send(JSON.stringify(hello()));
    assert.equal((await c.next()).type, 'welcome');
    c.ws.send(evil);
    const e = await c.next();
    assert.match(e.type === 'error' ? e.message : '', /^invalid frame: type: Invalid discriminator value/);
    c.ws.close();
  });

  it('closes on an oversized frame (1009) and keeps serving others', async () => {
    const c = await connect(farm.addr.agentUrl);
    c.ws.send(JSON.stringify(hello()));
    await c.next();
    c.ws.send('x'.repeat(farm.config.agents.maxFrameBytes + 1));
    assert.equal((await c.closed)[0], 1009);
    await farm.agent({ name: 'ok' });
    const { agents } = await farm.api<{ agents: Array<{ name: string }> }>('/api/agents');
    assert.deepEqual(
      agents.map((a) => a.name),
      ['ok'],
    );
  });
});
