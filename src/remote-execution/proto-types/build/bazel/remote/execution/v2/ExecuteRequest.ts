// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Digest as _build_bazel_remote_execution_v2_Digest, Digest__Output as _build_bazel_remote_execution_v2_Digest__Output } from '../../../../../build/bazel/remote/execution/v2/Digest';
import type { ExecutionPolicy as _build_bazel_remote_execution_v2_ExecutionPolicy, ExecutionPolicy__Output as _build_bazel_remote_execution_v2_ExecutionPolicy__Output } from '../../../../../build/bazel/remote/execution/v2/ExecutionPolicy';
import type { ResultsCachePolicy as _build_bazel_remote_execution_v2_ResultsCachePolicy, ResultsCachePolicy__Output as _build_bazel_remote_execution_v2_ResultsCachePolicy__Output } from '../../../../../build/bazel/remote/execution/v2/ResultsCachePolicy';
import type { _build_bazel_remote_execution_v2_DigestFunction_Value, _build_bazel_remote_execution_v2_DigestFunction_Value__Output } from '../../../../../build/bazel/remote/execution/v2/DigestFunction';

export interface ExecuteRequest {
  'instanceName'?: (string);
  'skipCacheLookup'?: (boolean);
  'actionDigest'?: (_build_bazel_remote_execution_v2_Digest | null);
  'executionPolicy'?: (_build_bazel_remote_execution_v2_ExecutionPolicy | null);
  'resultsCachePolicy'?: (_build_bazel_remote_execution_v2_ResultsCachePolicy | null);
  'digestFunction'?: (_build_bazel_remote_execution_v2_DigestFunction_Value);
  'inlineStdout'?: (boolean);
  'inlineStderr'?: (boolean);
  'inlineOutputFiles'?: (string)[];
}

export interface ExecuteRequest__Output {
  'instanceName': (string);
  'skipCacheLookup': (boolean);
  'actionDigest': (_build_bazel_remote_execution_v2_Digest__Output | null);
  'executionPolicy': (_build_bazel_remote_execution_v2_ExecutionPolicy__Output | null);
  'resultsCachePolicy': (_build_bazel_remote_execution_v2_ResultsCachePolicy__Output | null);
  'digestFunction': (_build_bazel_remote_execution_v2_DigestFunction_Value__Output);
  'inlineStdout': (boolean);
  'inlineStderr': (boolean);
  'inlineOutputFiles': (string)[];
}
