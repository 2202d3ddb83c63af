/**
 * The CAS server of bench/cas.ts, run as its own process so the benchmark's clients do not share
 * its event loop: a DiskStore and ActionCache under the root given as argv[2], and the CAS routes
 * on a fastify server at 127.0.0.1 port 0, registered the way the master does it. Prints
 * `listening http://127.0.0.1:<port>` once it accepts requests.
 *
 *   node dist/bench/cas-server.js ROOT MAX_BYTES MAX_BLOB_BYTES [MEMORY_TIER_BYTES]
 *
 * With MEMORY_TIER_BYTES > 0 the store is a MemoryTier in front of the DiskStore, its hits
 * answered by CasHotPath before fastify, as the master composes it with `cas.memoryCacheMb`.
 *
 * Stops on SIGTERM/SIGINT, and on its own if the bench that started it goes away.
 */
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { ActionCache, CasAuth, CasHotPath, DiskStore, MemoryTier, casRoutes, type BlobStore } from '../src/cas';
import { createLogger, systemClock } from '../src/lib';

async function main(): Promise<void> {
  const [root, maxBytesArg, maxBlobArg, memoryArg] = process.argv.slice(2);
  if (!root || !maxBytesArg || !maxBlobArg) throw new Error('usage: cas-server ROOT MAX_BYTES MAX_BLOB_BYTES');
  // Warnings and errors (cas.http-error, cas.full...) go to stderr, i.e. the bench's log file.
  const log = createLogger({ level: 'warn', format: 'json' });
  const disk = await DiskStore.open({ root, maxBytes: Number(maxBytesArg), clock: systemClock, log });
  const memory = Number(memoryArg ?? 0);
  const tier = memory > 0 ? new MemoryTier({ inner: disk, maxBytes: memory, log }) : undefined;
  const store: BlobStore = tier ?? disk;
  const actionCache = await ActionCache.open({ root, store });
  // The master's composition (src/cli/cas-service.ts): hot hits answered before fastify.
  const hot = tier && new CasHotPath({ blobs: tier, auth: new CasAuth(undefined) });
  const app = Fastify({ bodyLimit: Number(maxBlobArg), keepAliveTimeout: 60_000, ...(hot && { serverFactory: hot.serverFactory() }) });
  await app.register(casRoutes, { store, actionCache, maxBlobBytes: Number(maxBlobArg), log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;

  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    const hard = setTimeout(() => process.exit(code), 5000);
    hard.unref();
    void app
      .close()
      .then(() => disk.close())
      .finally(() => process.exit(code));
  };
  process.once('SIGTERM', () => stop(0));
  process.once('SIGINT', () => stop(0));
  // Orphaned (the bench was SIGKILLed): reparented, so stop rather than linger.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop(2);
  }, 500).unref();

  process.stdout.write(`listening http://127.0.0.1:${port}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`cas-server failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
