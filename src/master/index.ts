export { Master, type MasterOptions, type MasterAddresses } from './master';
export type { BuildRecord, BuildResultName } from './build-store';
export type { JobView, LogChunk } from './job-service';
export type { QueueView } from './views';
export { chooseAgent } from './executor-choice';
