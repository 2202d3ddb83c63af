// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto


export interface WaitExecutionRequest {
  'name'?: (string);
}

export interface WaitExecutionRequest__Output {
  'name': (string);
}
