export { Agent } from './agent';
export type { AgentDeps, AgentEvents } from './agent-deps';
export { AgentRejectedError } from './agent-errors';
export { detectHostInfo, type HostInfo } from './host-info';
export { fetchInstanceId, ImdsClient, ImdsError, isEc2InstanceId, type FetchInstanceIdOptions } from './imds';
export type { AgentTls } from './master-connection';
export { NoticeWatch, type NoticeWatchDeps } from './notice-watch';
export type { DiskState } from './disk-headroom';
