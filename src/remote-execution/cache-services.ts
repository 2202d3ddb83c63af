import { actionCacheService } from './action-cache-service';
import { byteStreamService } from './bytestream-service';
import { capabilitiesService } from './capabilities-service';
import { passEncoded } from './encoded-message';
import { reapiProtos } from './reapi-protos';
import type { ReapiService } from './reapi-server';
import type { CacheServiceDeps } from './cache-deps';
import { storageService } from './storage-service';

/** The full name of the Execution service; Capabilities reports exec_enabled while it is registered. */
export const EXECUTION_SERVICE = 'build.bazel.remote.execution.v2.Execution';

/**
 * The cache half of REAPI v2: Capabilities, ContentAddressableStorage, ByteStream and
 * ActionCache, all on the given store and action cache.
 */
export function cacheServices(deps: CacheServiceDeps & { executionEnabled: () => boolean }): ReapiService[] {
  const { grpc } = reapiProtos();
  const v2 = grpc.build.bazel.remote.execution.v2;
  return [
    { definition: v2.Capabilities.service, implementation: capabilitiesService(deps) },
    { definition: v2.ContentAddressableStorage.service, implementation: storageService(deps) },
    { definition: passEncoded(grpc.google.bytestream.ByteStream.service, ['Read']), implementation: byteStreamService(deps) },
    { definition: passEncoded(v2.ActionCache.service, ['GetActionResult']), implementation: actionCacheService(deps) },
  ];
}

/** gRPC framing and the other fields of a batch message on top of max_batch_total_size_bytes. */
export const BATCH_OVERHEAD_BYTES = 1024 * 1024;
