export { Master, type MasterDeps } from './master';
export type { AgentInfo, BuildHistory, JobApi, JobControlApi, MasterEvents, MasterView, QueueCounts } from './master-view';
export type { BuildFilter, BuildIdentity, BuildPage, BuildRecord, BuildResultName } from './build-store';
export { BUILD_RESULT_NAMES } from './build-store';
export { submitOptionsSchema, type JobView, type LogChunk } from './job-service';
export { CANCEL_WAIT_MS, type Cancelled, type Retried } from './job-control';
export { chooseAgent } from './executor-choice';
