import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildRecord } from '../../src/master';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN, type CliProcess } from '../helpers/farm';

describe('cli: spillway run — a cached action end to end', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let agent: CliProcess;
  let work: string;
  beforeEach(async () => {
    work = mkdtempSync(join(tmpdir(), 'spillway-run-'));
    farm = await new TestFarm(farmConfigRaw({ cas: { dir: join(work, 'master-cas'), anonymous: 'read-write' } })).start();
    agent = spawnCli([
      'agent',
      '--master',
      farm.addr.agentUrl,
      '--name',
      'builder',
      '--job-types',
      'b2g',
      '--cas',
      farm.addr.httpUrl,
      '--cache-dir',
      join(work, 'agent-cache'),
    ], { SPILLWAY_AGENT_TOKEN: TOKEN });
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'builder');
  });
  afterEach(async () => {
    agent.child.kill('SIGKILL');
    await farm.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('runs the action on an agent once, then serves the same action from the cache', async () => {
    const src = join(work, 'src');
    mkdirSync(join(src, 'tools'), { recursive: true });
    writeFileSync(join(src, 'hello.txt'), 'hello from the input tree\n');
    writeFileSync(join(src, 'tools', 'shout.sh'), '#!/bin/sh\ntr a-z A-Z < hello.txt > out/HELLO.txt\necho built\n');
    chmodSync(join(src, 'tools', 'shout.sh'), 0o755);
    const args = ['run', '--master', farm.addr.httpUrl, '--type', 'b2g', '--inputs', src, '--output', 'out/HELLO.txt', '--', 'sh', '-c', 'mkdir -p out && ./tools/shout.sh'];

    const first = spawnCli(args);
    assert.equal((await first.exited).code, 0, first.output());
    assert.match(first.output(), /not cached; queued b2g job/);
    assert.match(first.output(), /built/);
    assert.equal(readFileSync(join(src, 'out', 'HELLO.txt'), 'utf8'), 'HELLO FROM THE INPUT TREE\n');

    rmSync(join(src, 'out'), { recursive: true });
    const second = spawnCli(args);
    assert.equal((await second.exited).code, 0, second.output());
    assert.match(second.output(), /served from the action cache: no agent ran it/);
    assert.match(second.output(), /built/);
    assert.ok(existsSync(join(src, 'out', 'HELLO.txt')), second.output());
    assert.equal(readFileSync(join(src, 'out', 'HELLO.txt'), 'utf8'), 'HELLO FROM THE INPUT TREE\n');

    const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds');
    assert.equal(builds.length, 1, 'only the first run reached an agent');
  });

  it('exits with the action\'s exit code and does not cache a failure', async () => {
    const src = join(work, 'src2');
    mkdirSync(src);
    writeFileSync(join(src, 'x'), 'x');
    const args = ['run', '--master', farm.addr.httpUrl, '--type', 'b2g', '--inputs', src, '--', 'sh', '-c', 'echo failing >&2; exit 3'];
    const first = spawnCli(args);
    assert.equal((await first.exited).code, 3, first.output());
    const second = spawnCli(args);
    assert.equal((await second.exited).code, 3, second.output());
    assert.doesNotMatch(second.output(), /served from the action cache/);
  });

  it('fails an action whose output escapes its work dir: non-zero exit, the reason printed and on the job', async () => {
    const src = join(work, 'src3');
    mkdirSync(src);
    writeFileSync(join(src, 'x'), 'x');
    const run = spawnCli(['run', '--master', farm.addr.httpUrl, '--type', 'b2g', '--inputs', src, '--output', 'leak', '--', 'ln', '-s', '/etc/passwd', 'leak']);
    assert.equal((await run.exited).code, 1, run.output());
    assert.match(run.output(), /failed on builder \(on-prem\): output path escapes the work directory: leak \(exit code 1\)/);
    assert.ok(!existsSync(join(src, 'leak')), 'nothing was written back');
    const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds');
    const job = await farm.api<{ state: string; failedReason?: string; exitCode?: number }>(`/api/jobs/${builds[0]!.id}`);
    assert.equal(job.state, 'failed');
    assert.match(job.failedReason ?? '', /escapes the work directory: leak/);
  });
});

describe('agent: an action job whose result is cached runs nothing', function () {
  this.timeout(60_000);
  it('answers from the action cache even when submitted through the API', async () => {
    const work = mkdtempSync(join(tmpdir(), 'spillway-run-'));
    const farm = await new TestFarm(farmConfigRaw({ cas: { dir: join(work, 'cas'), anonymous: 'read-write' } })).start();
    const agent = spawnCli(['agent', '--master', farm.addr.agentUrl, '--name', 'b', '--job-types', 'b2g', '--cas', farm.addr.httpUrl, '--cache-dir', join(work, 'cache')], {
      SPILLWAY_AGENT_TOKEN: TOKEN,
    });
    try {
      await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'b');
      const src = join(work, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'n'), '1');
      const run = spawnCli(['run', '--master', farm.addr.httpUrl, '--type', 'b2g', '--inputs', src, '--', 'sh', '-c', 'echo ran >> /dev/stderr; cat n']);
      assert.equal((await run.exited).code, 0, run.output());
      const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds');
      const job = await farm.api<{ builds: unknown[] }>(`/api/jobs/${builds[0]!.id}`);
      // Submit the very same action again, bypassing the CLI's own cache check.
      const events = await farm.events('b2g');
      const original = (await farm.queue('b2g').getJob(builds[0]!.id))!.data as Record<string, unknown>;
      const id = await farm.submit({ type: 'b2g', ...original });
      await (await farm.queue('b2g').getJob(id))!.waitUntilFinished(events);
      const view = await farm.api<{ state: string; log: string }>(`/api/jobs/${id}`);
      assert.equal(view.state, 'completed');
      assert.match(view.log, /served from the action cache; nothing ran/);
      assert.ok(job.builds.length === 1);
    } finally {
      agent.child.kill('SIGKILL');
      await farm.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
