import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { CloseCode, type HelloFrame } from '../../src/protocol';
import type { JobView } from '../../src/master';
import { TestFarm } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';

const result = { exitCode: 0, signal: null, timedOut: false, startedAt: 1, finishedAt: 2 };

async function metric(farm: TestFarm, name: string): Promise<string[]> {
  const text = await (await fetch(`${farm.addr.httpUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

/**
 * A fresh farm per test and hand-driven agents on it, closed after each test. Call inside a
 * describe; the returned functions read the current test's farm.
 */
function farmWithRawAgents(): { farm: () => TestFarm; raw: (hello: Partial<HelloFrame>, options?: WebSocket.ClientOptions) => Promise<RawAgent> } {
  let current: TestFarm;
  const raws: RawAgent[] = [];
  beforeEach(async () => (current = await new TestFarm().start()));
  afterEach(async () => {
    for (const r of raws.splice(0)) r.ws.terminate();
    await current.stop();
  });
  return {
    farm: () => current,
    raw: async (hello, options) => {
      const r = await RawAgent.connect(current.addr.agentUrl, hello, options);
      raws.push(r);
      return r;
    },
  };
}

describe('trust: results only from the agent that holds the job (real master, real sockets)', function () {
  const fixture = farmWithRawAgents();
  const raw = fixture.raw;
  let farm: TestFarm;
  beforeEach(() => (farm = fixture.farm()));

  it('hands out unguessable lock tokens: 128 random bits, nothing of the master id or a counter', async () => {
    const victim = await raw({ name: 'victim', jobTypes: ['b2g'], executors: 2 });
    await farm.submit({ type: 'b2g', argv: ['true'] });
    await farm.submit({ type: 'b2g', argv: ['true'] });
    const tokens = (await victim.all('assign', 2)).map((f) => f.lockToken);
    for (const t of tokens) {
      assert.match(t, /^[0-9a-f]{32}$/, `token ${t}`);
      assert.ok(!t.includes(farm.master.id), 'no master id in a token');
    }
    assert.notEqual(tokens[0], tokens[1]);
  });

  it('refuses started/log/finished about a job from a second agent, with guessed or even the real token; counts and logs it once', async () => {
    const victim = await raw({ name: 'victim', jobTypes: ['b2g'] });
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const assign = await victim.next('assign');
    const rogue = await raw({ name: 'rogue', jobTypes: ['linux64'] });
    assert.ok(rogue.welcomed, 'the rogue holds a valid agent token');

    const guesses = [assign.lockToken, `${farm.master.id}:1`, `${farm.master.id}:2`, '0', 'x'.repeat(32)];
    for (const lockToken of guesses) {
      rogue.send({ type: 'started', queue: 'b2g', jobId: id, lockToken, startedAt: 1 });
      rogue.send({ type: 'log', queue: 'b2g', jobId: id, stream: 'stdout', data: 'FORGED OUTPUT\n' });
      rogue.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken, result: { ...result, exitCode: 99 } });
    }
    // The master acks every finished frame, refused or not: the last ack means all were handled.
    await rogue.all('ack', guesses.length);

    let view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'active', 'the job still belongs to the victim');
    assert.ok(!(view.log ?? '').includes('FORGED'));

    victim.send({ type: 'started', queue: 'b2g', jobId: id, lockToken: assign.lockToken, startedAt: 5 });
    victim.send({ type: 'log', queue: 'b2g', jobId: id, stream: 'stdout', data: 'real output\n' });
    victim.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken: assign.lockToken, result: { ...result, startedAt: 5, finishedAt: 6 } });
    const rec = await farm.finished(id);
    assert.equal(rec.agent, 'victim');
    assert.equal(rec.result, 'success');
    view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'completed');
    assert.equal(view.exitCode, 0);
    assert.equal(view.log, 'real output\n');

    const refused = await metric(farm, 'spillway_frames_refused_total{');
    const count = (frame: string) => refused.filter((l) => l.includes(`frame="${frame}"`) && l.includes('reason="not-holder"')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    assert.equal(count('started'), guesses.length, refused.join('\n'));
    assert.equal(count('log'), guesses.length, refused.join('\n'));
    assert.equal(count('finished'), guesses.length, refused.join('\n'));
    const lines = farm.logs.entries.filter((e) => e.event === 'job.frame-refused' && e.agent === 'rogue');
    assert.equal(lines.length, 1, 'one line per agent and window, however many frames');
    assert.equal(lines[0]!.code, 'not-holder');
  });

  it('lets the same agent report a build after a reconnect, and no other agent take it over', async () => {
    const first = await raw({ name: 'rack-1', jobTypes: ['b2g'] });
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const assign = await first.next('assign');
    first.ws.terminate();
    await farm.logs.waitFor((e) => e.event === 'agent.disconnected' && e.agent === 'rack-1');
    const held = { queue: 'b2g', jobId: id, lockToken: assign.lockToken };
    const thief = await raw({ name: 'thief', jobTypes: ['b2g'], running: [held] });
    assert.deepEqual((await thief.next('welcome')).reattached, [], 'another agent cannot reattach it with the token');
    const back = await raw({ name: 'rack-1', jobTypes: ['b2g'], running: [held] });
    assert.deepEqual((await back.next('welcome')).reattached, [{ queue: 'b2g', jobId: id }]);
    back.send({ type: 'finished', ...held, result });
    assert.equal((await farm.finished(id)).agent, 'rack-1');
  });
});

describe('trust: agent names (real master, real sockets)', function () {
  const fixture = farmWithRawAgents();
  const raw = fixture.raw;
  let farm: TestFarm;
  beforeEach(() => (farm = fixture.farm()));

  it('refuses a second live agent with the same name (4409) and keeps the first', async () => {
    const first = await raw({ name: 'twin', jobTypes: ['b2g'] });
    const second = await raw({ name: 'twin', jobTypes: ['b2g'], cpus: 64 });
    assert.equal(second.welcomed, false);
    const end = await second.closed;
    assert.equal(end.code, CloseCode.duplicateName);
    assert.match(end.reason, /in use by a live agent/);
    const line = await farm.logs.waitFor((e) => e.event === 'agent.duplicate-name');
    assert.equal(line.agent, 'twin');
    assert.equal(first.ws.readyState, WebSocket.OPEN, 'the first keeps its connection');
    const { agents } = await farm.api<{ agents: Array<{ name: string; cpus: number }> }>('/api/agents');
    assert.deepEqual(agents.map((a) => [a.name, a.cpus]), [['twin', 2]]);
  });

  it('a real agent refused for its name exits with a clear message', async () => {
    await raw({ name: 'twin', jobTypes: ['b2g'] });
    void farm.agent({ name: 'twin', jobTypes: ['b2g'] });
    const line = await farm.logs.waitFor((e) => e.event === 'agent.rejected' && e.agent === 'twin');
    assert.equal(line.code, CloseCode.duplicateName);
    assert.match(String(line.hint), /give each agent its own --name/);
    assert.ok(farm.logs.entries.some((e) => e.event === 'agent.duplicate-name' && e.agent === 'twin'), 'and the master says so too');
  });

  it('lets the same agent back in when its old connection no longer answers, or from the same instance', async () => {
    // A half-open old connection: it never answers pings.
    const stale = await raw({ name: 'rack-1', jobTypes: ['b2g'] }, { autoPong: false });
    const back = await raw({ name: 'rack-1', jobTypes: ['b2g'] });
    assert.ok(back.welcomed);
    assert.equal((await stale.closed).code, CloseCode.duplicateName);

    const cloud = await raw({ name: 'spot-1', jobTypes: ['b2g'], location: 'cloud', instanceId: 'i-0abc' });
    const again = await raw({ name: 'spot-1', jobTypes: ['b2g'], location: 'cloud', instanceId: 'i-0abc' });
    assert.ok(again.welcomed, 'the same instance wins at once');
    await cloud.closed;
  });

  it('warns about job types the master does not know, on both sides, and shows them on /api/agents', async () => {
    const a = await raw({ name: 'odd', jobTypes: ['b2g', 'fortran77'] });
    const err = await a.next('error');
    assert.equal(err.code, 'SPILLWAY_E_UNKNOWN_JOB_TYPES');
    assert.match(err.message, /fortran77/);
    const line = await farm.logs.waitFor((e) => e.event === 'agent.unknown-job-types');
    assert.deepEqual(line.jobTypes, ['fortran77']);
    const { agents } = await farm.api<{ agents: Array<{ name: string; unknownJobTypes: string[] }> }>('/api/agents');
    assert.deepEqual(agents.find((x) => x.name === 'odd')?.unknownJobTypes, ['fortran77']);
    await farm.agent({ name: 'real-odd', jobTypes: ['linux64', 'cobol'] });
    const agentSide = await farm.logs.waitFor((e) => e.event === 'agent.master-error' && e.agent === 'real-odd');
    assert.match(String(agentSide.message), /cobol/);
  });
});

describe('declined assignments: a job its agent will not run is placed again (real master, real sockets)', function () {
  const fixture = farmWithRawAgents();
  const raw = fixture.raw;
  let farm: TestFarm;
  beforeEach(() => (farm = fixture.farm()));

  it('goes to another agent at once, same attempt and lock, and finishes there', async () => {
    const full = await raw({ name: 'full', jobTypes: ['b2g'] });
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const first = await full.next('assign');
    const other = await raw({ name: 'other', jobTypes: ['b2g'] });
    full.send({ type: 'declined', queue: 'b2g', jobId: id, lockToken: first.lockToken, reason: 'disk full' });
    const second = await other.next('assign');
    assert.equal(second.jobId, id);
    assert.equal(second.attempt, first.attempt, 'a declined placement uses no attempt');
    const line = await farm.logs.waitFor((e) => e.event === 'job.declined');
    assert.deepEqual([line.agent, line.reason], ['full', 'disk full']);
    other.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken: second.lockToken, result });
    const rec = await farm.finished(id);
    assert.equal(rec.agent, 'other');
    assert.equal(rec.result, 'success');
  });

  it('with no other agent, waits and goes back to the same agent once it says it has room again', async () => {
    const only = await raw({ name: 'only', jobTypes: ['b2g'] });
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const first = await only.next('assign');
    // The race the frame exists for: the disk filled after the master chose this agent.
    only.send({ type: 'disk', full: true, path: '/work', freeMb: 10, minFreeMb: 1024 });
    only.send({ type: 'declined', queue: 'b2g', jobId: id, lockToken: first.lockToken, reason: 'disk full' });
    await farm.logs.waitFor((e) => e.event === 'job.declined');
    assert.equal(only.frames.filter((f) => f.type === 'assign').length, 1, 'not offered again while full');
    only.send({ type: 'disk', full: false, path: '/work', freeMb: 4096, minFreeMb: 1024 });
    const again = (await only.all('assign', 2))[1]!;
    assert.equal(again.jobId, id);
    only.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken: again.lockToken, result });
    assert.equal((await farm.finished(id)).agent, 'only');
  });

  it("refuses a decline from another agent, with the real token, or of a build that started; the holder's build stands", async () => {
    const victim = await raw({ name: 'victim', jobTypes: ['b2g'] });
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    const assign = await victim.next('assign');
    const rogue = await raw({ name: 'rogue', jobTypes: ['b2g'] });
    rogue.send({ type: 'declined', queue: 'b2g', jobId: id, lockToken: assign.lockToken, reason: 'forged' });
    victim.send({ type: 'started', queue: 'b2g', jobId: id, lockToken: assign.lockToken, startedAt: 5 });
    victim.send({ type: 'declined', queue: 'b2g', jobId: id, lockToken: assign.lockToken, reason: 'too late' });
    victim.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken: assign.lockToken, result: { ...result, startedAt: 5, finishedAt: 6 } });
    const rec = await farm.finished(id);
    assert.equal(rec.agent, 'victim');
    assert.equal(rogue.frames.filter((f) => f.type === 'assign').length, 0, 'the rogue never got the job');
    const refused = await metric(farm, 'spillway_frames_refused_total{');
    const of = (reason: string) => refused.filter((l) => l.includes('frame="declined"') && l.includes(`reason="${reason}"`)).length;
    assert.equal(of('not-holder'), 1, refused.join('\n'));
    assert.equal(of('wrong-state'), 1, refused.join('\n'));
    assert.ok(!farm.logs.entries.some((e) => e.event === 'job.declined'));
  });
});
