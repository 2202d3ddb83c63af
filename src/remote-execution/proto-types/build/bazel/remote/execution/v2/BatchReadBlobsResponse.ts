// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Digest as _build_bazel_remote_execution_v2_Digest, Digest__Output as _build_bazel_remote_execution_v2_Digest__Output } from '../../../../../build/bazel/remote/execution/v2/Digest';
import type { _build_bazel_remote_execution_v2_Compressor_Value, _build_bazel_remote_execution_v2_Compressor_Value__Output } from '../../../../../build/bazel/remote/execution/v2/Compressor';
import type { Status as _google_rpc_Status, Status__Output as _google_rpc_Status__Output } from '../../../../../google/rpc/Status';

export interface _build_bazel_remote_execution_v2_BatchReadBlobsResponse_Response {
  'digest'?: (_build_bazel_remote_execution_v2_Digest | null);
  'data'?: (Buffer | Uint8Array | string);
  'compressor'?: (_build_bazel_remote_execution_v2_Compressor_Value);
  'status'?: (_google_rpc_Status | null);
}

export interface _build_bazel_remote_execution_v2_BatchReadBlobsResponse_Response__Output {
  'digest': (_build_bazel_remote_execution_v2_Digest__Output | null);
  'data': (Buffer);
  'compressor': (_build_bazel_remote_execution_v2_Compressor_Value__Output);
  'status': (_google_rpc_Status__Output | null);
}

export interface BatchReadBlobsResponse {
  'responses'?: (_build_bazel_remote_execution_v2_BatchReadBlobsResponse_Response)[];
}

export interface BatchReadBlobsResponse__Output {
  'responses': (_build_bazel_remote_execution_v2_BatchReadBlobsResponse_Response__Output)[];
}
