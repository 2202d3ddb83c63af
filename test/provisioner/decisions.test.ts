import assert from 'node:assert/strict';
import { overflowSchema, poolSchema } from '../../src/config';
import { decideCapacity, idleVerdict, bootVerdict, WarmWindows, type InstanceRecord, type InstanceState, type TypeDemand } from '../../src/provisioner';

const rule = (o: Record<string, unknown> = {}) => overflowSchema.parse({ pool: 'cloud', ...o });
const inst = (id: string, state: InstanceState, o: Partial<InstanceRecord> = {}): InstanceRecord => ({
  id,
  pool: 'cloud',
  state,
  since: 0,
  version: 1,
  privateIp: null,
  spot: false,
  hibernated: false,
  agent: null,
  lastJobEndedAt: null,
  reason: null,
  ...o,
});
const demand = (type: string, waiting: number, o: Partial<TypeDemand> = {}): TypeDemand => ({
  type,
  rule: rule(),
  waiting,
  oldestWaitMs: 60_000,
  idleOnpremExecutors: 0,
  cloudBusy: 0,
  ...o,
});

describe('decideCapacity (pure)', () => {
  const pool = (instances: InstanceRecord[], o: { max?: number; epi?: number; idleCloud?: number } = {}) => ({
    name: 'cloud',
    maxInstances: o.max ?? 4,
    executorsPerInstance: o.epi ?? 1,
    instances,
    idleCloudExecutors: o.idleCloud ?? 0,
  });
  const cases: Array<{ name: string; pool: ReturnType<typeof pool>; demands: TypeDemand[]; want: [number, number, number]; reason: RegExp }> = [
    { name: 'nothing over threshold', pool: pool([inst('a', 'suspended')]), demands: [demand('b2g', 0)], want: [0, 0, 0], reason: /no job type over/ },
    { name: 'idle on-prem executors absorb the backlog', pool: pool([inst('a', 'suspended')]), demands: [demand('b2g', 3, { idleOnpremExecutors: 3 })], want: [0, 0, 0], reason: /no job type over/ },
    { name: 'revive before launch', pool: pool([inst('a', 'suspended'), inst('b', 'suspended')]), demands: [demand('b2g', 3)], want: [0, 2, 1], reason: /wake 2, launch 1/ },
    { name: 'waking and booting instances count as capacity on its way', pool: pool([inst('a', 'waking'), inst('b', 'booting'), inst('c', 'suspended')]), demands: [demand('b2g', 3)], want: [0, 1, 0], reason: /wake 1/ },
    { name: 'idle cloud executors absorb first', pool: pool([inst('a', 'idle'), inst('b', 'suspended')], { idleCloud: 2 }), demands: [demand('b2g', 2)], want: [0, 0, 0], reason: /absorbed/ },
    { name: 'draining instances are taken back first', pool: pool([inst('a', 'draining'), inst('b', 'suspended')]), demands: [demand('b2g', 2)], want: [1, 1, 0], reason: /undrain 1, wake 1/ },
    { name: 'launch only below the pool cap', pool: pool([inst('a', 'busy'), inst('b', 'busy')], { max: 3 }), demands: [demand('b2g', 5)], want: [0, 0, 1], reason: /over the pool cap of 3/ },
    { name: 'executors per instance round up', pool: pool([inst('a', 'suspended'), inst('b', 'suspended')], { epi: 4 }), demands: [demand('b2g', 5)], want: [0, 2, 0], reason: /2 instance/ },
    { name: 'per-type cap', pool: pool([], { max: 10 }), demands: [demand('b2g', 9, { rule: rule({ maxInstances: 2 }) })], want: [0, 0, 2], reason: /launch 2/ },
    // Instances already running the type's builds count against its cap (found by spillway simulate).
    { name: 'per-type cap counts the busy ones', pool: pool([inst('a', 'busy'), inst('b', 'suspended')], { max: 10 }), demands: [demand('b2g', 9, { rule: rule({ maxInstances: 2 }), cloudBusy: 1 })], want: [0, 1, 0], reason: /wake 1, launch 0/ },
    { name: 'per-type cap reached by busy instances', pool: pool([inst('a', 'busy'), inst('b', 'busy')], { max: 10 }), demands: [demand('b2g', 9, { rule: rule({ maxInstances: 2 }), cloudBusy: 2 })], want: [0, 0, 0], reason: /absorbed|no job type/ },
    { name: 'another type\'s busy instances do not count against this one', pool: pool([inst('a', 'busy')], { max: 10 }), demands: [demand('b2g', 2, { rule: rule({ maxInstances: 2 }) })], want: [0, 0, 2], reason: /launch 2/ },
    { name: 'backlog count threshold', pool: pool([inst('a', 'suspended')]), demands: [demand('b2g', 2, { rule: rule({ minBacklog: 3 }) })], want: [0, 0, 0], reason: /no job type/ },
    { name: 'oldest wait threshold', pool: pool([inst('a', 'suspended')]), demands: [demand('b2g', 5, { oldestWaitMs: 30_000, rule: rule({ minOldestWaitSec: 120 }) })], want: [0, 0, 0], reason: /no job type/ },
    { name: 'disabled overflow never gets cloud capacity', pool: pool([inst('a', 'suspended')]), demands: [demand('b2g', 50, { rule: rule({ enabled: false }) })], want: [0, 0, 0], reason: /no job type/ },
    { name: 'types of other pools are ignored', pool: pool([inst('a', 'suspended')]), demands: [demand('b2g', 50, { rule: rule({ pool: 'other' }) })], want: [0, 0, 0], reason: /no job type/ },
    { name: 'demands of several types add up', pool: pool([inst('a', 'suspended')], { max: 3 }), demands: [demand('b2g', 1), demand('linux64', 1, { rule: rule({ priority: 5 }) })], want: [0, 1, 1], reason: /wake 1, launch 1/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideCapacity(c.pool, c.demands);
      assert.deepEqual([d.undrain, d.wake, d.launch], c.want, d.reason);
      assert.match(d.reason, c.reason);
    });
  }
  it('lists higher priority types first with a reason each', () => {
    const d = decideCapacity(pool([]), [demand('b2g', 1), demand('linux64', 1, { rule: rule({ priority: 5 }) })]);
    assert.deepEqual(d.types.map((t) => t.type), ['linux64', 'b2g']);
    assert.ok(d.types.every((t) => t.overThreshold && /wanted/.test(t.reason)));
  });
});

