import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** execFile as a promise, for bazel and the compilers the Bazel suites drive. */
export const run = promisify(execFile);

/**
 * Skips the calling suite (with the reason, and what to install) unless Debian's Bazel and a C
 * compiler are on PATH. Call it first in a `before` hook, as `await needBazel(this)`.
 */
export async function needBazel(ctx: Mocha.Context): Promise<void> {
  try {
    await run('bazel', ['--version']);
    await run('cc', ['--version']);
  } catch (err) {
    console.log(`      skipped: bazel and a C compiler are needed (${(err as Error).message}); apt-get install -y bazel-bootstrap gcc`);
    ctx.skip();
  }
}
