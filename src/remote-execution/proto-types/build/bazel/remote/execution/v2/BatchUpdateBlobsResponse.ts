// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Digest as _build_bazel_remote_execution_v2_Digest, Digest__Output as _build_bazel_remote_execution_v2_Digest__Output } from '../../../../../build/bazel/remote/execution/v2/Digest';
import type { Status as _google_rpc_Status, Status__Output as _google_rpc_Status__Output } from '../../../../../google/rpc/Status';

export interface _build_bazel_remote_execution_v2_BatchUpdateBlobsResponse_Response {
  'digest'?: (_build_bazel_remote_execution_v2_Digest | null);
  'status'?: (_google_rpc_Status | null);
}

export interface _build_bazel_remote_execution_v2_BatchUpdateBlobsResponse_Response__Output {
  'digest': (_build_bazel_remote_execution_v2_Digest__Output | null);
  'status': (_google_rpc_Status__Output | null);
}

export interface BatchUpdateBlobsResponse {
  'responses'?: (_build_bazel_remote_execution_v2_BatchUpdateBlobsResponse_Response)[];
}

export interface BatchUpdateBlobsResponse__Output {
  'responses': (_build_bazel_remote_execution_v2_BatchUpdateBlobsResponse_Response__Output)[];
}
