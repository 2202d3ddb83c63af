import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { farmConfigRaw, spawnCli, writeConfigFile, type CliProcess } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';

const FRAME_DATA = 'x'.repeat(64 * 1024);
const FLOOD_FRAMES = 1600; // 100 MiB of log output
const FRAMES_PER_CONNECTION = 4;

function rssMib(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return kb / 1024;
}

/**
 * An agent that floods frames while the master cannot process them (Redis stops taking
 * writes, as when it is slow or failing over): without the listener's ingest budget the
 * master reads them all and holds every one of them, waiting for Redis.
 */
describe('faults: an agent flooding frames (real master process, real sockets)', function () {
  this.timeout(120_000);
  const procs: CliProcess[] = [];
  const agents: RawAgent[] = [];
  let admin: Redis | undefined;
  afterEach(async () => {
    await admin?.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    admin?.disconnect();
    for (const a of agents.splice(0)) a.ws.terminate();
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });

  it('cannot grow the master without bound, and other agents are still served', async () => {
    const raw = farmConfigRaw({ log: { level: 'debug', format: 'json' } });
    // A test process busy sending the flood may leave its agents' heartbeats late: the lost
    // timeout and the build lock get their defaults' order of magnitude, not the farm's 1.5 s.
    Object.assign(raw.agents as object, { lostAfterSec: 10, ingest: { framesPerConnection: FRAMES_PER_CONNECTION, maxMb: 64 } });
    raw.builds = { lockMs: 30_000 };
    raw.jobTypes = { b2g: { attempts: 1 }, flood: { attempts: 1 } };
    const master = spawnCli(['master', '--config', writeConfigFile(raw)]);
    procs.push(master);
    const agentUrl = /agents connect to (ws:\/\/\S+)/.exec(await master.waitForOutput(/agents connect to ws:\/\/\S+/))![1]!;
    const httpUrl = /HTTP API (http:\/\/\S+),/.exec(master.output())![1]!;
    const submit = async (type: string) => {
      const res = await fetch(`${httpUrl}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type, argv: ['true'] }) });
      assert.equal(res.status, 201, await res.clone().text());
      return ((await res.json()) as { id: string }).id;
    };

    const flooder = await RawAgent.connect(agentUrl, { name: 'flooder', jobTypes: ['flood'] });
    const good = await RawAgent.connect(agentUrl, { name: 'good', jobTypes: ['b2g'] });
    agents.push(flooder, good);
    const beat = setInterval(() => good.send({ type: 'heartbeat', running: [] }), 200);
    const floodBeat = setInterval(() => flooder.send({ type: 'heartbeat', running: [] }), 200);
    try {
      const floodJob = await submit('flood');
      const assign = await flooder.next('assign');
      assert.equal(assign.jobId, floodJob);
      const held = { queue: 'flood', jobId: floodJob, lockToken: assign.lockToken };
      flooder.send({ type: 'started', ...held, startedAt: Date.now() });
      // Its ack means the build's record is stored: from here every log frame is accepted.
      flooder.send({ type: 'log', queue: 'flood', jobId: floodJob, stream: 'stdout', data: 'first\n', offset: 0 });
      await flooder.next('log-ack');

      admin = new Redis((raw.redis as { url: string }).url);
      await admin.call('CLIENT', 'PAUSE', '60000', 'WRITE');
      const before = rssMib(master.child.pid!);
      for (let i = 0; i < FLOOD_FRAMES; i++) flooder.send({ type: 'log', queue: 'flood', jobId: floodJob, stream: 'stdout', data: FRAME_DATA });
      await master.waitForOutput(/"event":"agent\.reads-paused"[^\n]*"agent":"flooder"|"agent":"flooder"[^\n]*"event":"agent\.reads-paused"/);
      const pausedAt = rssMib(master.child.pid!);
      const sentMib = (FLOOD_FRAMES * FRAME_DATA.length) / 1024 / 1024;
      assert.ok(
        pausedAt - before < 32,
        `the master's RSS grew ${(pausedAt - before).toFixed(1)} MiB (${before.toFixed(1)} -> ${pausedAt.toFixed(1)}) while the flooder had ${sentMib} MiB on its way`,
      );
      assert.ok(flooder.ws.bufferedAmount > 32 * 1024 * 1024, `most of the flood waits on the flooder's side (${flooder.ws.bufferedAmount} B buffered)`);

      // Redis takes writes again: the flood is worked off at the master's pace, and the other
      // agent's build goes through meanwhile.
      await admin.call('CLIENT', 'UNPAUSE');
      const goodJob = await submit('b2g');
      const goodAssign = await good.next('assign');
      assert.equal(goodAssign.jobId, goodJob);
      good.send({ type: 'started', queue: 'b2g', jobId: goodJob, lockToken: goodAssign.lockToken, startedAt: Date.now() });
      good.send({ type: 'finished', queue: 'b2g', jobId: goodJob, lockToken: goodAssign.lockToken, result: { exitCode: 0, signal: null, timedOut: false, startedAt: 1, finishedAt: 2 } });
      await good.next('ack');
      const view = (await (await fetch(`${httpUrl}/api/jobs/${goodJob}`)).json()) as { state: string };
      assert.equal(view.state, 'completed');
      assert.equal(flooder.ws.readyState, flooder.ws.OPEN, 'the flooder is throttled, not dropped');
      assert.doesNotMatch(master.output(), /"event":"agent\.lost"/, 'a connection the master stopped reading is not lost for its silence');
    } finally {
      clearInterval(beat);
      clearInterval(floodBeat);
    }
  });
});
