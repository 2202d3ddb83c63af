import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { freePort } from '../../src/lib';
import type { BuildRecord } from '../../src/master';
import { farmConfigRaw, spawnCli, TOKEN, writeConfigFile, type CliProcess } from '../helpers/farm';

describe('faults: the master SIGKILLed while builds run and jobs wait', function () {
  this.timeout(90_000);
  const procs: CliProcess[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });

  it('loses no job and completes none twice after a restart', async () => {
    const httpPort = await freePort();
    const agentPort = await freePort();
    const raw = farmConfigRaw({ log: { level: 'info', format: 'json' } });
    Object.assign(raw.http as object, { port: httpPort });
    Object.assign(raw.agents as object, { port: agentPort, lostAfterSec: 10 });
    // Long enough that agents reconnecting with backoff find their locks still held (reattach,
    // not rerun); builds a master dies holding for longer are rerun, never completed twice.
    Object.assign(raw.builds as object, { lockMs: 10_000 });
    const file = writeConfigFile(raw);
    const redis = raw.redis as { url: string; queuePrefix: string };
    const connection = { url: redis.url };
    const queue = new Queue('b2g', { connection, prefix: redis.queuePrefix });
    // From the start of the stream: a job finishing before the reader connects is still counted.
    const events = new QueueEvents('b2g', { connection, prefix: redis.queuePrefix, lastEventId: '0-0' });
    await events.waitUntilReady();
    const runs = join(mkdtempSync(join(tmpdir(), 'spillway-runs-')), 'runs.txt');
    // Agents started as root run builds as nobody: the builds append to this file.
    chmodSync(dirname(runs), 0o777);

    const master = (): CliProcess => {
      const p = spawnCli(['master', '--config', file]);
      procs.push(p);
      return p;
    };
    const first = master();
    await first.waitForOutput(/HTTP API/);
    for (const name of ['a1', 'a2']) {
      const a = spawnCli(['agent', '--master', `ws://127.0.0.1:${agentPort}`, '--name', name, '--job-types', 'b2g', '--executors', '2'], {
        SPILLWAY_AGENT_TOKEN: TOKEN,
      });
      procs.push(a);
      await a.waitForOutput(/agent\.welcomed/);
    }

    const completions = new Map<string, number>();
    const failures: string[] = [];
    events.on('completed', ({ jobId }) => completions.set(jobId, (completions.get(jobId) ?? 0) + 1));
    events.on('failed', ({ jobId, failedReason }) => failures.push(`${jobId}: ${failedReason}`));

    const N = 16;
    const jobs = await queue.addBulk(
      Array.from({ length: N }, (_, i) => ({
        name: 'build',
        data: { shell: `sleep 0.${4 + (i % 4)}; echo "$SPILLWAY_JOB_ID" >> ${runs}` },
        opts: { attempts: 3 },
      })),
    );
    const ids = jobs.map((j) => j.id!);

    // Kill the master while some builds have finished, some run and the rest still wait.
    await new Promise<void>((resolve) => events.on('completed', () => completions.size >= 3 && resolve()));
    first.child.kill('SIGKILL');
    await first.exited;

    const second = master();
    await second.waitForOutput(/HTTP API/);
    await new Promise<void>((resolve) => {
      const check = () => completions.size + failures.length >= N && resolve();
      events.on('completed', check);
      events.on('failed', check);
      check();
    });

    assert.deepEqual(failures, []);
    for (const id of ids) {
      assert.equal(await queue.getJobState(id), 'completed', `job ${id}`);
      assert.equal(completions.get(id), 1, `job ${id} completed ${completions.get(id)} times`);
    }
    // Builds running at the crash were reattached, not run again.
    const ran = readFileSync(runs, 'utf8').trim().split('\n');
    assert.equal(ran.length, N, `runs: ${ran.join(',')}`);
    assert.deepEqual(new Set(ran), new Set(ids));

    const res = await fetch(`http://127.0.0.1:${httpPort}/api/builds?limit=100`);
    const { builds } = (await res.json()) as { builds: BuildRecord[] };
    const successes = builds.filter((b) => b.result === 'success');
    assert.equal(successes.length, N, builds.map((b) => `${b.id}#${b.attempt}:${b.agent}:${b.result ?? b.state}`).sort().join(' '));
    await events.close();
    await queue.close();
  });
});
