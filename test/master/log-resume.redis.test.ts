import assert from 'node:assert/strict';
import type { JobView, LogChunk } from '../../src/master';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';

const result = { exitCode: 0, signal: null, timedOut: false, startedAt: 1, finishedAt: 2 };

describe('build logs by offset: resent output is stored once (real master, hand-driven agent)', function () {
  let farm: TestFarm;
  const raws: RawAgent[] = [];
  beforeEach(async () => {
    const raw = farmConfigRaw();
    Object.assign(raw.builds as object, { logMaxBytes: 20 });
    farm = await new TestFarm(raw).start();
  });
  afterEach(async () => {
    for (const r of raws.splice(0)) r.ws.terminate();
    await farm.stop();
  });
  const connect = async (name: string, over: Parameters<typeof RawAgent.connect>[1] = {}) => {
    const r = await RawAgent.connect(farm.addr.agentUrl, { name, logOffsets: true, ...over });
    raws.push(r);
    return r;
  };

  it('confirms each offset once stored, skips bytes it has, tells the agent its log limit, and still takes frames without offsets', async () => {
    const agent = await connect('resender');
    assert.equal((await agent.next('welcome')).logMaxBytes, 20);
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const { lockToken } = await agent.next('assign');
    const log = (data: string, offset?: number) => agent.send({ type: 'log', queue: 'b2g', jobId: id, stream: 'stdout', data, ...(offset !== undefined && { offset }) });
    log('a\n', 0);
    log('b\n', 2);
    assert.deepEqual((await agent.all('log-ack', 2)).map((f) => f.offset), [2, 4]);
    // After a reconnect the agent resends from the last offset it saw confirmed: overlapping, whole and partial.
    log('a\nb\n', 0);
    log('b\nc\n', 2);
    assert.deepEqual((await agent.all('log-ack', 4)).map((f) => f.offset), [2, 4, 4, 6]);
    // An agent of the previous version numbers nothing: appended, not confirmed.
    log('d\n');
    // Past builds.logMaxBytes (20) the log is cut behind one marker, however the output is resent.
    log('0123456789abcdef', 8);
    log('0123456789abcdef', 8);
    agent.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken, result });
    await farm.finished(id);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.log, 'a\nb\nc\nd\n0123456789ab\n[spillway: log truncated: over the per-build limit]\n');
    assert.deepEqual((await agent.all('log-ack', 6)).map((f) => f.offset), [2, 4, 4, 6, 24, 24]);
  });

  it('keeps a time mark per stored piece beside the log, never in it, lined up with the stored bytes across resends, gaps and the cut', async () => {
    const agent = await connect('marker');
    await agent.next('welcome');
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const { lockToken } = await agent.next('assign');
    const log = (data: string, offset?: number) => agent.send({ type: 'log', queue: 'b2g', jobId: id, stream: 'stdout', data, ...(offset !== undefined && { offset }) });
    const before = Date.now();
    log('é1\n', 0); // 4 bytes: offsets are bytes, not characters
    log('é1\nx', 0); // partly resent: only "x" is new
    await agent.all('log-ack', 2);
    log('y\n', 10); // a gap in the output (bytes 5-9 never came): the stored text has no gap
    log('0123456789abcdefgh', 12); // crosses logMaxBytes (20, counted in output offsets): cut behind the marker
    log('more', 30); // past the cut: nothing stored, no mark
    await agent.all('log-ack', 5);
    const after = Date.now();
    agent.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken, result });
    await farm.finished(id);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.log, 'é1\nxy\n01234567\n[spillway: log truncated: over the per-build limit]\n');
    const chunk = await farm.api<LogChunk>(`/api/jobs/${id}/log?attempt=1&offset=0`);
    assert.equal(chunk.data, view.log);
    assert.deepEqual(chunk.marks.map(([o]) => o), [0, 4, 5, 7]);
    const bytes = Buffer.from(view.log);
    assert.equal(bytes.subarray(4, 5).toString(), 'x');
    assert.equal(bytes.subarray(5, 7).toString(), 'y\n');
    assert.equal(bytes.subarray(7, 8).toString(), '0');
    for (const [, at] of chunk.marks) assert.ok(at >= before && at <= after, `mark time ${at} outside [${before}, ${after}]`);
    assert.deepEqual([...chunk.marks.map(([, at]) => at)].sort((a, b) => a - b), chunk.marks.map(([, at]) => at));
    // From an offset inside a piece: the piece's mark comes first (it dates the partial line).
    const tail = await farm.api<LogChunk>(`/api/jobs/${id}/log?attempt=1&offset=2`);
    assert.deepEqual(tail.marks.map(([o]) => o), [0, 4, 5, 7]);
    const end = await farm.api<LogChunk>(`/api/jobs/${id}/log?attempt=1&offset=6`);
    assert.deepEqual(end.marks.map(([o]) => o), [5, 7]);
  });

  it('welcomes an agent of the previous version (no logOffsets) with only the fields it knows', async () => {
    const agent = await connect('old-timer', { logOffsets: undefined });
    assert.deepEqual(Object.keys(await agent.next('welcome')).sort(), ['agentId', 'heartbeatMs', 'reattached', 'type']);
  });

  it('takes frames sent right after its welcome while it still settles the results the hello reported', async () => {
    // Results for jobs this master cannot find: each is looked up in Redis after the welcome.
    const finished = Array.from({ length: 50 }, (_, i) => ({ type: 'finished' as const, queue: 'b2g', jobId: `gone-${i}`, lockToken: 'x'.repeat(32), result }));
    const agent = await connect('busy-hello', { finished });
    agent.send({ type: 'heartbeat', running: [] });
    await agent.all('ack', finished.length);
    assert.deepEqual(agent.frames.filter((f) => f.type === 'error'), []);
  });
});
