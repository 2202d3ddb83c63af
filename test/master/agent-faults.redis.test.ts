import assert from 'node:assert/strict';
import type { BuildRecord, JobView } from '../../src/master';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN, type CliProcess } from '../helpers/farm';

/** A real `spillway agent` process, so it can be SIGKILLed or SIGSTOPped like a real machine. */
function cliAgent(farm: TestFarm, name: string): CliProcess {
  return spawnCli(['agent', '--master', farm.addr.agentUrl, '--name', name, '--job-types', 'b2g,linux64', '--log-format', 'json'], {
    SPILLWAY_AGENT_TOKEN: TOKEN,
  });
}

describe('faults: agents that vanish mid-build', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  const procs: CliProcess[] = [];

  beforeEach(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGCONT');
      p.child.kill('SIGKILL');
    }
    await farm.stop();
  });

  async function startedOn(agentName: string) {
    return farm.logs.waitFor((e) => e.event === 'job.started' && e.agent === agentName);
  }

  it('retries the build of a SIGKILLed agent on another agent', async () => {
    const victim = cliAgent(farm, 'victim');
    procs.push(victim);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'victim');
    const events = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', shell: 'sleep 30' });
    await startedOn('victim');
    await farm.agent({ name: 'survivor' });
    victim.child.kill('SIGKILL');
    // The retry runs `sleep 30` again; let the survivor finish it quickly by replacing nothing:
    // the job is the same, so wait for the second attempt to start and check where.
    const second = await farm.logs.waitFor((e) => e.event === 'job.started' && e.jobId === id && e.attempt === 2);
    assert.equal(second.agent, 'survivor');
    const retried = farm.logs.entries.find((e) => e.event === 'job.retried' && e.jobId === id);
    assert.equal(retried?.reason, 'agent lost');
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.builds[0]!.result, 'lost');
    assert.equal(view.builds[0]!.agent, 'victim');
    assert.equal(view.builds[1]!.agent, 'survivor');
    assert.equal(view.state, 'active');
    void events;
  });

  it('fails the job with reason "agent lost" once its attempts are used up', async () => {
    const victim = cliAgent(farm, 'victim');
    procs.push(victim);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'victim');
    const events = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', shell: 'sleep 30', attempts: 1 });
    const job = (await farm.queue('b2g').getJob(id))!;
    await startedOn('victim');
    victim.child.kill('SIGKILL');
    await assert.rejects(job.waitUntilFinished(events), /agent lost/);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'failed');
    assert.equal(view.failedReason, 'agent lost');
    assert.equal(view.exitCode, 1);
  });

  it('declares an agent whose heartbeats stop lost, and retries its build elsewhere', async () => {
    const frozen = cliAgent(farm, 'frozen');
    procs.push(frozen);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'frozen');
    const events = await farm.events('linux64');
    const id = await farm.submit({ type: 'linux64', shell: 'if [ "$SPILLWAY_ATTEMPT" = 1 ]; then sleep 30; fi; echo attempt $SPILLWAY_ATTEMPT' });
    const job = (await farm.queue('linux64').getJob(id))!;
    await startedOn('frozen');
    await farm.agent({ name: 'healthy' });
    frozen.child.kill('SIGSTOP');
    const lost = await farm.logs.waitFor((e) => e.event === 'agent.lost' && e.agent === 'frozen');
    assert.ok(Number(lost.silentMs) > 1500);
    await job.waitUntilFinished(events);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'completed');
    assert.equal(view.agent, 'healthy');
    assert.match(view.log ?? '', /attempt 2/);
    const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds');
    assert.deepEqual(
      builds.filter((b) => b.id === id).map((b) => [b.agent, b.result]),
      [
        ['healthy', 'success'],
        ['frozen', 'lost'],
      ],
    );
  });

  it('an agent sent SIGTERM drains: finishes its build, takes nothing new, exits 0', async () => {
    const leaving = cliAgent(farm, 'leaving');
    procs.push(leaving);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'leaving');
    const events = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', shell: 'sleep 1; echo finished-ok' });
    const job = (await farm.queue('b2g').getJob(id))!;
    await startedOn('leaving');
    leaving.child.kill('SIGTERM');
    await farm.logs.waitFor((e) => e.event === 'agent.draining' && e.agent === 'leaving');
    const later = await farm.submit({ type: 'b2g', argv: ['true'] });
    await job.waitUntilFinished(events);
    assert.equal((await leaving.exited).code, 0, leaving.output());
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'completed');
    assert.match(view.log ?? '', /finished-ok/);
    assert.equal((await farm.api<JobView>(`/api/jobs/${later}`)).state, 'waiting');
  });
});
