import assert from 'node:assert/strict';
import type { Job } from 'bullmq';
import type { QueueView } from '../../src/http';
import type { BuildRecord, JobView } from '../../src/master';
import { TestFarm } from '../helpers/farm';

describe('dispatch: queue -> agent -> result (real redis, real websockets)', function () {
  let farm: TestFarm;

  beforeEach(async () => {
    farm = await new TestFarm().start();
  });
  afterEach(async () => {
    await farm.stop();
  });

  it('runs a submitted build on an agent and records where it ran, its log and exit code', async () => {
    await farm.agent({ name: 'onprem-a', executors: 2 });
    const done = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', shell: 'echo hello from $SPILLWAY_JOB_TYPE; echo oops >&2; exit 0' });
    await farm.queue('b2g').getJob(id).then((j) => j!.waitUntilFinished(done));
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'completed');
    assert.equal(view.exitCode, 0);
    assert.equal(view.agent, 'onprem-a');
    assert.equal(view.location, 'onprem');
    assert.match(view.log ?? '', /hello from b2g/);
    assert.match(view.log ?? '', /oops/);
    const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds');
    assert.equal(builds[0]!.id, id);
    assert.equal(builds[0]!.result, 'success');
    assert.equal(typeof builds[0]!.waitMs, 'number');
    assert.equal(typeof builds[0]!.durationMs, 'number');
  });

  it('records a failing build with its exit code and does not retry it', async () => {
    await farm.agent({ name: 'onprem-a' });
    const events = await farm.events('linux64');
    const id = await farm.submit({ type: 'linux64', argv: ['sh', '-c', 'exit 7'] });
    const job = (await farm.queue('linux64').getJob(id)) as Job;
    await assert.rejects(job.waitUntilFinished(events), /exited 7/);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'failed');
    assert.equal(view.exitCode, 7);
    assert.equal(view.builds.length, 1);
  });

  it('prefers an idle on-prem executor over an idle cloud one', async () => {
    await farm.agent({ name: 'cloud-1', location: 'cloud' });
    await farm.agent({ name: 'onprem-1', location: 'onprem' });
    const events = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', argv: ['true'] });
    await (await farm.queue('b2g').getJob(id))!.waitUntilFinished(events);
    assert.equal((await farm.api<JobView>(`/api/jobs/${id}`)).agent, 'onprem-1');
  });

  it('sends a job only to an agent that serves its type and meets its requirements', async () => {
    await farm.agent({ name: 'plain', jobTypes: ['b2g', 'linux64'], executors: 4 });
    await farm.agent({ name: 'gpu', jobTypes: ['b2g'], labels: ['gpu'] });
    const events = await farm.events('b2g');
    const ids = await Promise.all([1, 2, 3].map(() => farm.submit({ type: 'b2g', argv: ['true'], requirements: { labels: ['gpu'] } })));
    for (const id of ids) await (await farm.queue('b2g').getJob(id))!.waitUntilFinished(events);
    for (const id of ids) assert.equal((await farm.api<JobView>(`/api/jobs/${id}`)).agent, 'gpu');
  });

  it('never runs a job on two agents at once: every job runs exactly once across agents', async () => {
    await farm.agent({ name: 'a', executors: 3 });
    await farm.agent({ name: 'b', executors: 3 });
    const events = await farm.events('linux64');
    const q = farm.queue('linux64');
    const ids = await Promise.all(Array.from({ length: 30 }, () => farm.submit({ type: 'linux64', argv: ['true'] })));
    for (const id of ids) await (await q.getJob(id))!.waitUntilFinished(events);
    const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds?limit=100');
    assert.equal(builds.length, 30);
    assert.deepEqual(new Set(builds.map((b) => b.id)).size, 30);
    assert.ok(builds.every((b) => b.result === 'success' && b.attempt === 1));
    assert.deepEqual(new Set(builds.map((b) => b.agent)), new Set(['a', 'b']));
  });

  it('fails a job whose data does not fit the job schema with a readable reason, and carries on', async () => {
    await farm.agent({ name: 'a' });
    const q = farm.queue('b2g');
    const events = await farm.events('b2g');
    const bad = await q.add('build', { argv: 'make' });
    const good = await q.add('build', { argv: ['true'] });
    await assert.rejects(bad.waitUntilFinished(events), /invalid job data: argv: /);
    await good.waitUntilFinished(events);
    const view = await farm.api<JobView>(`/api/jobs/${bad.id}?type=b2g`);
    assert.equal(view.state, 'failed');
    assert.match(view.failedReason ?? '', /invalid job data/);
  });

  it('rejects a bad submission over HTTP with 400 and says why', async () => {
    const res = await fetch(`${farm.addr.httpUrl}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'nope', argv: ['true'] }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'SPILLWAY_E_BAD_REQUEST');
    assert.match(body.error.message, /unknown job type "nope"/);
    const res2 = await fetch(`${farm.addr.httpUrl}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'b2g', argv: ['true'], shell: 'true' }),
    });
    assert.equal(res2.status, 400);
    assert.match(((await res2.json()) as { error: { message: string } }).error.message, /exactly one of "argv" or "shell"/);
    const missing = await fetch(`${farm.addr.httpUrl}/api/jobs/does-not-exist`);
    assert.equal(missing.status, 404);
  });

  it('shows backlog per job type in /api/queues while no agent serves it', async () => {
    const q = farm.queue('linux64');
    await q.add('build', { argv: ['true'] });
    await q.add('build', { argv: ['true'] });
    const { queues } = await farm.api<{ queues: QueueView[] }>('/api/queues');
    const linux = queues.find((x) => x.type === 'linux64')!;
    assert.equal(linux.waiting, 2);
    assert.equal(typeof linux.oldestWaitMs, 'number');
    assert.equal(linux.executors.total, 0);
  });
});
