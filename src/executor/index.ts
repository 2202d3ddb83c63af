export { runProcess, type RunSpec, type RunHandle, type RunDeps, type RunResult, type OutputStream } from './process-runner';
export { detectIsolation, type DetectIsolationOptions } from './isolation';
export type { Isolation, IsolationKind, LimitGroup, ResourceLimits, Enforcement } from './limits';
export { BUILD_OOM_SCORE_ADJ, SANDBOX_FAILED_EXIT, type LimitsReport } from './sandbox-launch';
export { describeResult, formatDuration } from './describe-result';
