/**
 * Why this Node.js cannot run spillway, or undefined when it can. `range` is package.json's
 * `engines.node`, a `>=MAJOR.MINOR.PATCH` bound. The bound is 20.19.0: the oldest release the
 * whole dependency tree accepts (mocha 12 and its chokidar 5 ask for 20.19; the code itself
 * needs 20.3 for AbortSignal.any), and the one the README states. `cookie` 2 (fastify's
 * light-my-request) asks for 22 but is held at 1.x by package.json's `overrides`.
 */
export function nodeVersionProblem(running: string, range: string): string | undefined {
  const min = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(range.trim());
  if (!min) return `package.json engines.node "${range}" is not a ">=X.Y.Z" bound`;
  const have = /^v?(\d+)\.(\d+)\.(\d+)/.exec(running);
  if (!have) return `cannot read the Node.js version "${running}"`;
  for (let i = 1; i <= 3; i++) {
    const d = Number(have[i]) - Number(min[i]);
    if (d > 0) return undefined;
    if (d < 0) return `Node.js ${min.slice(1).join('.')} or later is required, this is ${running.replace(/^v/, '')} (see the README's Quick start)`;
  }
  return undefined;
}
