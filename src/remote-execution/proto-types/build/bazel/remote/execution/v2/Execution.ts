// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ExecuteRequest as _build_bazel_remote_execution_v2_ExecuteRequest, ExecuteRequest__Output as _build_bazel_remote_execution_v2_ExecuteRequest__Output } from '../../../../../build/bazel/remote/execution/v2/ExecuteRequest';
import type { Operation as _google_longrunning_Operation, Operation__Output as _google_longrunning_Operation__Output } from '../../../../../google/longrunning/Operation';
import type { WaitExecutionRequest as _build_bazel_remote_execution_v2_WaitExecutionRequest, WaitExecutionRequest__Output as _build_bazel_remote_execution_v2_WaitExecutionRequest__Output } from '../../../../../build/bazel/remote/execution/v2/WaitExecutionRequest';

export interface ExecutionClient extends grpc.Client {
  Execute(argument: _build_bazel_remote_execution_v2_ExecuteRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  Execute(argument: _build_bazel_remote_execution_v2_ExecuteRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  execute(argument: _build_bazel_remote_execution_v2_ExecuteRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  execute(argument: _build_bazel_remote_execution_v2_ExecuteRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  
  WaitExecution(argument: _build_bazel_remote_execution_v2_WaitExecutionRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  WaitExecution(argument: _build_bazel_remote_execution_v2_WaitExecutionRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  waitExecution(argument: _build_bazel_remote_execution_v2_WaitExecutionRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  waitExecution(argument: _build_bazel_remote_execution_v2_WaitExecutionRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_google_longrunning_Operation__Output>;
  
}

export interface ExecutionHandlers extends grpc.UntypedServiceImplementation {
  Execute: grpc.handleServerStreamingCall<_build_bazel_remote_execution_v2_ExecuteRequest__Output, _google_longrunning_Operation>;
  
  WaitExecution: grpc.handleServerStreamingCall<_build_bazel_remote_execution_v2_WaitExecutionRequest__Output, _google_longrunning_Operation>;
  
}

export interface ExecutionDefinition extends grpc.ServiceDefinition {
  Execute: MethodDefinition<_build_bazel_remote_execution_v2_ExecuteRequest, _google_longrunning_Operation, _build_bazel_remote_execution_v2_ExecuteRequest__Output, _google_longrunning_Operation__Output>
  WaitExecution: MethodDefinition<_build_bazel_remote_execution_v2_WaitExecutionRequest, _google_longrunning_Operation, _build_bazel_remote_execution_v2_WaitExecutionRequest__Output, _google_longrunning_Operation__Output>
}
