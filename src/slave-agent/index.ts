export { Agent, type AgentDeps, type AgentEvents } from './agent';
export { AgentRejectedError } from './agent-errors';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
export { detectHostInfo, type HostInfo } from './host-info';
