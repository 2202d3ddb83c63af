import type { CallAuth } from './call-auth';
import { unary } from './grpc-handlers';
import type { Logger } from '../lib';
import type { CapabilitiesHandlers, ServerCapabilities } from './reapi-types';

export interface CapabilitiesServiceDeps {
  auth: CallAuth;
  maxBatchBytes: number;
  /** Whether an Execution service is registered on the same server (asked per call). */
  executionEnabled: () => boolean;
  log: Logger;
}

/** Capabilities.GetCapabilities: SHA-256 only, the batch limit, AC writes for write tokens, REAPI 2.0 to 2.3. */
export function capabilitiesService(deps: CapabilitiesServiceDeps): CapabilitiesHandlers {
  return {
    GetCapabilities: unary(deps.log, 'GetCapabilities', async (call): Promise<ServerCapabilities> => {
      deps.auth.require(call.metadata, 'read');
      return {
        cacheCapabilities: {
          digestFunctions: ['SHA256'],
          actionCacheUpdateCapabilities: { updateEnabled: deps.auth.mayWrite(call.metadata) },
          cachePriorityCapabilities: { priorities: [{ minPriority: 0, maxPriority: 0 }] },
          maxBatchTotalSizeBytes: deps.maxBatchBytes,
          // Input trees with absolute symlinks are refused when materialised (src/cas merkle-tree).
          symlinkAbsolutePathStrategy: 'DISALLOWED',
          supportedCompressors: [],
          supportedBatchUpdateCompressors: [],
        },
        executionCapabilities: {
          digestFunction: 'SHA256',
          digestFunctions: ['SHA256'],
          execEnabled: deps.executionEnabled(),
          executionPriorityCapabilities: { priorities: [{ minPriority: 0, maxPriority: 0 }] },
        },
        deprecatedApiVersion: { major: 2, minor: 0, patch: 0 },
        lowApiVersion: { major: 2, minor: 0, patch: 0 },
        highApiVersion: { major: 2, minor: 3, patch: 0 },
      };
    }),
  };
}
