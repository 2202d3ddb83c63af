// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ActionResult as _build_bazel_remote_execution_v2_ActionResult, ActionResult__Output as _build_bazel_remote_execution_v2_ActionResult__Output } from '../../../../../build/bazel/remote/execution/v2/ActionResult';
import type { GetActionResultRequest as _build_bazel_remote_execution_v2_GetActionResultRequest, GetActionResultRequest__Output as _build_bazel_remote_execution_v2_GetActionResultRequest__Output } from '../../../../../build/bazel/remote/execution/v2/GetActionResultRequest';
import type { UpdateActionResultRequest as _build_bazel_remote_execution_v2_UpdateActionResultRequest, UpdateActionResultRequest__Output as _build_bazel_remote_execution_v2_UpdateActionResultRequest__Output } from '../../../../../build/bazel/remote/execution/v2/UpdateActionResultRequest';

export interface ActionCacheClient extends grpc.Client {
  GetActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  GetActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  GetActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  GetActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  getActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  getActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  getActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  getActionResult(argument: _build_bazel_remote_execution_v2_GetActionResultRequest, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  
  UpdateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  UpdateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  UpdateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  UpdateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  updateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  updateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  updateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  updateActionResult(argument: _build_bazel_remote_execution_v2_UpdateActionResultRequest, callback: grpc.requestCallback<_build_bazel_remote_execution_v2_ActionResult__Output>): grpc.ClientUnaryCall;
  
}

export interface ActionCacheHandlers extends grpc.UntypedServiceImplementation {
  GetActionResult: grpc.handleUnaryCall<_build_bazel_remote_execution_v2_GetActionResultRequest__Output, _build_bazel_remote_execution_v2_ActionResult>;
  
  UpdateActionResult: grpc.handleUnaryCall<_build_bazel_remote_execution_v2_UpdateActionResultRequest__Output, _build_bazel_remote_execution_v2_ActionResult>;
  
}

export interface ActionCacheDefinition extends grpc.ServiceDefinition {
  GetActionResult: MethodDefinition<_build_bazel_remote_execution_v2_GetActionResultRequest, _build_bazel_remote_execution_v2_ActionResult, _build_bazel_remote_execution_v2_GetActionResultRequest__Output, _build_bazel_remote_execution_v2_ActionResult__Output>
  UpdateActionResult: MethodDefinition<_build_bazel_remote_execution_v2_UpdateActionResultRequest, _build_bazel_remote_execution_v2_ActionResult, _build_bazel_remote_execution_v2_UpdateActionResultRequest__Output, _build_bazel_remote_execution_v2_ActionResult__Output>
}
