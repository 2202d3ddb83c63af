import { strict as assert } from 'node:assert';
import { Redis } from 'ioredis';
import { parseConfig, type Config } from '../../src/config';
import { History, waitFigures } from '../../src/http/history';
import { UsageLedger } from '../../src/http/usage-ledger';
import type { InstanceRecord } from '../../src/provisioner';
import { FakeClock } from '../fakes/fake-clock';
import { farmConfigRaw } from '../helpers/farm';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

const H = 3600 * 1000;
// Wednesday 2026-11-25 12:00 UTC.
const WEDNESDAY_NOON = Date.UTC(2026, 10, 25, 12, 0, 0);

type Inst = Pick<InstanceRecord, 'pool' | 'id' | 'state' | 'spot'>;

describe('usage ledger: instance-hours and cost per pool and job type', () => {
  let redis: Redis;
  let clock: FakeClock;
  let ledger: UsageLedger;
  let config: Config;

  beforeEach(() => {
    redis = new Redis(redisUrl());
    clock = new FakeClock(WEDNESDAY_NOON);
    ledger = new UsageLedger({ redis, keyPrefix: uniquePrefix('usage'), clock, maxGapMs: 10 * 60 * 1000 });
    config = parseConfig(
      farmConfigRaw({
        pools: {
          spotty: { provider: 'local', maxInstances: 4, executorsPerInstance: 2, price: { onDemandPerHour: 1, spotPerHour: 0.25 } },
          unpriced: { provider: 'local', maxInstances: 1 },
        },
        dashboard: { currency: 'EUR' },
      }),
      {},
    );
  });
  afterEach(() => redis.quit());

  /** Accrues the same instance set every `stepMs` for `steps` steps. */
  async function run(instances: Inst[], stepMs: number, steps: number): Promise<void> {
    for (let i = 0; i < steps; i++) {
      clock.advance(stepMs);
      await ledger.accrue(instances);
    }
  }

  it('charges running time as spot or on-demand, counts suspended time as saved, prices it', async () => {
    const a: Inst = { pool: 'spotty', id: 'i-a', state: 'busy', spot: true };
    const b: Inst = { pool: 'spotty', id: 'i-b', state: 'idle', spot: false };
    const c: Inst = { pool: 'spotty', id: 'i-c', state: 'suspended', spot: false };
    await ledger.accrue([a, b, c]); // first sight: nothing charged yet
    await run([a, b, c], 6 * 60 * 1000, 10); // one hour in 6-minute steps
    const r = await ledger.report(config);
    const spotty = r.today.pools.find((p) => p.pool === 'spotty')!;
    assert.equal(r.currency, 'EUR');
    assert.ok(Math.abs(spotty.spotHours - 1) < 1e-9);
    assert.ok(Math.abs(spotty.onDemandHours - 1) < 1e-9);
    assert.ok(Math.abs(spotty.suspendedHours - 1) < 1e-9);
    assert.ok(Math.abs(spotty.cost! - 1.25) < 1e-9, `cost ${spotty.cost}`);
    assert.ok(Math.abs(spotty.savedCost! - 1) < 1e-9);
    assert.equal(r.today.pools.find((p) => p.pool === 'unpriced')!.cost, null, 'no price, no cost');
    assert.deepEqual([r.week.from, r.week.to], ['2026-11-23', '2026-11-25'], 'the week starts on Monday (UTC)');
  });

  it('does not charge failed or terminated instances, and cuts a long gap (a master was down) to the cap', async () => {
    const a: Inst = { pool: 'spotty', id: 'i-a', state: 'idle', spot: false };
    const dead: Inst = { pool: 'spotty', id: 'i-d', state: 'failed', spot: false };
    await ledger.accrue([a, dead]);
    await run([a, dead], 3 * H, 1);
    const p = (await ledger.report(config)).today.pools.find((x) => x.pool === 'spotty')!;
    assert.ok(Math.abs(p.onDemandHours - 10 / 60) < 1e-9, `a 3 h gap is charged as the 10 min cap, got ${p.onDemandHours} h`);
  });

  it('never counts the same seconds twice when two masters accrue together', async () => {
    const other = new UsageLedger({ redis, keyPrefix: (ledger as unknown as { opts: { keyPrefix: string } }).opts.keyPrefix, clock, maxGapMs: 10 * 60 * 1000 });
    const a: Inst = { pool: 'spotty', id: 'i-a', state: 'busy', spot: false };
    await ledger.accrue([a]);
    clock.advance(5 * 60 * 1000);
    await Promise.all([ledger.accrue([a]), other.accrue([a])]);
    const p = (await ledger.report(config)).today.pools.find((x) => x.pool === 'spotty')!;
    assert.ok(Math.abs(p.onDemandHours - 5 / 60) < 1e-9, `${p.onDemandHours} h`);
  });

  it('charges job types their share of an instance: build time / executors per instance', async () => {
    await ledger.addBuild('b2g', 'spotty', true, 3600, 2);
    await ledger.addBuild('b2g', 'spotty', false, 1800, 2);
    await ledger.addBuild('linux64', 'spotty', false, 7200, 2);
    const types = (await ledger.report(config)).today.types;
    assert.deepEqual(
      types.map((t) => [t.type, t.hours, t.cost]),
      [
        ['linux64', 1, 1],
        ['b2g', 0.75, 0.5 * 0.25 + 0.25 * 1],
      ],
    );
  });

  it('keeps days apart: yesterday is in the week, not today', async () => {
    const a: Inst = { pool: 'spotty', id: 'i-a', state: 'busy', spot: false };
    clock.advance(-24 * H);
    await ledger.accrue([a]);
    await run([a], 6 * 60 * 1000, 5);
    clock.advance(24 * H);
    await ledger.addBuild('b2g', 'spotty', false, 60, 1);
    const r = await ledger.report(config);
    const today = r.today.pools.find((x) => x.pool === 'spotty')!;
    const week = r.week.pools.find((x) => x.pool === 'spotty')!;
    assert.equal(today.onDemandHours, 0);
    assert.ok(Math.abs(week.onDemandHours - 0.5) < 1e-9);
  });
});

