// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Digest as _build_bazel_remote_execution_v2_Digest, Digest__Output as _build_bazel_remote_execution_v2_Digest__Output } from '../../../../../build/bazel/remote/execution/v2/Digest';
import type { NodeProperties as _build_bazel_remote_execution_v2_NodeProperties, NodeProperties__Output as _build_bazel_remote_execution_v2_NodeProperties__Output } from '../../../../../build/bazel/remote/execution/v2/NodeProperties';

export interface FileNode {
  'name'?: (string);
  'digest'?: (_build_bazel_remote_execution_v2_Digest | null);
  'isExecutable'?: (boolean);
  'nodeProperties'?: (_build_bazel_remote_execution_v2_NodeProperties | null);
}

export interface FileNode__Output {
  'name': (string);
  'digest': (_build_bazel_remote_execution_v2_Digest__Output | null);
  'isExecutable': (boolean);
  'nodeProperties': (_build_bazel_remote_execution_v2_NodeProperties__Output | null);
}
