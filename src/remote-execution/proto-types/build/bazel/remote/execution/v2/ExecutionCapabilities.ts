// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { _build_bazel_remote_execution_v2_DigestFunction_Value, _build_bazel_remote_execution_v2_DigestFunction_Value__Output } from '../../../../../build/bazel/remote/execution/v2/DigestFunction';
import type { PriorityCapabilities as _build_bazel_remote_execution_v2_PriorityCapabilities, PriorityCapabilities__Output as _build_bazel_remote_execution_v2_PriorityCapabilities__Output } from '../../../../../build/bazel/remote/execution/v2/PriorityCapabilities';

export interface ExecutionCapabilities {
  'digestFunction'?: (_build_bazel_remote_execution_v2_DigestFunction_Value);
  'execEnabled'?: (boolean);
  'executionPriorityCapabilities'?: (_build_bazel_remote_execution_v2_PriorityCapabilities | null);
  'supportedNodeProperties'?: (string)[];
  'digestFunctions'?: (_build_bazel_remote_execution_v2_DigestFunction_Value)[];
}

export interface ExecutionCapabilities__Output {
  'digestFunction': (_build_bazel_remote_execution_v2_DigestFunction_Value__Output);
  'execEnabled': (boolean);
  'executionPriorityCapabilities': (_build_bazel_remote_execution_v2_PriorityCapabilities__Output | null);
  'supportedNodeProperties': (string)[];
  'digestFunctions': (_build_bazel_remote_execution_v2_DigestFunction_Value__Output)[];
}
