import assert from 'node:assert/strict';
import { chooseAgent } from '../../src/master';
import { agentFromHello, AgentRegistry, freeExecutors, takesWork, type ConnectedAgent } from '../../src/master/agent-registry';
import { firstFitting } from '../../src/master/executor-choice';
import { comparePlacement, DEFAULT_PLACEMENT, type PlacementPolicy } from '../../src/master/placement-policy';
import type { Requirements } from '../../src/protocol';
import { helloFrameFor } from '../helpers/hello-frame';
import { seededRandom, seedFrom } from '../helpers/prng';

type Agent = ConnectedAgent;

function agent(
  name: string,
  o: { location?: 'onprem' | 'cloud'; types?: string[]; executors?: number; busy?: number; used?: number; draining?: boolean; diskFull?: boolean; os?: string; cpus?: number; memoryMb?: number; labels?: string[] } = {},
): Agent {
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
    usedSeq: o.used ?? 0,
    send: () => undefined,
    close: () => undefined,
    alive: async () => true,
  };
}

const SPREAD_ALL: PlacementPolicy = { onprem: 'spread', cloud: 'spread' };
const PACK_ALL: PlacementPolicy = { onprem: 'pack', cloud: 'pack' };

describe('chooseAgent: which executor gets a job (pure placement policy)', () => {
  const cases: Array<{ name: string; agents: Agent[]; req?: Requirements; policy?: PlacementPolicy; pick: string | undefined; reason: RegExp }> = [
    { name: 'on-prem before cloud', agents: [agent('c', { location: 'cloud', executors: 8 }), agent('o')], pick: 'o', reason: /on-prem agent o/ },
    { name: 'cloud when on-prem is busy', agents: [agent('c', { location: 'cloud' }), agent('o', { busy: 1 })], pick: 'c', reason: /cloud agent c/ },
    { name: 'on-prem spread: the least recently used, not the most free', agents: [agent('a', { executors: 4, busy: 0, used: 9 }), agent('b', { executors: 4, busy: 3, used: 2 })], pick: 'b', reason: /spread, the least recently used/ },
    { name: 'on-prem ties never go by name', agents: [agent('a', { used: 7 }), agent('z', { used: 3 })], pick: 'z', reason: /agent z/ },
    { name: 'cloud packed: the busiest with a free executor', agents: [agent('idle', { location: 'cloud', executors: 4, used: 1 }), agent('busy', { location: 'cloud', executors: 4, busy: 3, used: 2 })], pick: 'busy', reason: /packed.*3\/4 running/ },
    { name: 'cloud packed: a full instance is skipped', agents: [agent('full', { location: 'cloud', executors: 4, busy: 4, used: 5 }), agent('one', { location: 'cloud', executors: 4, busy: 1, used: 1 })], pick: 'one', reason: /cloud agent one/ },
    { name: 'cloud packed, equally busy: the most recently used (the others stay idle longer)', agents: [agent('old', { location: 'cloud', used: 1 }), agent('recent', { location: 'cloud', used: 8 }), agent('mid', { location: 'cloud', used: 4 })], pick: 'recent', reason: /packed/ },
    { name: 'cloud spread when configured', policy: SPREAD_ALL, agents: [agent('busy', { location: 'cloud', executors: 4, busy: 3, used: 9 }), agent('idle', { location: 'cloud', executors: 4, used: 1 })], pick: 'idle', reason: /spread/ },
    { name: 'on-prem packed when configured', policy: PACK_ALL, agents: [agent('a', { executors: 2, used: 1 }), agent('b', { executors: 2, busy: 1, used: 2 })], pick: 'b', reason: /on-prem agent b: packed/ },
    { name: 'never a draining agent', agents: [agent('d', { draining: true })], pick: undefined, reason: /busy, draining or short of disk/ },
    { name: 'never an agent short of disk', agents: [agent('full', { diskFull: true, executors: 8 }), agent('ok', { location: 'cloud' })], pick: 'ok', reason: /cloud agent ok/ },
    { name: 'only agents serving the type', agents: [agent('x', { types: ['linux64'] })], pick: undefined, reason: /no connected agent serves job type b2g/ },
    { name: 'labels must all be present', agents: [agent('plain'), agent('gpu', { labels: ['gpu', 'ssd'], used: 5 })], req: { labels: ['gpu'] }, pick: 'gpu', reason: /gpu/ },
    { name: 'os, cpus and memory', agents: [agent('small', { cpus: 2 }), agent('mac', { os: 'darwin', cpus: 16 }), agent('big', { cpus: 16, memoryMb: 65_536 })], req: { os: 'linux', cpus: 8, memoryMb: 32_000 }, pick: 'big', reason: /big/ },
    { name: 'says why nobody fits', agents: [agent('small', { cpus: 2 })], req: { cpus: 8 }, pick: undefined, reason: /no free agent meets the requirements \(small: cpus 2 < 8\)/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const choice = chooseAgent('b2g', c.req, c.agents, c.policy);
      assert.equal(choice.agent?.name, c.pick);
      assert.match(choice.reason, c.reason);
    });
  }
});

