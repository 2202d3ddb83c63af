/**
 * Polls `cond` until it holds. Only for state that has no notification to await (a server's
 * own view, such as CLIENT LIST or PUBSUB NUMSUB, or a file another process writes); anything
 * that emits an event or settles a promise should be awaited instead.
 */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  o: { timeoutMs?: number; everyMs?: number; what?: string } = {},
): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 5_000;
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${o.what ?? 'condition'} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, o.everyMs ?? 10));
  }
}
