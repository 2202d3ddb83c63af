export { runProcess, type RunSpec, type RunHandle, type RunDeps, type RunResult, type OutputStream } from './process-runner';
export { detectIsolation, type DetectIsolationOptions } from './isolation';
export type { Isolation, IsolationKind, LimitGroup, ResourceLimits, Enforcement } from './limits';
export type { LimitsReport } from './sandbox-launch';
export { executeAction, TIMED_OUT_EXIT, NOT_STARTED_EXIT, type ActionInput, type ActionDeps, type ActionExecution } from './action-runner';
export { MissingInputError, type InputFetchStats } from './action-inputs';
export { ActionFailure, type ActionStage } from './action-failure';
export { ESCAPES as OUTPUT_ESCAPES_MESSAGE } from './action-outputs';
export {
  detectBuildIdentity,
  buildOwner,
  handOver,
  identityEnv,
  unreachableBy,
  DEFAULT_BUILD_USER,
  type BuildIdentity,
  type DetectBuildIdentityOptions,
} from './build-identity';
export { detectDiskLimits, unmountBelow, type DiskGuard, type DiskLimits, type DiskLimitMode, type DetectDiskLimitsOptions } from './disk-limit';
