// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto


export interface NodeProperty {
  'name'?: (string);
  'value'?: (string);
}

export interface NodeProperty__Output {
  'name': (string);
  'value': (string);
}
