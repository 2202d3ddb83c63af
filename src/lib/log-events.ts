/**
 * Every log event spillway emits, in one place, so operators can alert on them and tests can
 * assert on them. Names are `component.what-happened`.
 */
export const LOG_EVENTS = [
  'master.started',
  'master.stopping',
  'master.stopped',
  'http.listening',
  'http.error',
  'agents.listening',
  'agent.connected',
  'agent.auth-failed',
  'agent.registered',
  'agent.reattached',
  'agent.frame-rejected',
  'agent.draining',
  'agent.lost',
  'agent.disconnected',
  'job.invalid',
  'job.dispatched',
  'job.started',
  'job.finished',
  'job.retried',
  'job.failed',
  'job.stale-result',
  'job.cancelled',
  'job.lock-lost',
  'queue.error',
  'agent.connecting',
  'agent.connect-failed',
  'agent.welcomed',
  'agent.rejected',
  'agent.job-started',
  'agent.job-finished',
  'agent.drain-requested',
  'agent.drained',
  'agent.frame-invalid',
  'demo.build',
  'demo.redis-started',
  'redis.error',
] as const;

export type LogEvent = (typeof LOG_EVENTS)[number];
