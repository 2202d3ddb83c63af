export { QueueMonitor, type QueueMonitorOptions, type QueueMonitorEvents } from './queue-monitor';
export { toSnapshot, type BacklogSnapshot, type BacklogCounts } from './backlog-snapshot';
