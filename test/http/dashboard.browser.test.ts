import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { CLI, farmConfigRaw, TestFarm } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';
import { waitUntil } from '../helpers/wait-until';

const ARTIFACTS = resolve(process.env.SPILLWAY_TEST_ARTIFACTS ?? join(__dirname, '..', '..', '..', 'test-artifacts'));
const ADMIN = 'admin-token-0123456789';

/**
 * The dashboard in real headless Chromium against a real master: an on-prem agent serving b2g
 * and a cloud agent serving linux64, so each build's location is known in advance.
 */
describe('dashboard in a real browser', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let browser: Browser;
  let page: Page;

  before(async function () {
    browser = await launchChromium(this);
    farm = await new TestFarm(
      farmConfigRaw({
        adminToken: ADMIN,
        jobTypes: { b2g: { attempts: 2, overflow: { pool: 'cloud', minBacklog: 50 } }, linux64: { attempts: 2 } },
        // Never scales in this test (the backlog stays under 50); it makes the rules editable.
        pools: { cloud: { provider: 'local', maxInstances: 1, local: { preCreated: 0 } } },
        dashboard: { sampleSec: 1 },
      }),
    ).start();
    await farm.agent({ name: 'rack-7', jobTypes: ['b2g'], location: 'onprem' });
    await farm.agent({ name: 'ec2-builder', jobTypes: ['linux64'], location: 'cloud' });
    page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
  });

  after(async () => {
    await browser?.close();
    await farm?.stop();
  });

  const finished = (id: string) => farm.finished(id);

  it('shows where each build ran, new builds without a reload, and lets an admin switch overflow', async () => {
    const onpremJob = await farm.submit({ type: 'b2g', shell: 'echo on-prem build' });
    const cloudJob = await farm.submit({ type: 'linux64', shell: 'echo cloud build' });
    await Promise.all([finished(onpremJob), finished(cloudJob)]);

    await page.goto(`${farm.addr.httpUrl}/`);
    await page.locator('[data-testid=live].on').waitFor();
    const onpremRow = page.locator(`#builds tr[data-job="${onpremJob}"]`);
    const cloudRow = page.locator(`#builds tr[data-job="${cloudJob}"]`);
    await onpremRow.locator('.badge-onprem').waitFor();
    await cloudRow.locator('.badge-cloud').waitFor();
    assert.equal(await onpremRow.locator('.badge-cloud').count(), 0);
    assert.equal(await cloudRow.locator('.badge-onprem').count(), 0);
    assert.match(await onpremRow.innerText(), /rack-7[\s\S]*ON-PREM[\s\S]*success/);
    assert.match(await cloudRow.innerText(), /ec2-builder[\s\S]*CLOUD[\s\S]*success/);
    await page.locator('#agents tr[data-agent="ec2-builder"] .badge-cloud').waitFor();

    // A build submitted now appears by itself: the page is not reloaded (the marker survives).
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    const later = await farm.submit({ type: 'linux64', shell: 'echo later' });
    await finished(later);
    await page.locator(`#builds tr[data-job="${later}"] [data-result=success]`).waitFor();
    assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 42);

    // Without the token the rule is read-only; a wrong token is refused and said so.
    assert.equal(await page.locator('[data-testid=overflow-toggle-b2g]').count(), 0);
    await page.locator('[data-testid=overflow-b2g]').waitFor();
    await page.fill('[data-testid=admin-token]', 'not-the-token');
    await page.click('[data-testid=admin-unlock]');
    await page.click('[data-testid=overflow-toggle-b2g]');
    await page.locator('[data-testid=rule-message].error', { hasText: 'wrong admin token' }).waitFor();
    assert.equal((await farm.api<{ rules: Record<string, { enabled: boolean }> }>('/api/rules')).rules.b2g!.enabled, true);

    await page.fill('[data-testid=admin-token]', ADMIN);
    await page.click('[data-testid=admin-unlock]');
    await page.locator('[data-testid=admin-state]', { hasText: 'unlocked' }).waitFor();
    await page.click('[data-testid=overflow-toggle-b2g]');
    await page.locator('[data-testid=rule-message]', { hasText: 'b2g: overflow off' }).waitFor();
    assert.equal((await farm.api<{ rules: Record<string, { enabled: boolean }> }>('/api/rules')).rules.b2g!.enabled, false);
    assert.equal(await page.locator('[data-testid=overflow-toggle-b2g]').isChecked(), false);

    // The charts draw from recorded samples once there are some.
    await page.locator('#chart-backlog svg path[data-series=b2g]').waitFor({ state: 'attached' });

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  });
});

