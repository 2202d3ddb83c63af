import type { EventEmitter } from 'node:events';
import type { Notice } from '../protocol';
import type { ConnectedAgent } from './agent-registry';
import type { BuildIdentity, BuildRecord } from './build-store';
import type { FrameRefusal } from './held-jobs/held-job';

export interface DispatcherEvents {
  'build-log': [queue: string, jobId: string, attempt: number, data: string];
  /** A build was handed to an agent (its record exists from here on). */
  'build-dispatched': [build: BuildIdentity];
  'build-finished': [record: BuildRecord];
  'job-settled': [queue: string, jobId: string];
  /** An agent went from no builds to one (its instance is busy). */
  'agent-busy': [agent: ConnectedAgent];
  /** An agent's last build ended (its instance's quiet period starts). */
  'agent-idle': [agent: ConnectedAgent, at: number];
  /** An agent went silent past `agents.lostAfterSec` and was dropped (its builds are lost or preempted). */
  'agent-lost': [agent: ConnectedAgent];
  /** A spot notice reached an agent here (from the agent itself or from SQS). */
  'agent-notice': [agent: ConnectedAgent, notice: Notice];
  /** A build's machine went away after a notice; the job was requeued without using an attempt. */
  'build-preempted': [record: BuildRecord];
  /** A frame about a job came from an agent that does not hold it (or quoted a stale lock); it was ignored. */
  'frame-refused': [agent: ConnectedAgent, frame: 'started' | 'declined' | 'log' | 'finished' | 'reattach', reason: FrameRefusal];
}

/** How the dispatcher's parts announce what happened (the dispatcher is the emitter). */
export type DispatchEmitter = Pick<EventEmitter<DispatcherEvents>, 'emit'>;
