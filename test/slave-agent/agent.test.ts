import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentOptions } from '../../src/config';
import { runProcess, type RunHandle } from '../../src/executor';
import { createLogger, type LogEntry } from '../../src/lib';
import { PROTOCOL_VERSION, type AssignFrame, type JobPayload } from '../../src/protocol';
import { Agent, AgentRejectedError, type AgentDeps } from '../../src/slave-agent';
import { FakeImds } from './fake-imds';
import { FakeMaster, type MasterSide } from './fake-master';

const TOKEN = 'sekret-token-value';
const PATH = '/usr/local/bin:/usr/bin:/bin';

describe('slave-agent/agent', () => {
  let master: FakeMaster;
  let dir: string;
  let entries: LogEntry[];
  let agent: Agent | undefined;
  /** Run handles by job id, so tests can await a build's processes. */
  let handles: Map<string, RunHandle>;

  beforeEach(async () => {
    master = await FakeMaster.start();
    dir = mkdtempSync(join(tmpdir(), 'spillway-agent-test-'));
    entries = [];
    handles = new Map();
  });

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    await master.close();
    rmSync(dir, { recursive: true, force: true });
    assert.ok(!JSON.stringify(entries).includes(TOKEN), 'the token reached a log line');
  });

  function makeAgent(overrides: Partial<AgentDeps> = {}, options: Record<string, unknown> = {}): Agent {
    agent = new Agent({
      options: parseAgentOptions({
        master: master.url,
        token: TOKEN,
        name: 'builder-1',
        jobTypes: ['b2g', 'android'],
        executors: 3,
        labels: ['fast'],
        workDir: join(dir, 'work'),
        cpus: 6,
        ...options,
      }),
      log: createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) }),
      host: { os: 'linux', arch: 'x64', cpus: 4, memoryMb: 2048 },
      baseEnv: { PATH, SPILLWAY_AGENT_TOKEN: TOKEN, FROM_BASE: 'base' },
      backoff: { baseMs: 5, maxMs: 20 },
      killGraceMs: 500,
      runner: (spec, onOutput, deps) => {
        const h = runProcess(spec, onOutput, deps);
        handles.set(spec.env?.SPILLWAY_JOB_ID ?? '', h);
        return h;
      },
      ...overrides,
    });
    return agent;
  }

  function assign(jobId: string, payload: JobPayload, queue = 'b2g', attempt = 1): AssignFrame {
    return { type: 'assign', queue, jobId, lockToken: `lock-${jobId}`, attempt, payload, timeoutSec: 30 };
  }

  /** A build that runs until the test creates its release file. */
  const gated = (name: string) => ({ shell: `echo waiting; while [ ! -e '${join(dir, name)}' ]; do sleep 0.02; done; echo released` });
  const release = (name: string) => writeFileSync(join(dir, name), '');

  async function connected(a: Agent, n = 0, heartbeatMs?: number): Promise<MasterSide> {
    void a.start().catch(() => undefined);
    const side = await master.connection(n);
    await side.take('hello');
    const welcomed = once(a, 'welcomed');
    side.welcome({ heartbeatMs });
    await welcomed;
    return side;
  }

  it('says hello with what it is and sends heartbeats with running job ids', async () => {
    const a = makeAgent();
    void a.start();
    const side = await master.connection(0);
    const hello = await side.take('hello');
    assert.deepEqual(hello, {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      token: TOKEN,
      name: 'builder-1',
      location: 'onprem',
      jobTypes: ['b2g', 'android'],
      executors: 3,
      os: 'linux',
      arch: 'x64',
      cpus: 6,
      memoryMb: 2048,
      labels: ['fast'],
      version: '0.1.0',
      running: [],
      finished: [],
      draining: false,
      logOffsets: true,
    });
    side.welcome({ heartbeatMs: 30 });
    assert.deepEqual((await side.take('heartbeat')).running, []);
    side.send(assign('7', gated('go')));
    await side.take('started');
    assert.deepEqual((await side.take('heartbeat', (h) => h.running.length > 0)).running, ['7']);
    release('go');
    await side.take('finished');
    assert.deepEqual(side.invalid, []);
  });

  it('runs an assigned job: started, logs, finished; forgets it on ack', async () => {
    const a = makeAgent();
    const side = await connected(a);
    side.send(
      assign('42', {
        shell: 'echo "$SPILLWAY_JOB_ID $SPILLWAY_JOB_TYPE $SPILLWAY_ATTEMPT $FROM_BASE $FROM_JOB ${SPILLWAY_AGENT_TOKEN:-none}"; pwd; echo oops >&2; exit 3',
        env: { FROM_JOB: 'job' },
      }, 'b2g', 2),
    );
    const started = await side.take('started');
    assert.deepEqual({ ...started, startedAt: 0 }, { type: 'started', queue: 'b2g', jobId: '42', lockToken: 'lock-42', startedAt: 0 });
    const finished = await side.take('finished');
    assert.equal(finished.result.exitCode, 3);
    assert.equal(finished.lockToken, 'lock-42');
    const finishedAt = side.frames.indexOf(finished);
    const logs = side.of('log');
    assert.ok(logs.every((l) => side.frames.indexOf(l) < finishedAt), 'all output precedes finished');
    const stdout = logs.filter((l) => l.stream === 'stdout').map((l) => l.data).join('');
    assert.equal(stdout, `42 b2g 2 base job none\n${join(dir, 'work', 'b2g-42-2')}\n`);
    assert.equal(logs.filter((l) => l.stream === 'stderr').map((l) => l.data).join(''), 'oops\n');
    assert.equal(a.unacknowledged().length, 1);
    const acked = once(a, 'job-acked');
    side.send({ type: 'ack', queue: 'b2g', jobId: '42' });
    await acked;
    assert.deepEqual(a.unacknowledged(), []);
    await a.stop();
    assert.deepEqual(readdirSync(join(dir, 'work')), [], 'build dirs are removed');
  });

  it('coalesces output into few log frames', async () => {
    const a = makeAgent();
    const side = await connected(a);
    side.send(assign('1', { shell: 'for i in $(seq 1 300); do echo line $i; done' }));
    await side.take('finished');
    const logs = side.of('log');
    assert.ok(logs.length < 20, `${logs.length} log frames`);
    assert.equal(logs.map((l) => l.data).join('').split('\n').length, 301);
  });

  it('after a reconnect reports running and unacknowledged builds, and drops those not reattached', async () => {
    const a = makeAgent();
    const first = await connected(a);
    first.send(assign('done', { shell: 'echo done' }));
    await first.take('finished');
    first.send(assign('kept', gated('kept')));
    first.send(assign('lost', { shell: 'sleep 100' }, 'android'));
    await first.take('started', (s) => s.jobId === 'kept');
    await first.take('started', (s) => s.jobId === 'lost');
    first.ws.close(4408, 'lost');

    const second = await master.connection(1);
    const hello = await second.take('hello');
    assert.deepEqual(hello.finished.map((f) => [f.jobId, f.result.exitCode]), [['done', 0]]);
    assert.deepEqual(hello.running, [
      { queue: 'b2g', jobId: 'kept', lockToken: 'lock-kept' },
      { queue: 'android', jobId: 'lost', lockToken: 'lock-lost' },
    ]);
    const cancelled = once(a, 'job-cancelled');
    second.welcome({ reattached: [{ queue: 'b2g', jobId: 'kept' }], heartbeatMs: 30 });
    assert.equal((await cancelled)[0].jobId, 'lost');
    assert.equal((await handles.get('lost')?.result)?.signal, 'SIGTERM');
    second.send({ type: 'ack', queue: 'b2g', jobId: 'done' });
    release('kept');
    const kept = await second.take('finished');
    assert.equal(kept.jobId, 'kept');
    assert.ok(second.of('log').some((l) => l.jobId === 'kept' && l.data.includes('released')));
    await second.take('heartbeat', (h) => h.running.length === 0);
    assert.deepEqual(second.of('finished').map((f) => f.jobId), ['kept']);
    assert.deepEqual(a.unacknowledged().map((f) => f.jobId), ['kept']);
  });

  it('keeps building while the master is away and delivers result and output on return', async () => {
    const a = makeAgent();
    const first = await connected(a);
    first.send(assign('9', gated('nine')));
    await first.take('log', (l) => l.data.includes('waiting'));
    master.refuseWith = 1001;
    const disconnected = once(a, 'disconnected');
    first.ws.terminate();
    await disconnected;
    const finished = once(a, 'job-finished');
    release('nine');
    await finished;
    master.refuseWith = undefined;

    const side = await master.connection(1);
    const hello = await side.take('hello');
    assert.deepEqual(hello.running, []);
    assert.deepEqual(hello.finished.map((f) => [f.jobId, f.result.exitCode]), [['9', 0]]);
    side.welcome();
    const log = await side.take('log', (l) => l.jobId === '9');
    assert.equal(log.data, 'released\n');
    assert.deepEqual(side.of('finished'), [], 'a result reported in hello is not sent again');
  });

  it('cancels a build on request and never reports it', async () => {
    const a = makeAgent();
    const side = await connected(a, 0, 30);
    side.send(assign('c1', { shell: 'echo go; sleep 100' }));
    await side.take('log', (l) => l.data.includes('go'));
    const cancelled = once(a, 'job-cancelled');
    side.send({ type: 'cancel', queue: 'b2g', jobId: 'c1', reason: 'superseded' });
    assert.equal((await cancelled)[1], 'superseded');
    assert.equal((await handles.get('c1')?.result)?.signal, 'SIGTERM');
    await side.take('heartbeat', (h) => h.running.length === 0);
    assert.deepEqual(side.of('finished'), []);
    assert.deepEqual(a.unacknowledged(), []);
  });

  it('on a cancel with report, kills the build, keeps its executor until its processes are gone, then reports how it ended', async () => {
    const a = makeAgent({}, { executors: 1 });
    const side = await connected(a, 0, 30);
    // It ignores SIGTERM: the executor stays taken through the grace, then SIGKILL ends it.
    side.send(assign('r1', { shell: 'trap "" TERM; echo go; while :; do sleep 0.02; done' }));
    await side.take('log', (l) => l.data.includes('go'));
    side.send({ type: 'cancel', queue: 'b2g', jobId: 'r1', reason: 'cancelled by submit token 3f9a1c2e', report: true });
    await once(a, 'job-cancelled');
    side.send(assign('r2', { shell: 'echo next' }));
    const declined = await side.take('declined');
    assert.deepEqual([declined.jobId, declined.reason], ['r2', 'at capacity (1 executors)'], 'the cancelled build still holds the executor');
    const finished = await side.take('finished');
    assert.deepEqual([finished.jobId, finished.lockToken, finished.result.signal], ['r1', 'lock-r1', 'SIGKILL']);
    side.send({ type: 'ack', queue: 'b2g', jobId: 'r1' });
    side.send(assign('r3', { shell: 'echo next' }));
    assert.equal((await side.take('finished', (f) => f.jobId === 'r3')).result.exitCode, 0, 'the executor is free again');
  });

  it('declines assignments beyond its executors (so the master places them elsewhere) and ignores invalid frames', async () => {
    const a = makeAgent({}, { executors: 1 });
    const side = await connected(a, 0, 30);
    side.send(assign('a', gated('a')));
    side.send(assign('b', { shell: 'echo b' }));
    side.send('{"type":"assign","jobId":1}');
    side.send('not json');
    await side.take('heartbeat', (h) => h.running.length === 1);
    await side.take('heartbeat');
    assert.deepEqual(side.of('started').map((s) => s.jobId), ['a']);
    assert.ok(entries.some((e) => e.event === 'agent.assign-refused' && e.jobId === 'b'));
    assert.deepEqual(side.of('declined'), [{ type: 'declined', queue: 'b2g', jobId: 'b', lockToken: 'lock-b', reason: 'at capacity (1 executors)' }]);
    assert.equal(entries.filter((e) => e.event === 'agent.frame-invalid').length, 2);
    release('a');
    await side.take('finished');
  });

  it('stops retrying when the master says unauthorized', async () => {
    const a = makeAgent();
    master.refuseWith = 4401;
    const fatal = once(a, 'fatal');
    await assert.rejects(a.start(), (err: unknown) => err instanceof AgentRejectedError && err.closeCode === 4401);
    assert.ok((await fatal)[0] instanceof AgentRejectedError);
    assert.ok(entries.some((e) => e.event === 'agent.rejected' && e.code === 4401));
    assert.equal(master.connections.length, 0);
  });

  it('reconnects with backoff after the master goes away', async () => {
    const a = makeAgent();
    const first = await connected(a);
    first.ws.close(1001, 'going away');
    const second = await master.connection(1);
    await second.take('hello');
    assert.ok(entries.some((e) => e.event === 'agent.disconnected' && e.code === 1001));
  });

  it('drops a connection whose welcome never comes and dials again', async () => {
    const a = makeAgent({ welcomeTimeoutMs: 50 });
    void a.start();
    const first = await master.connection(0);
    await first.take('hello');
    await master.connection(1);
    assert.ok(entries.some((e) => e.event === 'agent.master-silent'));
  });

  it('drain: takes no new jobs, waits for the running build and its ack, then closes with 1000', async () => {
    const a = makeAgent();
    const side = await connected(a);
    side.send(assign('d1', gated('d1')));
    await side.take('started');
    let drained = false;
    const draining = a.drain().then(() => (drained = true));
    await side.take('draining');
    side.send(assign('d2', { shell: 'echo no' }));
    assert.equal((await side.take('declined')).reason, 'draining');
    release('d1');
    const finished = await side.take('finished');
    assert.equal(finished.jobId, 'd1');
    assert.equal(drained, false);
    side.send({ type: 'ack', queue: 'b2g', jobId: 'd1' });
    await draining;
    assert.equal((await side.closed).code, 1000);
    assert.deepEqual(side.of('started').map((s) => s.jobId), ['d1']);
  });

  it('a drain frame from the master ends start() normally', async () => {
    const a = makeAgent();
    const side = await connected(a);
    const exited = a.start();
    side.send({ type: 'drain' });
    await exited;
    assert.equal((await side.closed).code, 1000);
  });

  it('on EC2, tells its master about a spot notice read from IMDS, and says hello as draining after a reconnect', async () => {
    const imds = await new FakeImds().start();
    try {
      const a = makeAgent({}, { location: 'cloud', instanceId: 'i-0123456789abcdef0', imdsUrl: imds.url, noticePollSec: 0.02 });
      const first = await connected(a);
      imds.instanceAction = '{"action": "terminate", "time": "2026-03-01T10:02:00Z"}';
      const notice = await first.take('notice');
      assert.deepEqual(notice, { type: 'notice', notice: 'spot-interruption', action: 'terminate', at: Date.parse('2026-03-01T10:02:00Z') });
      first.ws.close(1012, 'master restarting');
      const second = await master.connection(1);
      assert.equal((await second.take('hello')).draining, true);
      second.welcome();
      assert.equal((await second.take('notice')).notice, 'spot-interruption');
    } finally {
      await agent?.stop();
      await imds.stop();
    }
  });

  it('never watches IMDS for a local "cloud" instance (no EC2 instance id)', async () => {
    const imds = await new FakeImds().start();
    try {
      await connected(makeAgent({}, { location: 'cloud', instanceId: 'local-cloud-1', imdsUrl: imds.url, noticePollSec: 0.02 }));
      assert.equal(imds.requests.length, 0);
    } finally {
      await agent?.stop();
      await imds.stop();
    }
  });
});
