import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectDiskLimits, type DiskLimits } from '../../src/executor';
import { createLogger } from '../../src/lib';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN } from '../helpers/farm';

/** Writes 1 MiB at a time until the disk says no (loop) or the agent kills it (watch). */
const FILL = 'i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero >>big || exit 3; i=$((i+1)); sleep 0.02; done; echo wrote-64-MiB';

const quiet = createLogger({ level: 'error', silent: true });

function mountsBelow(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(`${dir}/`));
}

for (const mode of ['loop', 'watch'] as const) {
  describe(`disk limits (${mode}): a build writing past its limit`, function () {
    this.timeout(60_000);
    let farm: TestFarm;
    let workDir: string;
    let disk: DiskLimits;

    before(async function () {
      const probeDir = mkdtempSync(join(tmpdir(), 'spillway-disk-probe-'));
      disk = await detectDiskLimits({ workDir: probeDir, mode: mode === 'watch' ? 'watch' : 'auto', pollMs: 50, log: quiet });
      // Loop images need root and loop devices; the watcher works anywhere.
      rmSync(probeDir, { recursive: true, force: true });
      if (disk.mode !== mode) {
        console.log(`      (skipped: loop-mounted images do not work on this machine; the watch suite covers the limit)`);
        this.skip();
      }
    });
    beforeEach(async () => {
      farm = await new TestFarm(farmConfigRaw({ jobTypes: { b2g: { attempts: 1, diskMb: 8 }, linux64: { attempts: 1 } } })).start();
      workDir = mkdtempSync(join(tmpdir(), 'spillway-disk-work-'));
    });
    afterEach(async () => {
      await farm.stop();
      rmSync(workDir, { recursive: true, force: true });
    });

    async function expectDiskFailure(id: string, limitMb: number) {
      const record = await farm.finished(id);
      assert.equal(record.result, 'disk');
      assert.equal(record.reason, `disk limit ${limitMb} MiB exceeded`);
    }

    it('ends with "disk limit N MiB exceeded", leaves no dir or mount behind, and the agent takes the next build', async () => {
      const agent = await farm.agent({ name: 'filler', workDir, deps: { disk } });
      const cleaned = new Promise((r) => agent.once('job-cleaned', r));
      const id = await farm.submit({ type: 'linux64', shell: FILL, resources: { diskMb: 6 } });
      await expectDiskFailure(id, 6);
      await cleaned;
      assert.deepEqual(readdirSync(workDir).filter((n) => n !== '.spillway-agent'), []);
      assert.deepEqual(mountsBelow(workDir), []);
      const next = await farm.submit({ type: 'linux64', shell: 'echo fine' });
      assert.equal((await farm.finished(next)).result, 'success');
    });

    it("applies the job type's diskMb when the job names none", async () => {
      await farm.agent({ name: 'filler', workDir, deps: { disk } });
      const id = await farm.submit({ type: 'b2g', shell: FILL });
      await expectDiskFailure(id, 8);
    });

    it("applies the agent's --build-disk-mb when neither the job nor its type names one", async () => {
      await farm.agent({ name: 'filler', workDir, buildDiskMb: 5, deps: { disk } });
      const id = await farm.submit({ type: 'linux64', shell: FILL });
      await expectDiskFailure(id, 5);
    });

    // Only images outlive their agent (the watcher leaves nothing the ordinary sweep misses).
    if (mode === 'loop') it('removes the dirs and images a crashed agent left behind when it starts again', async () => {
      const args = (name: string) => ['agent', '--master', farm.addr.agentUrl, '--name', name, '--job-types', 'linux64', '--work-dir', workDir, '--build-disk-mb', '8', '--log-format', 'json'];
      const first = spawnCli(args('crashy'), { SPILLWAY_AGENT_TOKEN: TOKEN });
      await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'crashy');
      const id = await farm.submit({ type: 'linux64', attempts: 1, shell: 'echo pid=$$; head -c 1048576 /dev/zero >left-behind; exec sleep 300' });
      let log = '';
      while (!/pid=(\d+)/.test(log)) log += (await farm.master.jobs.logChunk(id, undefined, 1, log.length, 5_000)).data;
      first.child.kill('SIGKILL');
      await first.exited;
      // The build outlived its agent; end it so only its dir and mounted image remain.
      process.kill(Number(/pid=(\d+)/.exec(log)![1]), 'SIGKILL');
      assert.equal(mountsBelow(workDir).length, 1, 'the image is still mounted');
      const second = spawnCli(args('crashy-2'), { SPILLWAY_AGENT_TOKEN: TOKEN });
      try {
        await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'crashy-2');
        assert.deepEqual(readdirSync(workDir), ['.spillway-agent']);
        assert.deepEqual(mountsBelow(workDir), []);
        assert.match(second.output(), /"event":"agent.workdir-swept".*"unmounted":1/);
        assert.match(second.output(), /"event":"executor.disk-limit".*"mode":"loop"/);
      } finally {
        second.child.kill('SIGKILL');
        await second.exited;
      }
    });

    it('lets a build within its limit succeed', async () => {
      await farm.agent({ name: 'filler', workDir, deps: { disk } });
      const id = await farm.submit({ type: 'linux64', shell: 'head -c 2097152 /dev/zero >f && echo ok', resources: { diskMb: 8 } });
      assert.equal((await farm.finished(id)).result, 'success');
    });
  });
}

