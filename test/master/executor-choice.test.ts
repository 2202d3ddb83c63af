import assert from 'node:assert/strict';
import { chooseAgent } from '../../src/master';

type Agent = Parameters<typeof chooseAgent>[2] extends Iterable<infer A> ? A : never;

function agent(name: string, o: { location?: 'onprem' | 'cloud'; types?: string[]; executors?: number; busy?: number; draining?: boolean; diskFull?: boolean; os?: string; cpus?: number; memoryMb?: number; labels?: string[] } = {}): Agent {
  return {
    id: name,
    name,
    location: o.location ?? 'onprem',
    jobTypes: new Set(o.types ?? ['b2g']),
    executors: o.executors ?? 1,
    os: o.os ?? 'linux',
    arch: 'x64',
    cpus: o.cpus ?? 8,
    memoryMb: o.memoryMb ?? 16_384,
    labels: new Set(o.labels ?? []),
    instanceId: undefined,
    version: 'test',
    address: '127.0.0.1',
    pool: undefined,
    connectedAt: 0,
    unknownJobTypes: [],
    lastSeen: 0,
    draining: o.draining ?? false,
    diskFull: o.diskFull ? { path: '/work', freeMb: 10, minFreeMb: 1024 } : undefined,
    notice: undefined,
    running: new Set(Array.from({ length: o.busy ?? 0 }, (_, i) => `b2g/${name}-${i}`)),
    send: () => undefined,
    close: () => undefined,
    alive: async () => true,
  };
}

describe('chooseAgent: which executor gets a job (pure)', () => {
  const cases: Array<{ name: string; agents: Agent[]; req?: Parameters<typeof chooseAgent>[1]; pick: string | undefined; reason: RegExp }> = [
    { name: 'on-prem before cloud', agents: [agent('c', { location: 'cloud', executors: 8 }), agent('o')], pick: 'o', reason: /onprem agent o/ },
    { name: 'cloud when on-prem is busy', agents: [agent('c', { location: 'cloud' }), agent('o', { busy: 1 })], pick: 'c', reason: /cloud agent c/ },
    { name: 'most free executors among equals', agents: [agent('a', { executors: 4, busy: 3 }), agent('b', { executors: 4, busy: 1 })], pick: 'b', reason: /3 free/ },
    { name: 'name breaks ties', agents: [agent('z'), agent('a')], pick: 'a', reason: /agent a/ },
    { name: 'never a draining agent', agents: [agent('d', { draining: true })], pick: undefined, reason: /busy, draining or short of disk/ },
    { name: 'never an agent short of disk', agents: [agent('full', { diskFull: true, executors: 8 }), agent('ok', { location: 'cloud' })], pick: 'ok', reason: /cloud agent ok/ },
    { name: 'only agents serving the type', agents: [agent('x', { types: ['linux64'] })], pick: undefined, reason: /no connected agent serves job type b2g/ },
    { name: 'labels must all be present', agents: [agent('plain'), agent('gpu', { labels: ['gpu', 'ssd'] })], req: { labels: ['gpu'] }, pick: 'gpu', reason: /gpu/ },
    { name: 'os, cpus and memory', agents: [agent('small', { cpus: 2 }), agent('mac', { os: 'darwin', cpus: 16 }), agent('big', { cpus: 16, memoryMb: 65_536 })], req: { os: 'linux', cpus: 8, memoryMb: 32_000 }, pick: 'big', reason: /big/ },
    { name: 'says why nobody fits', agents: [agent('small', { cpus: 2 })], req: { cpus: 8 }, pick: undefined, reason: /no free agent meets the requirements \(small: cpus 2 < 8\)/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const choice = chooseAgent('b2g', c.req, c.agents);
      assert.equal(choice.agent?.name, c.pick);
      assert.match(choice.reason, c.reason);
    });
  }
});
