// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto


export interface _build_bazel_remote_execution_v2_Platform_Property {
  'name'?: (string);
  'value'?: (string);
}

export interface _build_bazel_remote_execution_v2_Platform_Property__Output {
  'name': (string);
  'value': (string);
}

export interface Platform {
  'properties'?: (_build_bazel_remote_execution_v2_Platform_Property)[];
}

export interface Platform__Output {
  'properties': (_build_bazel_remote_execution_v2_Platform_Property__Output)[];
}
