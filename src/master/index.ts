export { Master, type MasterDeps } from './master';
export type { AgentInfo, BuildHistory, JobApi, MasterEvents, MasterView, QueueCounts } from './master-view';
export type { BuildIdentity, BuildRecord, BuildResultName } from './build-store';
export { submitOptionsSchema, type JobView, type LogChunk } from './job-service';
export { chooseAgent } from './executor-choice';
