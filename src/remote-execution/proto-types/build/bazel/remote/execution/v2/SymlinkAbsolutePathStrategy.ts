// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto


// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

export const _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value = {
  UNKNOWN: 'UNKNOWN',
  DISALLOWED: 'DISALLOWED',
  ALLOWED: 'ALLOWED',
} as const;

export type _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value =
  | 'UNKNOWN'
  | 0
  | 'DISALLOWED'
  | 1
  | 'ALLOWED'
  | 2

export type _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value__Output = typeof _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value[keyof typeof _build_bazel_remote_execution_v2_SymlinkAbsolutePathStrategy_Value]

export interface SymlinkAbsolutePathStrategy {
}

export interface SymlinkAbsolutePathStrategy__Output {
}
