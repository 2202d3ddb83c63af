import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { JobView } from '../../src/master';
import { launchChromium } from '../helpers/chromium';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';
import { waitUntil } from '../helpers/wait-until';
import { controlFarm, READ, running, SUBMIT } from '../helpers/control-farm';
import type { CliProcess } from '../helpers/farm';

const ARTIFACTS = resolve(process.env.SPILLWAY_TEST_ARTIFACTS ?? join(__dirname, '..', '..', '..', 'test-artifacts'));

/** Markup that runs script if it is ever parsed as HTML instead of shown as text. */
const HOSTILE = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>"onerror=window.__pwned=1 x="`;

async function notPwned(page: Page): Promise<void> {
  assert.equal(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned), undefined, 'hostile data ran as script');
  assert.equal(await page.locator('img, main script').count(), 0, 'hostile data became elements');
}

/** The job page (/jobs/:id) in real headless Chromium against a real master and agents. */
describe('job page in a real browser', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let browser: Browser;
  let page: Page;
  const raws: RawAgent[] = [];

  before(async function () {
    browser = await launchChromium(this);
    farm = await new TestFarm(farmConfigRaw({ jobTypes: { b2g: { attempts: 3 }, linux64: { attempts: 2 } } })).start();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('dialog', () => assert.fail('a dialog opened: hostile data ran as script'));
  });

  after(async () => {
    for (const r of raws) r.ws.terminate();
    await browser?.close();
    await farm?.stop();
  });

  it('shows every attempt (an agent lost, then a retry elsewhere) with its agent, place, times, result and reason, and the log with a time per line', async () => {
    const raw = await RawAgent.connect(farm.addr.agentUrl, { name: 'doomed-rack', jobTypes: ['b2g'] });
    raws.push(raw);
    const id = await farm.submit({ type: 'b2g', shell: 'echo first line; echo second line; exit 3' });
    const assign = await raw.next('assign');
    raw.send({ type: 'started', queue: 'b2g', jobId: id, lockToken: assign.lockToken, startedAt: Date.now() });
    raw.send({ type: 'log', queue: 'b2g', jobId: id, stream: 'stdout', data: 'output of the lost attempt\n' });
    await waitUntil(async () => (await farm.api<JobView>(`/api/jobs/${id}`)).builds.length === 1);
    raw.ws.terminate();
    await farm.agent({ name: 'rack-2', jobTypes: ['b2g'] });
    await waitUntil(async () => (await farm.api<JobView>(`/api/jobs/${id}`)).builds.some((b) => b.attempt === 2 && b.state === 'finished'));

    await page.goto(`${farm.addr.httpUrl}/jobs/${id}?type=b2g`);
    await page.locator('[data-testid=job-title]', { hasText: id }).waitFor();
    const rows = page.locator('#attempts tbody tr');
    await waitUntil(async () => (await rows.count()) === 2);
    const first = page.locator('#attempts tr[data-attempt="1"]');
    const second = page.locator('#attempts tr[data-attempt="2"]');
    assert.match(await first.innerText(), /doomed-rack[\s\S]*ON-PREM[\s\S]*lost[\s\S]*agent lost/);
    assert.match(await second.innerText(), /rack-2[\s\S]*ON-PREM[\s\S]*failure\s+3\s+failed/);
    // Times of day (hh:mm:ss) for queued / started / finished, a wait and a duration.
    assert.match(await second.innerText(), /\d\d:\d\d:\d\d\s+\d\d:\d\d:\d\d\s+\d\d:\d\d:\d\d\s+[\d.]+ s\s+[\d.]+ s/);
    await page.locator('[data-testid=job-exit]', { hasText: '3' }).waitFor();

    // The stored log of the latest attempt, one row per line, each with its time.
    const lines = page.locator('#log .line');
    await waitUntil(async () => (await lines.count()) === 2);
    assert.deepEqual(await page.locator('#log .line .text').allInnerTexts(), ['first line', 'second line']);
    const at = await lines.evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-at"))));
    const view = await farm.api<JobView>(`/api/jobs/${id}`);
    const started = view.builds[1]!.startedAt!;
    for (const t of at) assert.ok(t >= started - 1000 && t <= view.builds[1]!.finishedAt! + 1000, `line time ${t} not within the attempt`);
    assert.match(await lines.first().locator('.ts').innerText(), /^\d\d:\d\d:\d\d\.\d{3}$/);
    assert.equal(await page.locator('[data-testid=log-raw]').getAttribute('href'), `/api/jobs/${id}/log.txt?type=b2g`);
    // The lost attempt's own output stays reachable, raw, from its row.
    const firstLog = await page.request.get(new URL((await page.locator('[data-testid=attempt-log-1]').getAttribute('href'))!, farm.addr.httpUrl).href);
    assert.equal(await firstLog.text(), 'output of the lost attempt\n');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'job-page.png') });
    // No token entered: no controls.
    assert.equal(await page.locator('[data-testid=job-retry]').isVisible(), false);
    assert.equal(await page.locator('[data-testid=job-cancel]').isVisible(), false);
  });

  it('follows a running build\'s log live, line by line', async () => {
    const id = await farm.submit({ type: 'b2g', shell: 'echo begun; sleep 0.5; echo middle; sleep 0.5; echo ended' });
    await page.goto(`${farm.addr.httpUrl}/jobs/${id}?type=b2g`);
    await page.locator('#log .line .text', { hasText: 'begun' }).waitFor();
    await page.locator('#log .line .text', { hasText: 'ended' }).waitFor();
    await page.locator('[data-testid=job-state][data-state=completed]').waitFor();
    assert.deepEqual(await page.locator('#log .line .text').allInnerTexts(), ['begun', 'middle', 'ended']);
    const at = await page.locator('#log .line').evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-at"))));
    // Lines printed half a second apart arrive apart: their times differ and ascend.
    assert.ok(at[0]! < at[1]! && at[1]! < at[2]!, `times ${at.join(', ')}`);
  });

  it('shows hostile log lines, ids and names as text: nothing in them runs', async () => {
    const id = await farm.submit({ type: 'b2g', argv: ['printf', '%s\\n', HOSTILE, `</div><b>bold</b>`] });
    await farm.finished(id);
    // Names the API would never hand out (they are validated), fed to the page as if it did.
    await page.route('**/api/jobs/*?*', async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as JobView;
      body.type = HOSTILE;
      body.failedReason = HOSTILE;
      for (const b of body.builds) Object.assign(b, { agent: HOSTILE, instanceId: HOSTILE, location: 'cloud', reason: HOSTILE, result: 'failure' });
      await route.fulfill({ response: res, json: body });
    });
    try {
      await page.goto(`${farm.addr.httpUrl}/jobs/${id}?type=b2g`);
      await page.locator('#log .line .text', { hasText: 'bold' }).waitFor();
      await page.locator('#attempts tr[data-attempt="1"]', { hasText: 'onerror' }).waitFor();
      assert.deepEqual(await page.locator('#log .line .text').allInnerTexts(), [HOSTILE, '</div><b>bold</b>']);
      assert.equal(await page.locator('#log b').count(), 0);
      assert.ok((await page.locator('#summary').innerText()).includes(HOSTILE));
      await notPwned(page);
    } finally {
      await page.unroute('**/api/jobs/*?*');
    }
    // A hostile id and type in the page's own URL are text too.
    await page.goto(`${farm.addr.httpUrl}/jobs/${encodeURIComponent(HOSTILE)}?type=${encodeURIComponent(HOSTILE)}`);
    await page.locator('[data-testid=job-title]', { hasText: 'onerror' }).waitFor();
    await page.locator('[data-testid=job-message].error').waitFor();
    await notPwned(page);
  });
});

/** Cancel and retry from the job page: a real master and a real agent process, behind tokens. */
describe('job page in a real browser: cancel and retry', function () {
  this.timeout(90_000);
  let browser: Browser;
  const procs: CliProcess[] = [];

  before(async function () {
    browser = await launchChromium(this);
  });
  after(async () => {
    await browser?.close();
    for (const p of procs) p.child.kill('SIGKILL');
  });

  it('a cancel from the job page stops a running build (its process is gone, the job is recorded cancelled by the token\'s caller), and retry makes a linked new job', async () => {
    const farm = await controlFarm(procs);
    await farm.startAgent('rack-1');
    const id = await farm.submit({ shell: 'echo "pid $$"; exec sleep 600' });
    const pid = Number((await farm.logUntil(id, /pid (\d+)/))[1]);
    assert.ok(running(pid), 'the build runs');

    const context = await browser.newContext({ httpCredentials: { username: 'ops', password: READ }, viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(`${farm.base}/jobs/${id}?type=b2g`);
    await page.locator('#log .line .text', { hasText: `pid ${pid}` }).waitFor();
    await page.locator('[data-testid=job-state][data-state=running]').waitFor();
    // Read-only until a token is entered; a wrong one is refused and said so.
    assert.equal(await page.locator('[data-testid=job-cancel]').isVisible(), false);
    await page.fill('[data-testid=admin-token]', 'not-a-token');
    await page.click('[data-testid=admin-unlock]');
    await page.click('[data-testid=job-cancel]');
    await page.locator('[data-testid=job-message].error').waitFor();
    assert.ok(running(pid), 'a refused cancel stops nothing');

    await page.fill('[data-testid=admin-token]', SUBMIT);
    await page.click('[data-testid=admin-unlock]');
    await page.click('[data-testid=job-cancel]');
    await page.locator('[data-testid=job-state][data-state=cancelled]').waitFor({ timeout: 20_000 });
    await waitUntil(async () => !running(pid), { timeoutMs: 15_000, what: `build process ${pid} gone` });
    const v = await farm.recorded(id);
    assert.equal(v.builds.length, 1, 'not retried');
    assert.equal(v.builds[0]!.result, 'cancelled');
    assert.ok(v.cancelledBy, 'who cancelled is recorded');
    assert.equal(v.cancelReason, 'from the job page');
    await page.locator('[data-testid=job-reason]', { hasText: 'cancel' }).waitFor();
    await page.locator('#summary', { hasText: v.cancelledBy! }).waitFor();
    await page.locator('#attempts tr[data-attempt="1"] [data-result=cancelled]').waitFor();

    // Retry: a new job with a link both ways.
    await page.click('[data-testid=job-retry]');
    const link = page.locator('[data-testid=retried-as]');
    await link.waitFor();
    const newId = await link.innerText();
    assert.notEqual(newId, id);
    assert.equal((await farm.view(newId)).retryOf, id);
    await link.click();
    await page.waitForURL(`**/jobs/${newId}?type=b2g`);
    await page.locator('#summary', { hasText: 'retry of' }).waitFor();
    await farm.call('POST', `/api/jobs/${newId}/cancel`, {});

    // The raw download is the log's bytes.
    const raw = await page.request.get(`${farm.base}/api/jobs/${id}/log.txt?type=b2g`);
    assert.equal(raw.status(), 200);
    assert.equal(await raw.text(), `pid ${pid}\n`);
    await context.close();
  });
});
