import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN, type CliProcess } from '../helpers/farm';

/** Spins every core (ten spinners per core) and holds most of its memory limit for ~4 s, printing a tick every 100 ms. */
const HOG = [
  'pids=; for i in $(seq $((10 * $(nproc)))); do sh -c "while :; do :; done" & pids="$pids $!"; done',
  `python3 -c "
import time
hold = bytearray(96 * 1024 * 1024)
for i in range(40):
    print('tick', i, flush=True)
    time.sleep(0.1)
"`,
  'kill $pids',
].join('\n');

describe('a saturated machine: builds spinning on every core for longer than the lost-agent timeout', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let agent: CliProcess | undefined;

  beforeEach(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
  });
  afterEach(async () => {
    agent?.child.kill('SIGKILL');
    await agent?.exited;
    await farm.stop();
  });

  it('never has its agent declared lost, and its logs keep streaming', async () => {
    // A real agent process, so its event loop competes with the builds for the CPU as in production.
    agent = spawnCli(['agent', '--master', farm.addr.agentUrl, '--name', 'busy', '--job-types', 'b2g', '--executors', '2', '--build-cpu-max', '95%', '--log-format', 'json'], {
      SPILLWAY_AGENT_TOKEN: TOKEN,
    });
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'busy');
    const ids = [
      await farm.submit({ type: 'b2g', shell: HOG, resources: { memoryMb: 160, pids: 100 } }),
      await farm.submit({ type: 'b2g', shell: HOG, resources: { memoryMb: 160, pids: 100 } }),
    ];
    const gaps = await Promise.all(ids.map((id) => logGaps(farm, id)));
    for (const id of ids) {
      const r = await farm.finished(id);
      assert.equal(r.result, 'success', `${id}: ${r.reason}`);
      assert.ok(r.durationMs! > farm.config.agents.lostAfterSec * 1000, 'the builds ran longer than the lost-agent timeout');
    }
    assert.equal(farm.logs.entries.filter((e) => e.event === 'agent.lost').length, 0, 'the agent was never declared lost');
    const worst = Math.max(...gaps.flat());
    console.log(`      (${availableParallelism()} cores, 2 builds x ${10 * availableParallelism()} spinners: longest pause between log chunks at the master ${worst} ms)`);
    assert.ok(worst < farm.config.agents.lostAfterSec * 1000, `logs paused ${worst} ms`);
    assert.match(agent.output(), /"event":"executor.cpu-ceiling"/);
  });
});

/** Follows a build's log at the master (long-polling) and returns the pauses between chunks that had data. */
async function logGaps(farm: TestFarm, id: string): Promise<number[]> {
  const gaps: number[] = [];
  let offset = 0;
  let last: number | undefined;
  let text = '';
  for (;;) {
    const chunk = await farm.master.jobs.logChunk(id, undefined, 1, offset, 5_000);
    if (chunk.data) {
      const now = Date.now();
      if (last !== undefined && text.includes('tick 0')) gaps.push(now - last);
      last = now;
      text += chunk.data;
    }
    offset = chunk.nextOffset;
    if (chunk.done) break;
  }
  assert.match(text, /tick 39/);
  return gaps;
}
