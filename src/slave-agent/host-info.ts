import * as os from 'node:os';

/** What an agent tells the master about its machine, so jobs' requirements can be matched. */
export interface HostInfo {
  /** `process.platform`, e.g. "linux". */
  os: string;
  arch: string;
  cpus: number;
  memoryMb: number;
}

export function detectHostInfo(): HostInfo {
  return {
    os: process.platform,
    arch: process.arch,
    // Respects CPU affinity/cgroup limits where os.cpus().length would not.
    cpus: Math.max(1, os.availableParallelism()),
    memoryMb: Math.max(1, Math.floor(os.totalmem() / (1024 * 1024))),
  };
}
