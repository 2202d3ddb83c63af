/**
 * `Promise.all(items.map(fn))` with at most `limit` calls in flight, results in input order.
 * A batch call may carry tens of thousands of tiny blobs; each store write holds a temp file,
 * so they must not all open at once.
 */
export async function boundedMap<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
