// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Digest as _build_bazel_remote_execution_v2_Digest, Digest__Output as _build_bazel_remote_execution_v2_Digest__Output } from '../../../../../build/bazel/remote/execution/v2/Digest';
import type { _build_bazel_remote_execution_v2_DigestFunction_Value, _build_bazel_remote_execution_v2_DigestFunction_Value__Output } from '../../../../../build/bazel/remote/execution/v2/DigestFunction';

export interface GetActionResultRequest {
  'instanceName'?: (string);
  'actionDigest'?: (_build_bazel_remote_execution_v2_Digest | null);
  'inlineStdout'?: (boolean);
  'inlineStderr'?: (boolean);
  'inlineOutputFiles'?: (string)[];
  'digestFunction'?: (_build_bazel_remote_execution_v2_DigestFunction_Value);
}

export interface GetActionResultRequest__Output {
  'instanceName': (string);
  'actionDigest': (_build_bazel_remote_execution_v2_Digest__Output | null);
  'inlineStdout': (boolean);
  'inlineStderr': (boolean);
  'inlineOutputFiles': (string)[];
  'digestFunction': (_build_bazel_remote_execution_v2_DigestFunction_Value__Output);
}
