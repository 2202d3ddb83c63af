import { strict as assert } from 'node:assert';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const READ = 'page-read-token-0123456789';
const ADMIN = 'page-admin-token-0123456789';

/**
 * The dashboard of a master with a read token, in real headless Chromium: the browser asks
 * for the token (Basic, the token as password) and then sends it with every request of the
 * page, the event stream included; nothing is put in the URL.
 */
describe('dashboard in a real browser, behind a read token', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let browser: Browser;

  before(async function () {
    browser = await launchChromium(this);
    farm = await new TestFarm(
      farmConfigRaw({
        http: { host: '127.0.0.1', port: 0, tokens: { read: [READ], admin: [ADMIN] } },
        jobTypes: { b2g: { attempts: 2, overflow: { pool: 'cloud', minBacklog: 50 } }, linux64: { attempts: 2 } },
        pools: { cloud: { provider: 'local', maxInstances: 1, local: { preCreated: 0 } } },
      }),
    ).start();
    await farm.agent({ name: 'rack-7', jobTypes: ['b2g'], location: 'onprem' });
  });

  after(async () => {
    await browser?.close();
    await farm?.stop();
  });

  it('is refused without the token', async () => {
    // Headless Chromium cannot show the login prompt a 401 with a Basic challenge asks for.
    const page = await browser.newPage();
    await assert.rejects(page.goto(`${farm.addr.httpUrl}/`), /ERR_INVALID_AUTH_CREDENTIALS/);
    await page.close();
    const res = await fetch(`${farm.addr.httpUrl}/`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="spillway"/);
  });

  it('works with the read token: live builds over the event stream, and rules change with the admin token', async () => {
    const context = await browser.newContext({ httpCredentials: { username: 'ops', password: READ } });
    const page = await context.newPage();
    const job = await farm.submit({ type: 'b2g', shell: 'echo behind a token' });
    await farm.finished(job);
    const res = await page.goto(`${farm.addr.httpUrl}/`);
    assert.equal(res?.status(), 200);
    await page.locator('[data-testid=live].on').waitFor();
    await page.locator(`#builds tr[data-job="${job}"] [data-result=success]`).waitFor();
    // A build finishing now arrives over the (authenticated) event stream.
    const later = await farm.submit({ type: 'b2g', shell: 'echo later' });
    await farm.finished(later);
    await page.locator(`#builds tr[data-job="${later}"] [data-result=success]`).waitFor();

    // The read token cannot change a rule; the admin token in the page's box can.
    await page.fill('[data-testid=admin-token]', READ);
    await page.click('[data-testid=admin-unlock]');
    await page.click('[data-testid=overflow-toggle-b2g]');
    await page.locator('[data-testid=rule-message].error', { hasText: 'a read token cannot change settings' }).waitFor();
    await page.fill('[data-testid=admin-token]', ADMIN);
    await page.click('[data-testid=admin-unlock]');
    await page.click('[data-testid=overflow-toggle-b2g]');
    await page.locator('[data-testid=rule-message]', { hasText: 'b2g: overflow off' }).waitFor();
    assert.equal((await farm.api<{ rules: Record<string, { enabled: boolean }> }>('/api/rules')).rules.b2g!.enabled, false);
    await context.close();
  });
});