describe('idleVerdict / bootVerdict (pure)', () => {
  const H = 3_600_000;
  const base = { now: 2 * H, quietPeriodMs: H, backlog: 0, warmWanted: 0, awake: 1, running: 0 };
  const cases: Array<{ name: string; input: Parameters<typeof idleVerdict>[0]; act: boolean; reason: RegExp }> = [
    { name: 'a busy instance is never suspended', input: { ...base, instance: inst('a', 'busy', { since: 0 }) }, act: false, reason: /busy, not idle/ },
    { name: 'running builds veto even when idle in Redis', input: { ...base, running: 1, instance: inst('a', 'idle') }, act: false, reason: /busy: 1 build/ },
    { name: 'backlog keeps it', input: { ...base, backlog: 3, instance: inst('a', 'idle') }, act: false, reason: /backlog of 3/ },
    { name: 'within the quiet period', input: { ...base, instance: inst('a', 'idle', { since: 0, lastJobEndedAt: 2 * H - 30 * 60_000 }) }, act: false, reason: /idle 30m < quiet period 60m/ },
    { name: 'warm minimum', input: { ...base, warmWanted: 1, instance: inst('a', 'idle') }, act: false, reason: /kept warm/ },
    { name: 'quiet period over, no backlog', input: { ...base, instance: inst('a', 'idle', { since: 0, lastJobEndedAt: H - 60_000 }) }, act: true, reason: /idle 61m >= quiet period 60m, no backlog/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = idleVerdict(c.input);
      assert.equal(v.act, c.act, v.reason);
      assert.match(v.reason, c.reason);
    });
  }
  it('boot timeout is separate from the idle timeout', () => {
    assert.equal(bootVerdict(inst('a', 'booting', { since: 0 }), 299_000, 300_000).act, false);
    const v = bootVerdict(inst('a', 'waking', { since: 0 }), 301_000, 300_000);
    assert.equal(v.act, true);
    assert.match(v.reason, /no agent registered 301s after waking \(boot timeout 300s\)/);
    assert.equal(bootVerdict(inst('a', 'idle', { since: 0 }), 10 * H, 300_000).act, false);
  });
});

describe('WarmWindows', () => {
  it('keeps 2 warm 08:00-18:00 Mon-Fri, the minimum otherwise', () => {
    const pool = poolSchema.parse({ provider: 'local', maxInstances: 4, warmMinimum: 1, warmWindows: [{ cron: '* 8-17 * * 1-5', count: 2, timezone: 'UTC' }] });
    const w = new WarmWindows(pool);
    assert.equal(w.wanted(Date.parse('2026-11-25T09:30:00Z')), 2); // Wednesday
    assert.equal(w.wanted(Date.parse('2026-11-25T18:00:00Z')), 1);
    assert.equal(w.wanted(Date.parse('2026-11-28T09:30:00Z')), 1); // Saturday
    w.close();
  });
});
