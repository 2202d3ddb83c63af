/**
 * A second master in its own process, for the one-waker test: connects, prints `ready`,
 * waits for `go` on stdin (so both processes race at once), calls claimWake(pool, 1) `calls`
 * times concurrently and prints the claimed ids as one JSON array.
 *
 * Usage: node claim-wake-child.js REDIS_URL KEY_PREFIX POOL [CALLS=10]
 */
import { Redis } from 'ioredis';
import { systemClock } from '../../src/lib';
import { InstanceStore } from '../../src/provisioner/instance-store';

async function main(): Promise<void> {
  const [url, prefix, pool, calls = '10'] = process.argv.slice(2);
  if (!url || !prefix || !pool) throw new Error('usage: claim-wake-child REDIS_URL KEY_PREFIX POOL [CALLS]');
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const store = new InstanceStore({ redis, keyPrefix: prefix, clock: systemClock });
  await redis.ping();
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  const claims = await Promise.all(Array.from({ length: Number(calls) }, () => store.claimWake(pool, 1)));
  process.stdout.write(`${JSON.stringify(claims.flat().map((r) => r.id))}\n`);
  await store.close();
  await redis.quit();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
