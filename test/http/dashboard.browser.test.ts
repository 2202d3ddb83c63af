import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';

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
