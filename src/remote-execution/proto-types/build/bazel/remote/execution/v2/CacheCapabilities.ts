// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { _build_bazel_remote_execution_v2_DigestFunction_Value, _build_bazel_remote_execution_v2_DigestFunction_Value__Output } from '../../../../../build/bazel/remote/execution/v2/DigestFunction';
import type { ActionCacheUpdateCapabilities as _build_bazel_remote_execution_v2_ActionCacheUpdateCapabilities, ActionCacheUpdateCapabilities__Output as _build_bazel_remote_execution_v2_ActionCacheUpdateCapabilities__Output } from '../../../../../build/bazel/remote/execution/v2/ActionCacheUpdateCapabilities';
import type { PriorityCapabilities as _build_bazel_remote_execution_v2_PriorityCapabilities, PriorityCapabilities__Output as _build_bazel_remote_execution_v2_PriorityCapabilities__Output } from '../../../../../build/bazel/remote/execution/v2/PriorityCapabilities';
import type { _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value, _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value__Output } from '../../../../../build/bazel/remote/execution/v2/SymlinkAbsolutePathStrategy';
import type { _build_bazel_remote_execution_v2_Compressor_Value, _build_bazel_remote_execution_v2_Compressor_Value__Output } from '../../../../../build/bazel/remote/execution/v2/Compressor';
import type { Long } from '@grpc/proto-loader';

export interface CacheCapabilities {
  'digestFunctions'?: (_build_bazel_remote_execution_v2_DigestFunction_Value)[];
  'actionCacheUpdateCapabilities'?: (_build_bazel_remote_execution_v2_ActionCacheUpdateCapabilities | null);
  'cachePriorityCapabilities'?: (_build_bazel_remote_execution_v2_PriorityCapabilities | null);
  'maxBatchTotalSizeBytes'?: (number | string | Long);
  'symlinkAbsolutePathStrategy'?: (_build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value);
  'supportedCompressors'?: (_build_bazel_remote_execution_v2_Compressor_Value)[];
  'supportedBatchUpdateCompressors'?: (_build_bazel_remote_execution_v2_Compressor_Value)[];
}

export interface CacheCapabilities__Output {
  'digestFunctions': (_build_bazel_remote_execution_v2_DigestFunction_Value__Output)[];
  'actionCacheUpdateCapabilities': (_build_bazel_remote_execution_v2_ActionCacheUpdateCapabilities__Output | null);
  'cachePriorityCapabilities': (_build_bazel_remote_execution_v2_PriorityCapabilities__Output | null);
  'maxBatchTotalSizeBytes': (number);
  'symlinkAbsolutePathStrategy': (_build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value__Output);
  'supportedCompressors': (_build_bazel_remote_execution_v2_Compressor_Value__Output)[];
  'supportedBatchUpdateCompressors': (_build_bazel_remote_execution_v2_Compressor_Value__Output)[];
}
