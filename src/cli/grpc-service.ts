import { readFileSync } from 'node:fs';
import type { Config } from '../config';
import type { Clock, Logger } from '../lib';
import { BATCH_OVERHEAD_BYTES, CallAuth, cacheServices, EXECUTION_SERVICE, ReapiServer, type CompleteResults, type ReapiService } from '../remote-execution';
import type { CasService } from './cas-service';

/**
 * Starts the REAPI gRPC listener on the CAS the HTTP routes serve, with the cache's tokens.
 * `more` are further services on the same port (the Execution service); Capabilities reports
 * execution enabled when one of them is Execution. Undefined without a CAS or with
 * `grpc.enabled: false`. `completeResults` is shared with the Execution service and must hear
 * of every blob that leaves `cas` ({@link wireCompleteResults}).
 */
export async function openGrpc(
  config: Config,
  cas: CasService | undefined,
  clock: Clock,
  log: Logger,
  completeResults: CompleteResults,
  more: readonly ReapiService[] = [],
): Promise<ReapiServer | undefined> {
  const g = config.grpc;
  if (!cas || !g.enabled) return undefined;
  const grpcLog = log.child({ component: 'grpc' });
  const server = new ReapiServer({
    host: g.host,
    port: g.port,
    ...(g.tls && { tls: { cert: readFileSync(g.tls.cert), key: readFileSync(g.tls.key) } }),
    maxMessageBytes: g.maxBatchBytes + BATCH_OVERHEAD_BYTES,
    clock,
    log: grpcLog,
  });
  const services = cacheServices({
    store: cas.routes.store,
    actionCache: cas.routes.actionCache,
    auth: new CallAuth(cas.routes.auth),
    completeResults,
    maxBatchBytes: g.maxBatchBytes,
    maxBlobBytes: cas.routes.maxBlobBytes,
    log: grpcLog,
    executionEnabled: () => server.hasService(EXECUTION_SERVICE),
  });
  for (const s of [...services, ...more]) server.addService(s);
  await server.start();
  return server;
}

/**
 * Drops remembered complete results whenever a blob leaves the disk store (deleted, evicted,
 * corrupt, its file gone), whichever process or tier removed it: the disk store is the one
 * authority on what exists, and cache workers' removals go through it.
 */
export function wireCompleteResults(cas: CasService, completeResults: CompleteResults): void {
  cas.disk.onRemoved((hash) => completeResults.removed(hash));
}
