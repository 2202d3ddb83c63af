import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM = process.env.SPILLWAY_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Debian's headless Chromium, or the suite skipped when it is missing and
 * SPILLWAY_SKIP_BROWSER=1 (else it fails saying what to install). Call from a `before` hook.
 */
export async function launchChromium(ctx: Mocha.Context): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    if (process.env.SPILLWAY_SKIP_BROWSER === '1') {
      console.log(`    (skipped: ${CHROMIUM} is missing and SPILLWAY_SKIP_BROWSER=1)`);
      ctx.skip();
    }
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (.ci/run does), or set SPILLWAY_SKIP_BROWSER=1`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    // As root in a container, and with no internet: Chromium's own background traffic is off.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
