import type { AgentOptions } from '../config';
import { PROTOCOL_VERSION, type FinishedFrame, type HeldJob, type HelloFrame } from '../protocol';
import type { HostInfo } from './host-info';

export interface HelloState {
  version: string;
  running: HeldJob[];
  finished: FinishedFrame[];
  draining: boolean;
  diskFull: boolean;
}

/** The first frame of every connection: who we are, what we run, what we still hold. */
export function helloFrame(o: AgentOptions, host: HostInfo, state: HelloState): HelloFrame {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    token: o.token,
    name: o.name,
    location: o.location,
    jobTypes: [...o.jobTypes],
    executors: o.executors,
    os: o.os ?? host.os,
    arch: host.arch,
    cpus: o.cpus ?? host.cpus,
    memoryMb: o.memoryMb ?? host.memoryMb,
    labels: [...o.labels],
    ...(o.instanceId !== undefined && { instanceId: o.instanceId }),
    version: state.version,
    running: state.running,
    finished: state.finished,
    draining: state.draining,
    ...(state.diskFull && { diskFull: true }),
    logOffsets: true,
  };
}