/**
 * The registry's index against the definition: after every change of a random fleet, the
 * candidates it yields are exactly the eligible agents sorted by `comparePlacement`, the first
 * fitting one is `chooseAgent`'s pick, and its capacity counters equal a scan.
 */
describe('AgentRegistry.candidates: the indexed placement agrees with the pure policy', () => {
  for (const policy of [DEFAULT_PLACEMENT, SPREAD_ALL, PACK_ALL]) {
    it(`random fleets, onprem ${policy.onprem} / cloud ${policy.cloud}`, () => {
      const seed = seedFrom('SPILLWAY_PLACEMENT_SEED');
      const rnd = seededRandom(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const registry = new AgentRegistry(policy);
      const types = ['b2g', 'android', 'linux64'];
      let n = 0;
      let job = 0;
      const connect = () => {
        const name = `agent-${++n}`;
        const jobTypes = types.filter(() => rnd() < 0.6);
        const a = agentFromHello(
          helloFrameFor({ name, location: rnd() < 0.5 ? 'onprem' : 'cloud', jobTypes: jobTypes.length ? jobTypes : ['b2g'], executors: 1 + Math.floor(rnd() * 4), labels: rnd() < 0.3 ? ['gpu'] : [] }),
          { id: `conn-${n}`, address: '127.0.0.1', pool: undefined, now: 0, send: () => undefined, close: () => undefined },
        );
        registry.add(a);
      };
      for (let i = 0; i < 12; i++) connect();
      for (let step = 0; step < 2000; step++) {
        const agents = registry.list();
        const r = rnd();
        const a = agents.length ? pick(agents) : undefined;
        if (!a || r < 0.05) connect();
        else if (r < 0.08) registry.remove(a);
        else if (r < 0.12) registry.setDraining(a, !a.draining);
        else if (r < 0.15) registry.setDiskFull(a, a.diskFull ? undefined : { path: '/w', freeMb: 1, minFreeMb: 2 });
        else if (r < 0.6 && freeExecutors(a) > 0) registry.assign(a.id, `${pick([...a.jobTypes])}/${++job}`);
        else if (a.running.size > 0) registry.unassign(a.id, pick([...a.running]));

        for (const q of types) {
          const all = registry.list();
          const eligible = all.filter((x) => x.jobTypes.has(q) && freeExecutors(x) > 0).sort((x, y) => comparePlacement(policy, x, y));
          const indexed = [...registry.candidates(q)];
          assert.deepEqual(indexed.map((x) => x.name), eligible.map((x) => x.name), `seed ${seed} step ${step} ${q}: order`);
          for (const req of [undefined, { labels: ['gpu'] }]) {
            const want = chooseAgent(q, req, all, policy).agent;
            assert.equal(firstFitting(registry.candidates(q), req, policy).agent, want, `seed ${seed} step ${step} ${q}: pick`);
            if (want) assert.notEqual(firstFitting(registry.candidates(q), req, policy, want).agent, want);
          }
          const serving = all.filter((x) => x.jobTypes.has(q) && takesWork(x));
          assert.deepEqual(registry.capacityFor(q), { free: serving.reduce((s, x) => s + freeExecutors(x), 0), serving: serving.length > 0 }, `seed ${seed} step ${step} ${q}: capacity`);
        }
      }
    });
  }
});