/**
 * The overview at 1400x1000, as a newcomer opens it on a laptop: a pool of three instances,
 * five agents (some with long names) and more builds than one page shows.
 */
describe('dashboard in a real browser: the overview fits one screen', function () {
  this.timeout(90_000);
  let farm: TestFarm;
  let browser: Browser;
  let page: Page;
  const jobs: string[] = [];
  let casDir = '';

  before(async function () {
    browser = await launchChromium(this);
    farm = await new TestFarm(
      farmConfigRaw({
        adminToken: ADMIN,
        jobTypes: { b2g: { attempts: 2, overflow: { pool: 'cloud', minBacklog: 50 } }, linux64: { attempts: 2 } },
        pools: { cloud: { provider: 'local', maxInstances: 3, local: { preCreated: 3 } } },
        dashboard: { sampleSec: 1 },
        cas: { dir: (casDir = mkdtempSync(join(tmpdir(), 'spillway-dash-cas-'))), anonymous: 'read-write' },
      }),
      // Never run: the backlog stays under 50, so the three instances stay suspended.
      { agentCommand: [process.execPath, CLI] },
    ).start();
    await farm.agent({ name: 'rack-7', jobTypes: ['b2g'], location: 'onprem', executors: 2 });
    await farm.agent({ name: 'rack-8-with-a-rather-long-hostname.build.example.org', jobTypes: ['b2g', 'linux64'], location: 'onprem' });
    await farm.agent({ name: 'rack-9', jobTypes: ['linux64'], location: 'onprem' });
    await farm.agent({ name: 'ec2-builder', jobTypes: ['linux64'], location: 'cloud', instanceId: 'i-0123456789abcdef0' });
    await farm.agent({ name: 'ec2-builder-2', jobTypes: ['linux64'], location: 'cloud', instanceId: 'i-0fedcba9876543210' });
    for (let i = 0; i < 60; i++) jobs.push(await farm.submit({ type: i % 2 ? 'b2g' : 'linux64', shell: i % 9 === 4 ? 'exit 3' : 'true' }));
    await Promise.all(jobs.map((j) => farm.finished(j)));
    // Three cache reads: two hits of one blob and a miss.
    const blob = Buffer.from('a cached object file');
    const hash = createHash('sha256').update(blob).digest('hex');
    assert.equal((await fetch(`${farm.addr.httpUrl}/cas/${hash}`, { method: 'PUT', body: blob })).status, 200);
    for (const h of [hash, hash, 'e'.repeat(64)]) await fetch(`${farm.addr.httpUrl}/cas/${h}`);
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  });

  after(async () => {
    await browser?.close();
    await farm?.stop();
    if (casDir) rmSync(casDir, { recursive: true, force: true });
  });

  it('shows the summary, queues, pools and agents side by side and the newest builds without scrolling; names never wrap', async () => {
    await page.goto(`${farm.addr.httpUrl}/`);
    await page.locator('[data-testid=live].on').waitFor();
    await page.locator('#pools tr[data-instance]').first().waitFor();
    await page.locator('#agents tr[data-agent="ec2-builder-2"]').waitFor();
    await page.locator(`#builds tr[data-job="${jobs[59]}"]`).waitFor();
    // Written first, so a failing check below can be looked at.
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1400x1000.png') });
    assert.equal(await page.evaluate(() => (globalThis as unknown as { scrollY: number }).scrollY), 0);
    // Rows are rendered anew on each push: a box is read again if its row was just replaced.
    const within = async (sel: string) => {
      let box: { x: number; y: number; width: number; height: number } | null = null;
      await waitUntil(async () => (box = await page.locator(sel).boundingBox().catch(() => null)) !== null).catch(() => assert.fail(`${sel} is not shown`));
      const b = box!;
      assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= 1400 && b.y + b.height <= 1000, `${sel} at ${JSON.stringify(b)} is not within 1400x1000`);
      return b;
    };
    const summary = await within('[data-testid=summary]');
    await within('[data-testid=summary-cache]');
    assert.match(await page.locator('[data-testid=summary-cache]').innerText(), /cache reads\s+67% hit \(memory 2 · disk 0 · missed 1\)/);
    const queues = await within('[data-testid=queues-panel]');
    const pools = await within('[data-testid=pools-panel]');
    const agents = await within('[data-testid=agents-panel]');
    // Side by side: one row, left to right, under the summary.
    assert.ok(queues.x < pools.x && pools.x < agents.x, 'queues, pools, agents left to right');
    for (const b of [queues, pools, agents]) assert.ok(Math.abs(b.y - queues.y) < 2 && b.y > summary.y);
    for (let i = 1; i <= 3; i++) await within(`#pools tr[data-instance]:nth-child(${i})`);
    for (const name of ['rack-7', 'rack-9', 'ec2-builder', 'ec2-builder-2']) await within(`#agents tr[data-agent="${name}"]`);
    // The newest builds follow above the fold: at least ten rows.
    for (let i = 1; i <= 10; i++) await within(`#builds tbody tr:nth-child(${i})`);
    assert.match(await page.locator('[data-testid=summary]').innerText(), /waiting\s+0[\s\S]*running on-prem\s+0[\s\S]*running cloud\s+0[\s\S]*instances\s+3 suspended[\s\S]*today's cloud cost/);

    // Names on one line: every row of the agents and builds tables is one text line high.
    const heights = await page.locator('#agents tbody tr, #builds tbody tr, #pools tbody tr').evaluateAll((rows) => rows.map((r) => r.getBoundingClientRect().height));
    assert.ok(Math.max(...heights) < 30, `a row wraps: heights ${[...new Set(heights)].join(', ')}`);
    // A long name is cut, the whole of it on hover.
    const long = page.locator('#agents tr[data-agent^="rack-8"] td').first();
    assert.equal(await long.getAttribute('title'), 'rack-8-with-a-rather-long-hostname.build.example.org');
    const cloudBadge = page.locator('#agents tr[data-agent="ec2-builder"] .badge-cloud');
    assert.equal(await cloudBadge.getAttribute('title'), 'i-0123456789abcdef0');
    assert.ok(!(await cloudBadge.innerText()).includes('i-0123456789abcdef0'), 'the long instance id is shortened');
  });

  it('pages to older builds on demand and filters by type, location and result', async () => {
    await page.goto(`${farm.addr.httpUrl}/`);
    const rows = page.locator('#builds tbody tr[data-job]');
    await waitUntil(async () => (await rows.count()) === 50).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${await rows.count()} rows`);
    });
    await page.click('[data-testid=builds-older]');
    await waitUntil(async () => (await rows.count()) === 60).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${await rows.count()} rows, ${await page.locator('[data-testid=builds-state]').innerText()}`);
    });
    assert.equal(await page.locator(`#builds tr[data-job="${jobs[0]}"]`).count(), 1);
    await page.locator('[data-testid=builds-state]', { hasText: 'no older builds' }).waitFor();

    await page.selectOption('[data-testid=filter-result]', 'failure');
    const failures = jobs.filter((_, i) => i % 9 === 4);
    await waitUntil(async () => (await rows.count()) === failures.length);
    assert.deepEqual((await rows.evaluateAll((r) => r.map((e) => e.getAttribute('data-job')))).sort(), [...failures].sort());
    await page.selectOption('[data-testid=filter-result]', '');
    // Which agent took a linux64 build is up to dispatch; b2g builds ran on-prem only (no cloud agent serves b2g).
    await page.selectOption('[data-testid=filter-location]', 'onprem');
    await page.selectOption('[data-testid=filter-type]', 'linux64');
    await waitUntil(async () => (await rows.count()) > 0 && (await page.locator('#builds tbody tr[data-location=cloud]').count()) === 0 && !(await page.locator('#builds tbody').innerText()).includes('b2g'));
    assert.ok((await page.locator('#builds tbody tr[data-job] td:nth-child(2)').allInnerTexts()).every((t) => t === 'linux64'));
    await page.selectOption('[data-testid=filter-location]', 'cloud');
    await page.selectOption('[data-testid=filter-type]', 'b2g');
    await page.locator('#builds tbody td', { hasText: 'no builds match' }).waitFor();
    // A row links to its job page.
    await page.selectOption('[data-testid=filter-type]', '');
    await page.selectOption('[data-testid=filter-location]', '');
    await page.locator(`#builds tr[data-job="${jobs[59]}"] [data-testid=job-link]`).click();
    await page.waitForURL(`**/jobs/${jobs[59]}?type=${59 % 2 ? 'b2g' : 'linux64'}`);
    await page.locator('#attempts tbody tr[data-attempt="1"]').waitFor();
  });

  it('charts break their lines at gaps, tell p50 from p90 in the legend, and say so when empty', async () => {
    await page.goto(`${farm.addr.httpUrl}/`);
    const drawn = await page.evaluate(() => {
      const charts = (globalThis as unknown as { spillwayCharts: { lines: (c: unknown, s: unknown[], f: (v: number) => string, o?: unknown) => void } }).spillwayCharts;
      const doc = (globalThis as unknown as { document: { createElement(t: string): { querySelector(s: string): { getAttribute(a: string): string | null } | null; querySelectorAll(s: string): ArrayLike<{ getAttribute(a: string): string | null }>; textContent: string } } }).document;
      const box = doc.createElement('div');
      charts.lines(box, [
        // 1 s samples with a 5 s hole, and a missing value (no build started) after it.
        { name: 'on-prem p50', points: [[1000, 1], [2000, 2], [3000, 1], [8000, 2], [9000, null], [10000, 3], [11000, 2]] },
        { name: 'on-prem p90', dashed: true, points: [[1000, 3], [2000, 4]] },
      ], (v: number) => String(v), { gapMs: 1500 });
      const path = box.querySelector('path[data-series="on-prem p50"]')!.getAttribute('d')!;
      const empty = doc.createElement('div');
      charts.lines(empty, [{ name: 'x', points: [] }], String);
      const nulls = doc.createElement('div');
      charts.lines(nulls, [{ name: 'x', points: [[1, null]] }], String, { emptyText: 'no builds started yet' });
      return {
        moves: (path.match(/M/g) ?? []).length,
        dots: box.querySelectorAll('circle[data-series="on-prem p50"]').length,
        p50Dash: box.querySelector('[data-legend="on-prem p50"] line')!.getAttribute('stroke-dasharray'),
        p90Dash: box.querySelector('[data-legend="on-prem p90"] line')!.getAttribute('stroke-dasharray'),
        empty: empty.textContent,
        nulls: nulls.textContent,
      };
    });
    // Runs: 1-3 s, the lone 8 s sample (gap before, null after), 10-11 s.
    assert.equal(drawn.moves, 3);
    assert.equal(drawn.dots, 1);
    assert.equal(drawn.p50Dash, 'none');
    assert.equal(drawn.p90Dash, '4 3');
    assert.equal(drawn.empty, 'no samples yet');
    assert.equal(drawn.nulls, 'no builds started yet');
    // On the page: the wait chart's legend has both percentiles, told apart.
    await page.locator('#chart-waits [data-legend="on-prem p90"] line[stroke-dasharray="4 3"]').waitFor({ state: 'attached' });
    await page.locator('#chart-waits [data-legend="on-prem p50"] line[stroke-dasharray="none"]').waitFor({ state: 'attached' });
  });
});

