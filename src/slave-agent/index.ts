export { Agent } from './agent';
export type { AgentDeps, AgentEvents } from './agent-deps';
export { AgentRejectedError } from './agent-errors';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
export { detectHostInfo, type HostInfo } from './host-info';
export { fetchInstanceId, ImdsError, type FetchInstanceIdOptions } from './imds';
export type { AgentTls } from './master-connection';
