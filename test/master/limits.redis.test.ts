import assert from 'node:assert/strict';
import type { JobView } from '../../src/master';
import { spawnCli, TestFarm, TOKEN, type CliProcess } from '../helpers/farm';

describe('resource limits: a job that asks for them runs confined on a real agent', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let agent: CliProcess;
  beforeEach(async () => {
    farm = await new TestFarm().start();
    agent = spawnCli(['agent', '--master', farm.addr.agentUrl, '--name', 'confined', '--job-types', 'b2g'], { SPILLWAY_AGENT_TOKEN: TOKEN });
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'confined');
  });
  afterEach(async () => {
    agent.child.kill('SIGKILL');
    await farm.stop();
  });

  it('ends a memory hog as out of memory and says which limits were in force', async function () {
    if (!/executor\.isolation[^\n]*cgroup/.test(agent.output())) {
      // Where the machine offers no cgroups the executor falls back to rlimits: a different
      // (but honest) outcome, covered by the executor's own tests.
      this.skip();
    }
    const events = await farm.events('b2g');
    const id = await farm.submit({
      type: 'b2g',
      argv: [process.execPath, '-e', 'const b = []; for (let i = 0; i < 400; i++) b.push(Buffer.alloc(1 << 20, 1));'],
      resources: { memoryMb: 64, pids: 64 },
    });
    await assert.rejects((await farm.queue('b2g').getJob(id))!.waitUntilFinished(events), /out of memory/);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.builds[0]!.result, 'oom');
    assert.match(view.builds[0]!.reason ?? '', /out of memory/);
    assert.match(view.failedReason ?? '', /memory 64 MiB/);
  });

  it('runs a job without resources below the agent: nice 10, in the low-weight builds group where there is a cpu cgroup', async () => {
    const events = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', shell: 'nice; grep -c "spillway/builds-" /proc/self/cgroup || true' });
    await (await farm.queue('b2g').getJob(id))!.waitUntilFinished(events);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'completed');
    const [nice, inGroup] = (view.log ?? '').trim().split('\n');
    assert.equal(nice, '10');
    const cpuCgroup = /"event":"executor.cpu-ceiling"[^\n]*"group"/.test(agent.output());
    assert.equal(inGroup, cpuCgroup ? '1' : '0');
  });
});
