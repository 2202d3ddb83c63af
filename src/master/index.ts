export { Master, type MasterDeps } from './master';
export type { AgentInfo, BuildHistory, JobApi, MasterEvents, MasterView, QueueCounts } from './master-view';
export type { BuildFilter, BuildIdentity, BuildPage, BuildRecord, BuildResultName } from './build-store';
export type { JobView, LogChunk } from './job-service';
export { chooseAgent } from './executor-choice';
