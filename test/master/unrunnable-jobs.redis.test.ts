import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { statusCommand } from '../../src/cli/status-command';
import type { QueueView } from '../../src/http';
import type { JobView } from '../../src/master';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const GPU = { labels: ['gpu'] };

describe('unrunnable jobs: visible, and never blocking the jobs behind them (real master, agents, redis)', function () {
  let farm: TestFarm | undefined;
  afterEach(async () => {
    await farm?.stop();
    farm = undefined;
  });

  it('starts a runnable job at once behind a flood of jobs no agent can run; shows why they wait; runs them when a capable agent comes', async () => {
    farm = await new TestFarm().start();
    await farm.agent({ name: 'plain', jobTypes: ['b2g'], executors: 1 });
    const flood: string[] = [];
    for (let i = 0; i < 40; i++) flood.push(await farm.submit({ type: 'b2g', argv: ['true'], requirements: GPU }));
    const runnable = await farm.submit({ type: 'b2g', argv: ['true'] });
    assert.equal((await farm.finished(runnable)).result, 'success');

    const parked = await farm.logs.waitFor((e) => e.event === 'job.unrunnable' && e.jobId === flood[0]);
    assert.equal(parked.reason, 'no agent offers label gpu');
    const view = await farm.api<JobView>(`/api/jobs/${flood[0]}`);
    assert.equal(view.done, false);
    assert.equal(view.unrunnable, 'no agent offers label gpu');
    const { queues } = await farm.api<{ queues: QueueView[] }>('/api/queues');
    const b2g = queues.find((q) => q.type === 'b2g')!;
    assert.ok(b2g.unrunnable.count > 0, JSON.stringify(b2g));
    assert.equal(b2g.unrunnable.reason, 'no agent offers label gpu');
    let printed = '';
    const out = new Writable({ write: (chunk, _enc, done) => ((printed += String(chunk)), done()) });
    assert.equal(await statusCommand({ master: farm.addr.httpUrl }, out), 0);
    assert.match(printed, /b2g: \d+ job\(s\) no agent can run \(no agent offers label gpu\)/);

    // They waited (the default), and run as soon as an agent that can run them connects.
    await farm.agent({ name: 'gpu-box', jobTypes: ['b2g'], labels: ['gpu'], executors: 4 });
    const records = [];
    for (const id of flood) records.push(await farm.finished(id));
    assert.deepEqual(new Set(records.map((r) => `${r.agent}:${r.result}`)), new Set(['gpu-box:success']));
    assert.ok(records.every((r) => r.attempt === 1), 'parking uses no attempt');
  });

  it('fails a job no agent can run once it has waited unrunnableFailAfterSec, with the reason', async () => {
    farm = await new TestFarm(farmConfigRaw({ jobTypes: { b2g: { attempts: 3, unrunnableFailAfterSec: 1 }, linux64: {} } })).start();
    await farm.agent({ name: 'plain', jobTypes: ['b2g'] });
    const events = await farm.events('b2g');
    const id = await farm.submit({ type: 'b2g', argv: ['true'], requirements: GPU });
    const job = (await farm.queue('b2g').getJob(id))!;
    await assert.rejects(job.waitUntilFinished(events), /no connected agent can run it for 1s: no agent offers label gpu/);
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    assert.equal(view.state, 'failed');
    assert.equal(view.unrunnable, null);
  });
});