describe('history: one sample per interval for the whole farm', () => {
  let redis: Redis;
  before(() => (redis = new Redis(redisUrl())));
  after(() => redis.quit());

  it('lets one of several masters record an interval, keeps the newest, reads them back oldest first', async () => {
    const clock = new FakeClock(WEDNESDAY_NOON);
    const keyPrefix = uniquePrefix('hist');
    assert.equal(await new History({ redis, keyPrefix, clock, sampleMs: 1000, keep: 3, owner: 'm0' }).latestAt(), null);
    const masters = ['m1', 'm2', 'm3'].map((owner) => new History({ redis, keyPrefix, clock, sampleMs: 1000, keep: 3, owner }));
    for (let i = 0; i < 5; i++) {
      const claims = await Promise.all(masters.map((m) => m.claimSlot()));
      assert.equal(claims.filter(Boolean).length, 1, 'exactly one master takes each interval');
      await masters[claims.indexOf(true)]!.record({ at: clock.now(), backlog: { b2g: i }, instances: {}, waits: { onprem: null, cloud: null } });
      clock.advance(1000);
    }
    const samples = await masters[0]!.since(0);
    // Every master sees when the newest sample was taken, whoever took it.
    for (const m of masters) assert.equal(await m.latestAt(), WEDNESDAY_NOON + 4000);
    assert.deepEqual(samples.map((s) => s.backlog.b2g), [2, 3, 4]);
    assert.deepEqual((await masters[1]!.since(WEDNESDAY_NOON + 4000)).map((s) => s.backlog.b2g), [4]);
  });

  it('wait percentiles by nearest rank', () => {
    assert.equal(waitFigures([]), null);
    assert.deepEqual(waitFigures([5]), { n: 1, p50Ms: 5, p90Ms: 5 });
    assert.deepEqual(waitFigures([10, 1, 2, 3, 4, 5, 6, 7, 8, 9]), { n: 10, p50Ms: 5, p90Ms: 9 });
  });
});