describe('dashboard in a real browser: an agent short of disk', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let browser: Browser;

  before(async function () {
    browser = await launchChromium(this);
    farm = await new TestFarm(farmConfigRaw({ dashboard: { sampleSec: 1 } })).start();
  });

  after(async () => {
    await browser?.close();
    await farm?.stop();
  });

  it('marks it "disk full" with its free space while it takes no work, and clears the mark once space is back', async () => {
    const agent = await RawAgent.connect(farm.addr.agentUrl, { name: 'rack-9', jobTypes: ['b2g'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${farm.addr.httpUrl}/`);
      const row = page.locator('#agents tr[data-agent="rack-9"]');
      await row.waitFor();
      assert.equal(await row.locator('[data-disk-full]').count(), 0);
      agent.send({ type: 'disk', full: true, path: '/var/lib/spillway', freeMb: 312, minFreeMb: 1024 });
      await row.locator('[data-disk-full]').waitFor();
      assert.match(await row.innerText(), /disk full: 312 MiB free < 1024 MiB/);
      agent.send({ type: 'disk', full: false, path: '/var/lib/spillway', freeMb: 4096, minFreeMb: 1024 });
      await row.locator('[data-disk-full]').waitFor({ state: 'detached' });
    } finally {
      agent.ws.terminate();
    }
  });
});
