import assert from 'node:assert/strict';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const ADMIN = 'admin-token-0123456789';
const PATHS = ['/api/jobs', '/api/jobs/1', '/api/jobs/1/log', '/api/builds', '/api/queues', '/api/agents', '/api/pools', '/api/rules', '/api/rules/b2g', '/healthz'];
const METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'];

describe('HTTP API: mutating routes need the admin token', function () {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(
      farmConfigRaw({
        adminToken: ADMIN,
        jobTypes: { b2g: { overflow: { pool: 'p' } }, linux64: {} },
        pools: { p: { provider: 'local', maxInstances: 1, local: { preCreated: 0 } } },
      }),
      { agentCommand: ['/bin/false'] },
    ).start();
  });
  after(() => farm.stop());

  it('answers every non-GET route with 401 without the token (submission too, once an admin token exists), and logs the refusal', async () => {
    const open: string[] = [];
    for (const path of PATHS) {
      for (const method of METHODS) {
        const res = await fetch(farm.addr.httpUrl + path, { method, headers: { 'content-type': 'application/json' }, body: '{}' });
        const body = (await res.json()) as { error?: { message: string } };
        // 404 "no route": the route does not exist, so there is nothing to protect.
        if (res.status === 404 && /^no route/.test(body.error?.message ?? '')) continue;
        if (res.status !== 401) open.push(`${method} ${path} -> ${res.status}`);
      }
    }
    assert.deepEqual(open, []);
    // One line per address per window: the first refusal, with the rest counted into the next.
    const line = await farm.logs.waitFor((e) => e.event === 'http.access-refused');
    assert.equal(line.need, 'submit');
    assert.match(String(line.reason), /^job submission needs a submit or admin token/);
  });

  it('accepts the admin token and refuses a wrong one without logging either', async () => {
    const put = (token: string) =>
      fetch(`${farm.addr.httpUrl}/api/rules/b2g`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ minBacklog: 4 }),
      });
    assert.equal((await put('wrong-admin-token-x')).status, 401);
    const ok = await put(ADMIN);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.equal(((await ok.json()) as { rule: { minBacklog: number } }).rule.minBacklog, 4);
    const logged = JSON.stringify(farm.logs.entries);
    assert.equal(logged.includes(ADMIN) || logged.includes('wrong-admin-token-x'), false);
  });
});
