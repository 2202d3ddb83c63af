import assert from 'node:assert/strict';
import type { BuildRecord } from '../../src/master';
import { TestFarm } from '../helpers/farm';

describe('agent listener: a failure handling one frame costs that connection, not the master', function () {
  this.timeout(30_000);
  let farm: TestFarm;
  before(async () => (farm = await new TestFarm().start()));
  after(() => farm.stop());

  it('logs it, closes that socket; the agent reconnects and its build still completes once', async () => {
    await farm.agent({ name: 'rack-1', jobTypes: ['b2g'] });
    await farm.agent({ name: 'rack-2', jobTypes: ['linux64'] });
    const dispatcher = farm.master.dispatcher;
    const onLog = dispatcher.onLog.bind(dispatcher);
    let thrown = false;
    // A stand-in for a bug in frame handling: the first log frame from rack-1 throws.
    dispatcher.onLog = (agent, queue, jobId, data, offset) => {
      if (!thrown && agent.name === 'rack-1') {
        thrown = true;
        throw new Error('boom (test)');
      }
      return onLog(agent, queue, jobId, data, offset);
    };
    const finished: BuildRecord[] = [];
    dispatcher.on('build-finished', (r) => finished.push(r));

    const id = await farm.submit({ type: 'b2g', shell: 'echo hello; sleep 0.3' });
    const failed = await farm.logs.waitFor((e) => e.event === 'agent.handler-failed');
    assert.equal(failed.agent, 'rack-1');
    await farm.logs.waitFor((e) => e.event === 'job.finished' && e.jobId === id);

    // The other agent was never disturbed and the master still dispatches.
    const other = await farm.submit({ type: 'linux64', argv: ['true'] });
    await farm.logs.waitFor((e) => e.event === 'job.finished' && e.jobId === other);
    assert.equal(finished.filter((r) => r.id === id).length, 1, 'completed exactly once');
    assert.ok(!farm.logs.entries.some((e) => e.event === 'agent.disconnected' && e.agent === 'rack-2'));
  });
});
