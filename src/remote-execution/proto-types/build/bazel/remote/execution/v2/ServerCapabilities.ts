// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { CacheCapabilities as _build_bazel_remote_execution_v2_CacheCapabilities, CacheCapabilities__Output as _build_bazel_remote_execution_v2_CacheCapabilities__Output } from '../../../../../build/bazel/remote/execution/v2/CacheCapabilities';
import type { ExecutionCapabilities as _build_bazel_remote_execution_v2_ExecutionCapabilities, ExecutionCapabilities__Output as _build_bazel_remote_execution_v2_ExecutionCapabilities__Output } from '../../../../../build/bazel/remote/execution/v2/ExecutionCapabilities';
import type { SemVer as _build_bazel_semver_SemVer, SemVer__Output as _build_bazel_semver_SemVer__Output } from '../../../../../build/bazel/semver/SemVer';

export interface ServerCapabilities {
  'cacheCapabilities'?: (_build_bazel_remote_execution_v2_CacheCapabilities | null);
  'executionCapabilities'?: (_build_bazel_remote_execution_v2_ExecutionCapabilities | null);
  'deprecatedApiVersion'?: (_build_bazel_semver_SemVer | null);
  'lowApiVersion'?: (_build_bazel_semver_SemVer | null);
  'highApiVersion'?: (_build_bazel_semver_SemVer | null);
}

export interface ServerCapabilities__Output {
  'cacheCapabilities': (_build_bazel_remote_execution_v2_CacheCapabilities__Output | null);
  'executionCapabilities': (_build_bazel_remote_execution_v2_ExecutionCapabilities__Output | null);
  'deprecatedApiVersion': (_build_bazel_semver_SemVer__Output | null);
  'lowApiVersion': (_build_bazel_semver_SemVer__Output | null);
  'highApiVersion': (_build_bazel_semver_SemVer__Output | null);
}
