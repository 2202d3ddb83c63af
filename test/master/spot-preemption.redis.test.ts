import assert from 'node:assert/strict';
import type { JobView } from '../../src/master';
import { FakeImds } from '../slave-agent/fake-imds';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN, type CliProcess } from '../helpers/farm';

const SPOT_ID = 'i-0123456789abcdef0';
/** Runs long as its first attempt (the preempted one), quickly after. */
const LONG_FIRST = 'if [ "$SPILLWAY_ATTEMPT" = 1 ]; then sleep 30; fi; echo ran as attempt $SPILLWAY_ATTEMPT';

function interruptionIn(ms: number): string {
  return JSON.stringify({ action: 'terminate', time: new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, 'Z') });
}

describe('spot notices end to end: a real master, agents on a "cloud" instance watching a fake IMDSv2', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let imds: FakeImds;
  const procs: CliProcess[] = [];

  beforeEach(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
    imds = await new FakeImds().start(SPOT_ID);
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
    await farm.stop();
    await imds.stop();
  });

  const spotAgent = () => farm.agent({ name: 'spot', location: 'cloud', instanceId: SPOT_ID, imdsUrl: imds.url, noticePollSec: 0.05 });
  const view = (id: string) => farm.api<JobView>(`/api/jobs/${id}`);

  it('a notice stops new dispatch to the agent at once; its running build finishes within the window', async () => {
    await spotAgent();
    const events = await farm.events('b2g');
    const running = await farm.submit({ type: 'b2g', shell: 'sleep 1; echo finished in the window' });
    await farm.logs.waitFor((e) => e.event === 'job.started' && e.jobId === running);

    imds.instanceAction = interruptionIn(120_000);
    const notice = await farm.logs.waitFor((e) => e.event === 'agent.notice' && e.agent === 'spot');
    assert.deepEqual([notice.notice, notice.source, notice.action, notice.instanceId], ['spot-interruption', 'imds', 'terminate', SPOT_ID]);
    const { agents } = await farm.api<{ agents: Array<{ name: string; draining: boolean }> }>('/api/agents');
    assert.equal(agents.find((a) => a.name === 'spot')?.draining, true);

    const later = await farm.submit({ type: 'b2g', argv: ['echo', 'not on the spot agent'] });
    await (await farm.queue('b2g').getJob(running))!.waitUntilFinished(events);
    const first = await view(running);
    assert.deepEqual([first.state, first.agent], ['completed', 'spot']);
    assert.match(first.log ?? '', /finished in the window/);
    assert.equal((await view(later)).state, 'waiting', 'nothing may go to a draining spot agent');

    await farm.agent({ name: 'onprem-1' });
    await (await farm.queue('b2g').getJob(later))!.waitUntilFinished(events);
    assert.equal((await view(later)).agent, 'onprem-1');
    assert.ok(!farm.logs.entries.some((e) => e.event === 'job.dispatched' && e.agent === 'spot' && e.jobId === later));
  });

  it('the agent killed after the notice: its build is requeued as preempted, runs elsewhere once, no attempt used', async () => {
    const spot = spawnCli(
      ['agent', '--master', farm.addr.agentUrl, '--name', 'spot', '--job-types', 'b2g,linux64', '--location', 'cloud'].concat(
        ['--instance-id', SPOT_ID, '--imds-url', imds.url, '--notice-poll-sec', '0.05', '--log-format', 'json'],
      ),
      { SPILLWAY_AGENT_TOKEN: TOKEN },
    );
    procs.push(spot);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'spot');
    const events = await farm.events('b2g');
    // One attempt only: had the preemption used it up, the job would fail.
    const id = await farm.submit({ type: 'b2g', shell: LONG_FIRST, attempts: 1 });
    await farm.logs.waitFor((e) => e.event === 'job.started' && e.jobId === id && e.agent === 'spot');

    imds.instanceAction = interruptionIn(120_000);
    await farm.logs.waitFor((e) => e.event === 'agent.notice' && e.agent === 'spot');
    await farm.agent({ name: 'survivor' });
    spot.child.kill('SIGKILL');

    const preempted = await farm.logs.waitFor((e) => e.event === 'job.preempted' && e.jobId === id);
    assert.match(String(preempted.reason), /^preempted: spot-interruption notice, then its agent was lost/);
    await (await farm.queue('b2g').getJob(id))!.waitUntilFinished(events);

    const v = await view(id);
    assert.deepEqual([v.state, v.agent, v.attempts, v.attemptsMade], ['completed', 'survivor', 1, 1]);
    assert.match(v.log ?? '', /ran as attempt 2/);
    assert.deepEqual(
      v.builds.map((b) => [b.attempt, b.agent, b.location, b.instanceId, b.result]),
      [
        [1, 'spot', 'cloud', SPOT_ID, 'preempted'],
        [2, 'survivor', 'onprem', null, 'success'],
      ],
    );
    assert.equal(farm.logs.entries.filter((e) => e.event === 'job.finished' && e.jobId === id).length, 1, 'completed exactly once');
    assert.equal(farm.logs.entries.filter((e) => e.event === 'job.started' && e.jobId === id).length, 2);
    assert.ok(!farm.logs.entries.some((e) => (e.event === 'job.retried' || e.event === 'job.failed') && e.jobId === id));
  });

  it('a requeue asked for twice (agent lost and EC2 state change) happens once', async () => {
    await spotAgent();
    const events = await farm.events('linux64');
    const id = await farm.submit({ type: 'linux64', shell: LONG_FIRST, attempts: 1 });
    await farm.logs.waitFor((e) => e.event === 'job.started' && e.jobId === id);
    imds.instanceAction = interruptionIn(120_000);
    await farm.logs.waitFor((e) => e.event === 'agent.notice' && e.agent === 'spot');

    // The state-change notification delivered twice, concurrently, as SQS may.
    const reason = 'preempted: spot-interruption notice, then EC2 reported terminated';
    await Promise.all([farm.master.dispatcher.preemptInstance(SPOT_ID, reason), farm.master.dispatcher.preemptInstance(SPOT_ID, reason)]);
    await farm.agent({ name: 'survivor' });
    await (await farm.queue('linux64').getJob(id))!.waitUntilFinished(events);

    assert.equal(farm.logs.entries.filter((e) => e.event === 'job.preempted' && e.jobId === id).length, 1);
    const v = await view(id);
    assert.deepEqual([v.state, v.attemptsMade], ['completed', 1]);
    assert.deepEqual(
      v.builds.map((b) => [b.attempt, b.agent, b.result]),
      [
        [1, 'spot', 'preempted'],
        [2, 'survivor', 'success'],
      ],
    );
  });
});
