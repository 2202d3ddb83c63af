import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { INSTANCE_STATES, type InstanceState } from '../../src/provisioner/instance';
import type { InstanceChange } from '../../src/provisioner/instance-store';
import { transition, type InstanceEvent } from '../../src/provisioner/instance-state';
import { redisUrl } from '../setup/root-hooks';
import { instance, seed, storeFixture, type StoreFixture } from './instance-fixtures';

const POOL = 'ec2-b2g';

const EVENTS: InstanceEvent[] = [
  { type: 'wake' },
  { type: 'launch' },
  { type: 'started' },
  { type: 'registered', agent: 'a1' },
  { type: 'job-started' },
  { type: 'jobs-done', at: 42 },
  { type: 'drain', reason: 'quiet' },
  { type: 'undrain' },
  { type: 'suspend', reason: 'idle' },
  { type: 'stopped', hibernated: true, reason: 'idle' },
  { type: 'fail', reason: 'boot timeout' },
  { type: 'terminated', reason: 'spot' },
];

describe('InstanceStore: apply, adopt, list, remove', () => {
  let f: StoreFixture;
  beforeEach(() => {
    f = storeFixture();
  });
  afterEach(() => f.dispose());

  describe('apply() follows the transition table', () => {
    const cases: { from: InstanceState; event: InstanceEvent; to?: InstanceState; set?: Record<string, unknown> }[] = [
      // Every transition sets the reason: the seeded 'before' never outlives the state it explained.
      { from: 'suspended', event: { type: 'wake' }, to: 'waking', set: { reason: null } },
      { from: 'waking', event: { type: 'started' }, to: 'booting', set: { reason: null } },
      { from: 'launching', event: { type: 'started' }, to: 'booting', set: { reason: null } },
      { from: 'booting', event: { type: 'registered', agent: 'ec2-7' }, to: 'idle', set: { agent: 'ec2-7', reason: null } },
      { from: 'idle', event: { type: 'job-started' }, to: 'busy', set: { reason: null } },
      { from: 'booting', event: { type: 'job-started' }, to: 'busy', set: { reason: null } },
      { from: 'busy', event: { type: 'jobs-done', at: 777 }, to: 'idle', set: { lastJobEndedAt: 777, reason: null } },
      { from: 'idle', event: { type: 'drain', reason: 'idle 61m' }, to: 'draining', set: { reason: 'idle 61m' } },
      { from: 'draining', event: { type: 'undrain' }, to: 'idle', set: { reason: null } },
      { from: 'draining', event: { type: 'suspend', reason: 'drained' }, to: 'suspending', set: { reason: 'drained' } },
      { from: 'suspending', event: { type: 'stopped', hibernated: true, reason: 'idle 61m' }, to: 'suspended', set: { hibernated: true, reason: 'idle 61m' } },
      { from: 'suspending', event: { type: 'stopped', hibernated: false, reason: 'idle 61m; hibernation refused' }, to: 'suspended', set: { hibernated: false, reason: 'idle 61m; hibernation refused' } },
      { from: 'busy', event: { type: 'fail', reason: 'agent lost' }, to: 'failed', set: { reason: 'agent lost' } },
      { from: 'suspended', event: { type: 'terminated', reason: 'gone' }, to: 'terminated', set: { reason: 'gone' } },
      { from: 'busy', event: { type: 'drain', reason: 'x' } },
      { from: 'idle', event: { type: 'wake' } },
      { from: 'suspended', event: { type: 'job-started' } },
      { from: 'waking', event: { type: 'stopped', hibernated: false, reason: 'x' } },
      { from: 'terminated', event: { type: 'fail', reason: 'x' } },
      { from: 'terminated', event: { type: 'registered', agent: 'late' } },
      { from: 'idle', event: { type: 'launch' } },
    ];
    for (const c of cases) {
      it(`${c.from} + ${c.event.type} → ${c.to ?? 'refused'}`, async () => {
        await seed(f.store, POOL, [instance('i-1', c.from, { since: 5, reason: 'before' })]);
        const before = await f.store.get(POOL, 'i-1');
        f.clock.t = 2_000_000;
        const res = await f.store.apply(POOL, 'i-1', c.event);
        const after = await f.store.get(POOL, 'i-1');
        if (c.to) {
          assert.ok(res.ok, !res.ok ? res.reason : '');
          assert.equal(res.previous, c.from);
          assert.deepEqual(res.record, after);
          assert.deepEqual(after, { ...before, state: c.to, since: 2_000_000, version: before!.version + 1, ...c.set });
        } else {
          assert.ok(!res.ok);
          const expected = transition(c.from, c.event);
          assert.ok(!expected.ok);
          assert.equal(res.reason, expected.reason);
          assert.deepEqual(res.record, before);
          assert.deepEqual(after, before, 'a refusal changes nothing');
        }
      });
    }
  });

  it('agrees with transition() for every state and event', async () => {
    for (const [i, state] of INSTANCE_STATES.entries()) {
      for (const [j, event] of EVENTS.entries()) {
        const id = `i-${i}-${j}`;
        await seed(f.store, POOL, [instance(id, state)]);
        const res = await f.store.apply(POOL, id, event);
        const expected = transition(state, event);
        assert.equal(res.ok, expected.ok, `${state} + ${event.type}`);
        if (res.ok && expected.ok) assert.equal(res.record.state, expected.next);
      }
    }
  });

  it('launch creates the record with defaults and the given fields, once', async () => {
    f.clock.t = 123;
    const res = await f.store.apply(POOL, 'i-new', { type: 'launch' }, { spot: true, privateIp: '10.0.0.9' });
    assert.ok(res.ok);
    assert.equal(res.previous, undefined);
    assert.deepEqual(res.record, instance('i-new', 'launching', { pool: POOL, since: 123, version: 1, spot: true, privateIp: '10.0.0.9' }));
    const again = await f.store.apply(POOL, 'i-new', { type: 'launch' });
    assert.deepEqual(again, { ok: false, record: res.record, reason: 'launch is not allowed in state launching' });
    assert.deepEqual(await f.store.list(POOL), [res.record]);
  });

  it('refuses any other event on an unknown instance', async () => {
    const res = await f.store.apply(POOL, 'i-none', { type: 'started' });
    assert.deepEqual(res, { ok: false, record: undefined, reason: 'no such instance for started' });
    assert.deepEqual(await f.store.list(POOL), []);
  });

  it('bumps the version on every change and keeps fields the event does not touch', async () => {
    await f.store.apply(POOL, 'i-1', { type: 'launch' }, { privateIp: '10.0.0.1' });
    await f.store.apply(POOL, 'i-1', { type: 'started' });
    await f.store.apply(POOL, 'i-1', { type: 'registered', agent: 'a' });
    await f.store.apply(POOL, 'i-1', { type: 'job-started' });
    const res = await f.store.apply(POOL, 'i-1', { type: 'jobs-done', at: 99 });
    assert.ok(res.ok);
    assert.equal(res.record.version, 5);
    assert.equal(res.record.privateIp, '10.0.0.1');
    assert.equal(res.record.agent, 'a');
    assert.equal(res.record.lastJobEndedAt, 99);
  });

  it('ignores state-machine fields smuggled into `fields`', async () => {
    await seed(f.store, POOL, [instance('i-1', 'idle')]);
    const smuggled = { state: 'busy', version: 99, id: 'other', agent: 'b' } as unknown as { agent: string };
    const res = await f.store.apply(POOL, 'i-1', { type: 'drain', reason: 'r' }, smuggled);
    assert.ok(res.ok);
    assert.equal(res.record.state, 'draining');
    assert.equal(res.record.version, 2);
    assert.equal(res.record.id, 'i-1');
    assert.equal(res.record.agent, 'b');
  });

  it('of 20 concurrent identical transitions exactly one wins', async () => {
    await seed(f.store, POOL, [instance('i-1', 'idle')]);
    const peers = [f, f.peer(), f.peer()];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => peers[n % peers.length]!.store.apply(POOL, 'i-1', { type: 'drain', reason: `caller ${n}` })),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
    const after = await f.store.get(POOL, 'i-1');
    assert.equal(after?.version, 2);
    assert.equal(after?.state, 'draining');
  });

  it('publishes {id, state, version} on every change, and nothing on a refusal', async () => {
    const sub = new Redis(redisUrl());
    try {
      const messages: InstanceChange[] = [];
      // Messages arrive in order, so once the removal's is in, a refusal's would be too.
      const removed = new Promise<void>((resolve) =>
        sub.on('message', (_ch: string, m: string) => {
          const change = JSON.parse(m) as InstanceChange;
          messages.push(change);
          if (change.state === null) resolve();
        }),
      );
      await sub.subscribe(f.store.changesChannel(POOL));
      await f.store.apply(POOL, 'i-1', { type: 'launch' });
      assert.ok(!(await f.store.apply(POOL, 'i-1', { type: 'wake' })).ok);
      await f.store.apply(POOL, 'i-1', { type: 'started' });
      await f.store.remove(POOL, 'i-1');
      await removed;
      assert.deepEqual(messages, [
        { id: 'i-1', state: 'launching', version: 1 },
        { id: 'i-1', state: 'booting', version: 2 },
        { id: 'i-1', state: null, version: 0 },
      ]);
    } finally {
      sub.disconnect();
    }
  });

  it('adopt() inserts, overwrites with a bumped version, and honours expectedVersion', async () => {
    const first = await f.store.adopt(POOL, instance('i-9', 'idle', { privateIp: '10.0.0.2', version: 50 }));
    assert.ok(first.ok);
    assert.equal(first.previous, undefined);
    assert.deepEqual(first.record, instance('i-9', 'idle', { pool: POOL, privateIp: '10.0.0.2', version: 1 }));
    const stale = await f.store.adopt(POOL, instance('i-9', 'failed'), { expectedVersion: 0 });
    assert.ok(!stale.ok);
    assert.equal(stale.reason, 'expected version 0, found 1');
    assert.deepEqual(stale.record, first.record);
    const over = await f.store.adopt(POOL, instance('i-9', 'suspended', { hibernated: true }), { expectedVersion: 1 });
    assert.ok(over.ok);
    assert.equal(over.previous, 'idle');
    assert.deepEqual(over.record, instance('i-9', 'suspended', { pool: POOL, hibernated: true, version: 2 }));
  });

  it('loads its scripts again after the server forgot them (SCRIPT FLUSH, a restart)', async () => {
    await f.redis.script('FLUSH');
    assert.ok((await f.store.apply(POOL, 'i-1', { type: 'launch' })).ok);
    await f.redis.script('FLUSH');
    assert.ok((await f.store.adopt(POOL, instance('i-2', 'suspended'))).ok);
    await f.redis.script('FLUSH');
    assert.equal((await f.store.claimWake(POOL, 1))[0]?.id, 'i-2');
  });

  it('list() returns records by id; remove() deletes one', async () => {
    await seed(f.store, POOL, [instance('i-b', 'idle'), instance('i-a', 'busy'), instance('i-c', 'terminated')]);
    await seed(f.store, 'other-pool', [instance('i-z', 'idle')]);
    assert.deepEqual((await f.store.list(POOL)).map((r) => r.id), ['i-a', 'i-b', 'i-c']);
    await f.store.remove(POOL, 'i-c');
    assert.deepEqual((await f.store.list(POOL)).map((r) => r.id), ['i-a', 'i-b']);
    assert.equal(await f.store.get(POOL, 'i-c'), undefined);
    assert.equal(await f.redis.exists(`${f.prefix}:pool:${POOL}:instance:i-c`), 0);
  });

  it('stores nulls as empty strings and booleans as 1/0 in the hash', async () => {
    await f.store.apply(POOL, 'i-1', { type: 'launch' }, { spot: true });
    const hash = await f.redis.hgetall(`${f.prefix}:pool:${POOL}:instance:i-1`);
    assert.equal(hash.spot, '1');
    assert.equal(hash.hibernated, '0');
    assert.equal(hash.agent, '');
    assert.equal(await f.redis.sismember(`${f.prefix}:pool:${POOL}:instances`, 'i-1'), 1);
  });
});
