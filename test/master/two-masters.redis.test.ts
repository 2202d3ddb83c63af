import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { parseAgentOptions } from '../../src/config';
import { freePort } from '../../src/lib';
import type { BuildRecord } from '../../src/master';
import { Agent } from '../../src/slave-agent';
import { captureLogs, farmConfigRaw, spawnCli, TOKEN, writeConfigFile, type CliProcess } from '../helpers/farm';

const N = 40;

describe('faults: two masters on one farm', function () {
  this.timeout(60_000);
  const procs: CliProcess[] = [];
  const agents: Agent[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    await Promise.allSettled(agents.splice(0).map((a) => a.stop()));
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
    await Promise.allSettled(closers.splice(0).map((c) => c()));
  });

  it('hand out every job exactly once between them: none lost, none run or completed twice', async () => {
    const raw = farmConfigRaw({ log: { level: 'info', format: 'json' } });
    const redis = raw.redis as { url: string; queuePrefix: string };
    // Same Redis and prefixes, their own listeners.
    const masters = await Promise.all(
      ['m1', 'm2'].map(async (name) => {
        const [httpPort, agentPort] = [await freePort(), await freePort()];
        const file = writeConfigFile({ ...raw, http: { ...(raw.http as object), port: httpPort }, agents: { ...(raw.agents as object), port: agentPort } });
        const proc = spawnCli(['master', '--config', file]);
        procs.push(proc);
        return { name, proc, http: `http://127.0.0.1:${httpPort}`, ws: `ws://127.0.0.1:${agentPort}` };
      }),
    );
    await Promise.all(masters.map((m) => m.proc.waitForOutput(/HTTP API/)));

    const logs = captureLogs();
    for (const m of masters) {
      for (const i of [1, 2]) {
        const agent = new Agent({
          options: parseAgentOptions({ master: m.ws, token: TOKEN, name: `${m.name}-agent${i}`, jobTypes: ['b2g'], executors: 2 }),
          log: logs.log.child({ agent: `${m.name}-agent${i}` }),
          backoff: { baseMs: 50, maxMs: 500 },
        });
        const welcomed = new Promise((r) => agent.once('welcomed', r));
        void agent.start().catch(() => undefined);
        agents.push(agent);
        await welcomed;
      }
    }

    const connection = { url: redis.url };
    const queue = new Queue('b2g', { connection, prefix: redis.queuePrefix });
    // From the stream's start: a job settled before the first read of '$' would be missed.
    const events = new QueueEvents('b2g', { connection, prefix: redis.queuePrefix, lastEventId: '0-0' });
    closers.push(() => queue.close(), () => events.close());
    await events.waitUntilReady();
    const completions = new Map<string, number>();
    const failures: string[] = [];
    const settled = new Promise<void>((resolve) => {
      const check = () => [...completions.values()].reduce((a, b) => a + b, 0) + failures.length >= N && resolve();
      events.on('completed', ({ jobId }) => (completions.set(jobId, (completions.get(jobId) ?? 0) + 1), check()));
      events.on('failed', ({ jobId, failedReason }) => (failures.push(`${jobId}: ${failedReason}`), check()));
    });

    const runs = join(mkdtempSync(join(tmpdir(), 'spillway-runs-')), 'runs.txt');
    const jobs = await queue.addBulk(
      Array.from({ length: N }, (_, i) => ({
        name: 'build',
        data: { shell: `sleep 0.0${i % 5}; echo "$SPILLWAY_JOB_ID" >> ${runs}` },
        opts: { attempts: 3 },
      })),
    );
    const ids = jobs.map((j) => j.id!);
    const deadline = AbortSignal.timeout(30_000);
    await Promise.race([
      settled,
      new Promise((_, reject) =>
        deadline.addEventListener('abort', () => {
          const open = ids.filter((id) => !completions.has(id) && !failures.some((f) => f.startsWith(`${id}:`)));
          reject(new Error(`not settled after 30 s: ${open.join(', ')}; completed twice: ${ids.filter((id) => (completions.get(id) ?? 0) > 1).join(', ')}`));
        }),
      ),
    ]);

    assert.deepEqual(failures, []);
    for (const id of ids) assert.equal(completions.get(id), 1, `job ${id} completed ${completions.get(id) ?? 0} times`);
    const ran = readFileSync(runs, 'utf8').trim().split('\n');
    assert.equal(ran.length, N, `builds run: ${ran.length}`);
    assert.deepEqual(new Set(ran), new Set(ids));

    // One build record per job, attempt 1, and both masters really dispatched.
    const res = await fetch(`${masters[0]!.http}/api/builds?limit=100`);
    const { builds } = (await res.json()) as { builds: BuildRecord[] };
    assert.deepEqual(builds.map((b) => `${b.id}#${b.attempt}:${b.result}`).sort(), ids.map((id) => `${id}#1:success`).sort());
    const byMaster = (name: string) => builds.filter((b) => b.agent.startsWith(`${name}-`)).length;
    assert.ok(byMaster('m1') > 0 && byMaster('m2') > 0, `builds per master: m1 ${byMaster('m1')}, m2 ${byMaster('m2')}`);

    for (const m of masters) {
      assert.equal(m.proc.child.exitCode, null, `${m.name} still running`);
      assert.doesNotMatch(m.proc.output(), /"level":"error"/, `${m.name} logged an error`);
    }
  });
});
