import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { JobView } from '../../src/master';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const READ = 'read-token-0123456789';
const SUBMIT = 'submit-token-0123456789';
const ADMIN = 'admin-token-0123456789';
const fingerprint = (t: string) => createHash('sha256').update(t).digest('hex').slice(0, 8);

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T & { error?: { code: string; message: string } };
  headers: Headers;
  text: string;
}

/**
 * The job control routes (cancel, retry, log.txt) on a real master in-process: hostile calls
 * first, then what they do to jobs no agent takes (linux64 has no agent here), so every
 * job stays where the test puts it.
 */
describe('HTTP API: cancel, retry, log.txt', function () {
  this.timeout(30_000);
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw({ http: { host: '127.0.0.1', port: 0, tokens: { read: [READ], submit: [SUBMIT], admin: [ADMIN] } } })).start();
  });
  after(() => farm.stop());

  const call = async <T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown): Promise<Answer<T>> => {
    const res = await fetch(farm.addr.httpUrl + path, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(token !== undefined && { authorization: `Bearer ${token}` }) },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // text/plain
    }
    return { status: res.status, body: parsed as Answer<T>['body'], headers: res.headers, text };
  };
  const submit = async (body: Record<string, unknown>): Promise<string> => {
    const a = await call<{ id: string }>('POST', '/api/jobs', SUBMIT, body);
    assert.equal(a.status, 201, a.text);
    return a.body.id;
  };
  const view = async (id: string) => (await call<JobView>('GET', `/api/jobs/${id}?log=0`, READ)).body;

  describe('hostile callers', () => {
    it('refuses a cancel or a retry without a token (401), with a read token (403) and with Basic credentials (401): the job is untouched', async () => {
      const id = await submit({ type: 'linux64', argv: ['true'] });
      for (const route of ['cancel', 'retry']) {
        assert.equal((await call('POST', `/api/jobs/${id}/${route}`)).status, 401, route);
        const read = await call('POST', `/api/jobs/${id}/${route}`, READ);
        assert.equal(read.status, 403, route);
        assert.equal(read.body.error?.code, 'SPILLWAY_E_FORBIDDEN');
        assert.match(read.body.error?.message ?? '', /a read token cannot submit, cancel or retry jobs/);
        const basic = await fetch(`${farm.addr.httpUrl}/api/jobs/${id}/${route}`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`x:${SUBMIT}`).toString('base64')}` },
        });
        assert.equal(basic.status, 401, `${route}: a browser sends Basic by itself, so it never changes anything`);
      }
      assert.equal((await view(id)).state, 'waiting');
    });

    it('answers 404 for a cancel, retry or log.txt of an unknown job, and 400 for an unknown type', async () => {
      for (const [method, path] of [
        ['POST', '/api/jobs/no-such-job/cancel'],
        ['POST', '/api/jobs/no-such-job/retry'],
        ['GET', '/api/jobs/no-such-job/log.txt'],
      ] as const) {
        const a = await call(method, path, method === 'GET' ? READ : SUBMIT);
        assert.equal(a.status, 404, path);
        assert.equal(a.body.error?.code, 'SPILLWAY_E_NOT_FOUND', path);
      }
      assert.equal((await call('POST', '/api/jobs/x/cancel?type=nope', SUBMIT)).status, 400);
    });

    it('refuses a cancel body that is not { reason?: string } (400), and one too large (413), cancelling nothing', async () => {
      const id = await submit({ type: 'linux64', argv: ['true'] });
      for (const body of [{ reason: 7 }, { reason: 'x', by: 'admin' }, { reason: 'r'.repeat(501) }, '[1,2]', '"just a string"']) {
        const a = await call('POST', `/api/jobs/${id}/cancel`, SUBMIT, body);
        assert.equal(a.status, 400, JSON.stringify(body));
        assert.equal(a.body.error?.code, 'SPILLWAY_E_BAD_REQUEST');
      }
      assert.equal((await call('POST', `/api/jobs/${id}/cancel`, SUBMIT, '{"reason": ')).status, 400, 'malformed JSON');
      const huge = await call('POST', `/api/jobs/${id}/cancel`, SUBMIT, { reason: 'x'.repeat(2 * 1024 * 1024) });
      assert.equal(huge.status, 413);
      assert.equal((await view(id)).state, 'waiting');
      assert.equal((await view(id)).cancelledBy, null);
    });

    it('answers 409 for a retry of a job still waiting, and for a cancel of a job that has finished', async () => {
      const id = await submit({ type: 'linux64', argv: ['true'] });
      const early = await call('POST', `/api/jobs/${id}/retry`, SUBMIT);
      assert.equal(early.status, 409);
      assert.equal(early.body.error?.code, 'SPILLWAY_E_JOB_NOT_FINISHED');
      assert.match(early.body.error?.message ?? '', /is waiting: only a finished job can be retried/);
      assert.equal((await call('POST', `/api/jobs/${id}/cancel`, SUBMIT)).status, 200);
      const again = await call('POST', `/api/jobs/${id}/cancel`, ADMIN);
      assert.equal(again.status, 409);
      assert.equal(again.body.error?.code, 'SPILLWAY_E_JOB_FINISHED');
      assert.match(again.body.error?.message ?? '', /has finished: cancelled \(cancelled by submit token/);
      assert.equal((await view(id)).cancelledBy, `submit token ${fingerprint(SUBMIT)}`, 'the first cancel is the one that counts');
    });
  });

  it('cancels a waiting job at once: failed in its queue with who and why, never run, exit 130 for --wait', async () => {
    const id = await submit({ type: 'linux64', argv: ['true'], priority: 5 });
    const a = await call<{ id: string; state: string; was: string; by: string }>('POST', `/api/jobs/${id}/cancel`, SUBMIT, { reason: 'superseded by a newer push' });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(
      { id: a.body.id, state: a.body.state, was: a.body.was, by: a.body.by },
      { id, state: 'cancelled', was: 'waiting', by: `submit token ${fingerprint(SUBMIT)}` },
    );
    const v = await view(id);
    assert.equal(v.state, 'failed');
    assert.equal(v.done, true);
    assert.equal(v.failedReason, `cancelled by submit token ${fingerprint(SUBMIT)}: superseded by a newer push`);
    assert.equal(v.cancelledBy, `submit token ${fingerprint(SUBMIT)}`);
    assert.equal(v.cancelReason, 'superseded by a newer push');
    assert.equal(v.priority, 5);
    assert.deepEqual(v.builds, []);
    assert.equal(v.exitCode, 1);
    const counts = await farm.queue('linux64').getJobCounts('waiting', 'prioritized', 'failed');
    assert.equal(counts.waiting! + counts.prioritized!, 0, 'nothing left to take');
    assert.equal(counts.failed, 1);
  });

  it('cancels a delayed job (BullMQ delay) and says it was delayed; the token of an admin is named as an admin token', async () => {
    const job = await farm.queue('linux64').add('build', { argv: ['true'] }, { jobId: 'delayed-1', delay: 60_000 });
    const a = await call<{ state: string; was: string; by: string }>('POST', `/api/jobs/${job.id}/cancel`, ADMIN);
    assert.equal(a.status, 200, a.text);
    assert.equal(a.body.was, 'delayed');
    assert.equal(a.body.by, `admin token ${fingerprint(ADMIN)}`);
    assert.equal((await view('delayed-1')).state, 'failed');
    assert.equal((await view('delayed-1')).cancelReason, null);
  });

  it('retries a finished job: a new id, the same payload, attempts and priority, linked both ways; a second retry answers the first', async () => {
    const id = await submit({ type: 'linux64', argv: ['make', '-j8'], env: { A: '1' }, attempts: 2, priority: 3 });
    await call('POST', `/api/jobs/${id}/cancel`, SUBMIT);
    const r = await call<{ id: string; retryOf: string; created: boolean; url: string }>('POST', `/api/jobs/${id}/retry`, SUBMIT);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.retryOf, id);
    assert.notEqual(r.body.id, id);
    assert.equal(r.body.created, true);
    assert.equal(r.body.url, `/api/jobs/${r.body.id}`);
    const [old, fresh] = [await view(id), await view(r.body.id)];
    assert.equal(old.retriedAs, r.body.id);
    assert.equal(old.retryOf, null);
    assert.equal(fresh.retryOf, id);
    assert.equal(fresh.retriedAs, null);
    assert.equal(fresh.state, 'prioritized');
    assert.equal(fresh.priority, 3);
    assert.equal(fresh.attempts, 2);
    assert.equal(fresh.cancelledBy, null, 'the retry is not cancelled');
    const stored = await farm.queue('linux64').getJob(r.body.id);
    assert.deepEqual(stored?.data, { argv: ['make', '-j8'], env: { A: '1' } });

    const twice = await call<{ id: string; created: boolean }>('POST', `/api/jobs/${id}/retry`, ADMIN);
    assert.equal(twice.status, 200);
    assert.deepEqual([twice.body.id, twice.body.created], [r.body.id, false]);
    // Concurrent retries of one job make one job.
    const other = await submit({ type: 'linux64', argv: ['true'] });
    await call('POST', `/api/jobs/${other}/cancel`, SUBMIT);
    const many = await Promise.all(Array.from({ length: 8 }, () => call<{ id: string; created: boolean }>('POST', `/api/jobs/${other}/retry`, SUBMIT)));
    assert.equal(new Set(many.map((m) => m.body.id)).size, 1);
    assert.equal(many.filter((m) => m.body.created).length, 1);
  });

  it('serves log.txt as a plain-text download named after the job, empty for a job that never ran', async () => {
    const id = await submit({ type: 'linux64', argv: ['true'] });
    const a = await call('GET', `/api/jobs/${id}/log.txt`, READ);
    assert.equal(a.status, 200);
    assert.equal(a.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(a.headers.get('content-disposition'), `attachment; filename=${id}.log`);
    assert.equal(a.text, '');
    assert.equal((await call('GET', `/api/jobs/${id}/log.txt`)).status, 401, 'reading needs the read token here');
    assert.equal((await call('GET', `/api/jobs/${id}/log.txt?attempt=2`, READ)).status, 404);
    assert.equal((await call('GET', `/api/jobs/${id}/log.txt?attempt=zero`, READ)).status, 400);
  });

  it('shows priority, cancelledBy, cancelReason, retryOf and retriedAs on every job, null where they do not apply', async () => {
    const v = await view(await submit({ type: 'linux64', argv: ['true'] }));
    assert.deepEqual(
      { priority: v.priority, cancelledBy: v.cancelledBy, cancelReason: v.cancelReason, retryOf: v.retryOf, retriedAs: v.retriedAs },
      { priority: null, cancelledBy: null, cancelReason: null, retryOf: null, retriedAs: null },
    );
  });
});
