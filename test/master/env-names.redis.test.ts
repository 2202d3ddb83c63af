import assert from 'node:assert/strict';
import type { JobView } from '../../src/master';
import { TestFarm } from '../helpers/farm';

describe('master: env names in job data are checked before a build runs', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm().start();
    await farm.agent({ name: 'a' });
  });
  after(() => farm.stop());

  it('fails a queued job whose env has a name with "=" with that reason, never running it, and carries on', async () => {
    const q = farm.queue('b2g');
    const events = await farm.events('b2g');
    // Straight into Redis, as any BullMQ producer could: the API is not the only door.
    const bad = await q.add('build', { shell: 'echo "$A"', env: { 'A=B': 'smuggled' } });
    const good = await q.add('build', { argv: ['true'] });
    await assert.rejects(bad.waitUntilFinished(events), /invalid job data: env: name "A=B" contains "="/);
    await good.waitUntilFinished(events);
    const view = await farm.api<JobView>(`/api/jobs/${bad.id}?type=b2g`);
    assert.equal(view.state, 'failed');
    assert.equal(view.builds.length, 0, 'no agent ran it');
  });

  it('refuses a submission with an empty or NUL env name with 400 and the reason', async () => {
    for (const [env, why] of [
      [{ '': 'x' }, 'env: a name is empty'],
      [{ 'A\0': 'x' }, 'env: name "A\\u0000" contains a NUL byte'],
    ] as const) {
      const res = await fetch(`${farm.addr.httpUrl}/api/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'b2g', argv: ['true'], env }),
      });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { message: string } }).error.message, `invalid job data: ${why}`);
    }
  });
});
