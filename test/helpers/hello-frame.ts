import { PROTOCOL_VERSION, type HelloFrame } from '../../src/protocol';
import { TOKEN } from './farm';

/** A valid hello of a hand-driven test agent, with `over` applied. */
export function helloFrameFor(over: Partial<HelloFrame> = {}): HelloFrame {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    token: TOKEN,
    name: 'raw',
    location: 'onprem',
    jobTypes: ['b2g'],
    executors: 1,
    os: 'linux',
    arch: 'x64',
    cpus: 2,
    memoryMb: 1024,
    labels: [],
    version: 'test',
    running: [],
    finished: [],
    draining: false,
    ...over,
  };
}
