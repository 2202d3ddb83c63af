import assert from 'node:assert/strict';
import { request } from 'node:http';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const READ = 'read-token-0123456789';
const SUBMIT = 'submit-token-0123456789';
const ADMIN = 'admin-token-0123456789';
const JOB = JSON.stringify({ type: 'b2g', argv: ['true'] });

interface Answer {
  status: number;
  message: string;
  challenge: string | null;
}

/**
 * The roles of the HTTP API tried as a hostile client would: a real master in-process on
 * port 0, real sockets, every token kind against every kind of route.
 */
describe('HTTP API: who may do what (read, submit, admin tokens)', function () {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(
      farmConfigRaw({
        http: { host: '127.0.0.1', port: 0, tokens: { read: [READ], submit: [SUBMIT], admin: [ADMIN] } },
        jobTypes: { b2g: { overflow: { pool: 'p' } }, linux64: {} },
        pools: { p: { provider: 'local', maxInstances: 1, local: { preCreated: 0 } } },
      }),
      { agentCommand: ['/bin/false'] },
    ).start();
  });
  after(() => farm.stop());

  const call = async (method: string, path: string, authorization?: string, body?: string): Promise<Answer> => {
    const res = await fetch(farm.addr.httpUrl + path, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(authorization !== undefined && { authorization }) },
      ...(body !== undefined && { body }),
    });
    const text = await res.text();
    let message = '';
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? '';
    } catch {
      // Not JSON: the page, the metrics.
    }
    return { status: res.status, message, challenge: res.headers.get('www-authenticate') };
  };
  const submit = (authorization?: string, path = '/api/jobs') => call('POST', path, authorization, JOB);
  const rule = (authorization?: string) => call('PUT', '/api/rules/b2g', authorization, JSON.stringify({ minBacklog: 3 }));
  const READS = ['/', '/api/builds', '/api/queues', '/api/agents', '/api/pools', '/api/rules', '/api/overview', '/metrics', '/assets/app.js'];

  it('refuses everything but the health check without a token, saying what is needed', async () => {
    for (const path of READS) {
      const a = await call('GET', path);
      assert.equal(a.status, 401, path);
      assert.match(a.challenge ?? '', /^Basic realm="spillway"/, path);
    }
    const s = await submit();
    assert.equal(s.status, 401);
    assert.equal(s.message, 'job submission needs a submit or admin token (Authorization: Bearer ..., or --token / SPILLWAY_TOKEN)');
    assert.match(s.challenge ?? '', /^Bearer /);
    assert.equal((await rule()).status, 401);
    assert.equal((await call('GET', '/healthz')).status, 200);
  });

  it('refuses a wrong token on every kind of route', async () => {
    const wrong = 'Bearer not-a-token-0123456789';
    assert.deepEqual((await call('GET', '/api/builds', wrong)).status, 401);
    assert.equal((await submit(wrong)).message, 'wrong token: job submission needs a submit or admin token');
    assert.equal((await rule(wrong)).message, 'wrong admin token');
  });

  it('lets a read token read, and refuses it submission and rule changes with 403', async () => {
    for (const path of READS) assert.equal((await call('GET', path, `Bearer ${READ}`)).status, 200, path);
    const s = await submit(`Bearer ${READ}`);
    assert.equal(s.status, 403);
    assert.equal(s.message, 'a read token cannot submit, cancel or retry jobs: use a submit or admin token');
    const r = await rule(`Bearer ${READ}`);
    assert.equal(r.status, 403);
    assert.equal(r.message, 'a read token cannot change settings: an admin token is required');
  });

  it('lets a submit token submit and read, but not change rules', async () => {
    assert.equal((await submit(`Bearer ${SUBMIT}`)).status, 201);
    assert.equal((await call('GET', '/api/queues', `Bearer ${SUBMIT}`)).status, 200);
    const r = await rule(`Bearer ${SUBMIT}`);
    assert.equal(r.status, 403);
    assert.equal(r.message, 'a submit token cannot change settings: an admin token is required');
  });

  it('lets the admin token do everything', async () => {
    assert.equal((await submit(`Bearer ${ADMIN}`)).status, 201);
    assert.equal((await call('GET', '/metrics', `Bearer ${ADMIN}`)).status, 200);
    assert.equal((await rule(`Bearer ${ADMIN}`)).status, 200);
  });

  it('reads the auth scheme case-insensitively (RFC 7235)', async () => {
    assert.equal((await rule(`bearer ${ADMIN}`)).status, 200);
    assert.equal((await submit(`BEARER ${SUBMIT}`)).status, 201);
    assert.equal((await call('GET', '/api/builds', `bEaReR ${READ}`)).status, 200);
  });

  it('takes Basic credentials (what a browser sends) for reading only', async () => {
    const basic = (token: string) => `Basic ${Buffer.from(`anyone:${token}`).toString('base64')}`;
    assert.equal((await call('GET', '/', basic(READ))).status, 200);
    assert.equal((await call('GET', '/api/overview', `basic ${Buffer.from(`x:${READ}`).toString('base64')}`)).status, 200);
    const s = await submit(basic(ADMIN));
    assert.equal(s.status, 401);
    assert.match(s.message, /^Basic credentials can only read/);
    assert.equal((await rule(basic(ADMIN))).status, 401);
  });

  it('never takes a token from the query string', async () => {
    assert.equal((await submit(undefined, `/api/jobs?token=${SUBMIT}`)).status, 401);
    assert.equal((await submit(undefined, `/api/jobs?access_token=${ADMIN}`)).status, 401);
    assert.equal((await call('GET', `/api/builds?token=${READ}`)).status, 401);
    assert.equal((await call('GET', `/?token=${READ}`)).status, 401);
  });

  it('refuses a huge or malformed Authorization header and keeps serving', async () => {
    const long = await submit(`Bearer ${'x'.repeat(5000)}`);
    assert.equal(long.status, 401);
    assert.equal(long.message, 'Authorization header longer than 4096 characters');
    // Past Node's header limit the request never reaches a route.
    assert.equal(await rawStatus({ authorization: `Bearer ${'y'.repeat(40_000)}` }), 431);
    assert.equal((await submit('Digest username="admin"')).message, 'unsupported authorization scheme "Digest" (use Bearer)');
    assert.equal((await submit('Bearer')).status, 401);
    assert.equal((await submit(`Bearer ${SUBMIT} extra`)).status, 401);
    assert.equal((await submit(`Bearer ${SUBMIT}`)).status, 201);
  });

  it('guards the live event stream like every read', async () => {
    assert.equal(await rawStatus({}, '/api/events'), 401);
    assert.equal(await rawStatus({ authorization: `Bearer ${READ}` }, '/api/events'), 200);
  });

  it('logs refusals with the reason, never a token', async () => {
    const line = await farm.logs.waitFor((e) => e.event === 'http.access-refused');
    assert.ok(typeof line.reason === 'string' && line.reason.length > 0);
    const logged = JSON.stringify(farm.logs.entries);
    for (const t of [READ, SUBMIT, ADMIN]) assert.equal(logged.includes(t), false);
  });

  /** Status of a GET with raw headers (fetch refuses some), closing the connection at once. */
  function rawStatus(headers: Record<string, string>, path = '/api/builds'): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(farm.addr.httpUrl + path, { headers }, (res) => {
        resolve(res.statusCode ?? 0);
        res.destroy();
      });
      req.on('error', reject);
      req.end();
    });
  }
});

describe('HTTP API: submission with only the older adminToken set, and with no token at all', () => {
  it('refuses unauthenticated submission once an admin token exists, and lets the admin token submit', async () => {
    const farm = await new TestFarm(farmConfigRaw({ adminToken: ADMIN })).start();
    try {
      const post = (headers: Record<string, string>) =>
        fetch(`${farm.addr.httpUrl}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ type: 'b2g', argv: ['true'] }) });
      assert.equal((await post({})).status, 401);
      assert.equal((await post({ authorization: `Bearer ${ADMIN}` })).status, 201);
      // No read token: reading stays open.
      assert.equal((await fetch(`${farm.addr.httpUrl}/api/builds`)).status, 200);
    } finally {
      await farm.stop();
    }
  });

  it('keeps a loopback master without tokens open, as before', async () => {
    const farm = await new TestFarm().start();
    try {
      const res = await fetch(`${farm.addr.httpUrl}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'b2g', argv: ['true'] }) });
      assert.equal(res.status, 201);
    } finally {
      await farm.stop();
    }
  });
});
