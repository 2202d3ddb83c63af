import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { farmConfigRaw, spawnCli, TestFarm } from '../helpers/farm';

interface Answer {
  status: number;
  body: { id?: string; type?: string; created?: boolean; state?: string; error?: { code: string; message: string } };
}

/**
 * A CI script that times out and submits again must not get a second build: a client-chosen
 * `jobId` is answered with the job it made (200), and refused (409) when reused for another job.
 */
describe('http: idempotent submission with a client-chosen jobId', function () {
  this.timeout(30_000);
  let farm: TestFarm;
  let runs: string;

  const post = async (body: Record<string, unknown>): Promise<Answer> => {
    const res = await fetch(`${farm.addr.httpUrl}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  };

  beforeEach(async () => {
    // builds.keep 1: a finished job leaves its BullMQ queue as soon as the next one finishes.
    farm = await new TestFarm(farmConfigRaw({ builds: { lockMs: 3000, keep: 1 } })).start();
    runs = join(mkdtempSync(join(tmpdir(), 'spillway-idem-')), 'runs.txt');
    await farm.agent({ name: 'rack-1', jobTypes: ['b2g', 'linux64'] });
  });
  afterEach(() => farm.stop());

  it('the same id and payload twice: one job, one build; the repeat answers 200 with it', async () => {
    const build = { type: 'b2g', shell: `echo ran >> ${runs}`, env: { A: '1', B: '2' }, jobId: 'ci-1234.build-7' };
    const first = await post(build);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.deepEqual({ ...first.body, url: undefined }, { id: 'ci-1234.build-7', type: 'b2g', created: true, state: 'waiting', url: undefined });
    await farm.finished('ci-1234.build-7');

    // The same request, its keys in another order (a script's JSON library may reorder them).
    const again = await post({ jobId: 'ci-1234.build-7', env: { B: '2', A: '1' }, shell: build.shell, type: 'b2g' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.created, false);
    assert.equal(again.body.state, 'completed');

    // Another job finishes: with builds.keep 1 the first leaves its queue; its id still holds.
    await farm.finished(await farm.submit({ type: 'b2g', argv: ['true'] }));
    const late = await post(build);
    assert.equal(late.status, 200, JSON.stringify(late.body));
    assert.equal(late.body.state, 'removed');
    const cli = spawnCli(['submit', '--master', farm.addr.httpUrl, '--type', 'b2g', '--wait', '--job-id', 'ci-1234.build-7', '--env', 'A=1', '--env', 'B=2', '--shell', '--', build.shell]);
    assert.equal((await cli.exited).code, 1, cli.output());
    assert.match(cli.output(), /job ci-1234\.build-7 was submitted before \(removed\); not queued again/);
    assert.match(cli.output(), /its result is no longer kept; use a new --job-id to run it again/);
    assert.equal(readFileSync(runs, 'utf8'), 'ran\n', 'the build ran once');
  });

  it('concurrent submissions of one id make one job', async () => {
    const body = { type: 'linux64', shell: `echo ran >> ${runs}`, jobId: 'race-1' };
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(body)));
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 200, 200, 201], JSON.stringify(answers));
    await farm.finished('race-1');
    assert.equal(readFileSync(runs, 'utf8'), 'ran\n');
  });

  it('the same id with another payload or type is 409 and changes nothing', async () => {
    assert.equal((await post({ type: 'b2g', argv: ['true'], jobId: 'reused' })).status, 201);
    const other = await post({ type: 'b2g', argv: ['false'], jobId: 'reused' });
    assert.equal(other.status, 409);
    assert.equal(other.body.error?.code, 'SPILLWAY_E_CONFLICT');
    assert.match(other.body.error!.message, /job id "reused" was already submitted with a different payload/);
    const moreAttempts = await post({ type: 'b2g', argv: ['true'], jobId: 'reused', attempts: 9 });
    assert.equal(moreAttempts.status, 409, 'attempts are part of the job');
    const otherType = await post({ type: 'linux64', argv: ['true'], jobId: 'reused' });
    assert.equal(otherType.status, 409);
    assert.match(otherType.body.error!.message, /already submitted as a b2g job/);
    const rec = await farm.finished('reused');
    assert.equal(rec.result, 'success', 'the first payload ran');
  });

  it('refuses ids BullMQ or a URL would mangle', async () => {
    for (const jobId of ['', '1234', 'a:b', 'a/b', '-x', 'x'.repeat(129), 'sp ace', 7]) {
      const r = await post({ type: 'b2g', argv: ['true'], jobId });
      assert.equal(r.status, 400, `${JSON.stringify(jobId)}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error!.message, /jobId/);
    }
    assert.equal((await post({ type: 'b2g', argv: ['true'], jobId: 'x'.repeat(128) })).status, 201);
  });
});
