import { join } from 'node:path';
import { ActionCache, DiskStore, type CasRoutesOptions } from '../cas';
import type { Config } from '../config';
import type { Clock, Logger } from '../lib';

/** The master's CAS and action cache, with the options its HTTP routes are registered with. */
export interface CasService {
  routes: CasRoutesOptions;
  close(): Promise<void>;
}

/** Opens the store when the config names a CAS dir; the index is flushed periodically. */
export async function openCas(config: Config, clock: Clock, log: Logger): Promise<CasService | undefined> {
  const c = config.cas;
  if (!c.dir) return undefined;
  const casLog = log.child({ component: 'cas' });
  const store = await DiskStore.open({ root: c.dir, maxBytes: c.maxSizeMb * 1024 * 1024, clock, log: casLog });
  const actionCache = await ActionCache.open({ root: join(c.dir, 'action-cache'), store });
  // Access times live in memory between snapshots; flushing bounds what a crash forgets.
  const flusher = setInterval(() => void store.flush().catch((err: unknown) => casLog.warn('cas.http-error', { error: err })), 60_000);
  flusher.unref();
  return {
    routes: {
      store,
      actionCache,
      maxBlobBytes: c.maxBlobMb * 1024 * 1024,
      log: casLog,
      ...(c.prefix && { prefix: c.prefix }),
      auth: { tokens: [...c.tokens], readTokens: [...c.readTokens], anonymous: c.anonymous },
    },
    close: async () => {
      clearInterval(flusher);
      await store.close();
    },
  };
}
