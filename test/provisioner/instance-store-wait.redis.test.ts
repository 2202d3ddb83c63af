import assert from 'node:assert/strict';
import { NotFoundError } from '../../src/lib';
import { InstanceStoreClosedError } from '../../src/provisioner/instance-store';
import { instance, seed, storeFixture, type StoreFixture } from './instance-fixtures';
import { waitUntil } from '../helpers/wait-until';

const POOL = 'local';

describe('InstanceStore.waitFor', () => {
  let f: StoreFixture;
  let other: StoreFixture;
  beforeEach(async () => {
    f = storeFixture();
    other = f.peer();
    await seed(f.store, POOL, [instance('i-1', 'waking')]);
  });
  afterEach(() => f.dispose());

  async function subscribers(): Promise<number> {
    const [, n] = (await f.redis.pubsub('NUMSUB', f.store.changesChannel(POOL))) as [string, number];
    return Number(n);
  }

  it('resolves on a change another connection makes, and unsubscribes', async () => {
    const ac = new AbortController();
    const idle = f.store.waitFor(POOL, 'i-1', (r) => r.state === 'idle', ac.signal);
    // Not awaited first: the change may land before or after SUBSCRIBE, and must be seen either way.
    assert.ok((await other.store.apply(POOL, 'i-1', { type: 'started' })).ok);
    assert.ok((await other.store.apply(POOL, 'i-1', { type: 'registered', agent: 'a-1' })).ok);
    const record = await idle;
    assert.equal(record.state, 'idle');
    assert.equal(record.agent, 'a-1');
    assert.equal(await subscribers(), 0);
  });

  it('waits while changes do not satisfy the predicate', async () => {
    const ac = new AbortController();
    let done = false;
    const idle = f.store.waitFor(POOL, 'i-1', (r) => r.state === 'idle', ac.signal).then((r) => ((done = true), r));
    await waitUntil(async () => (await subscribers()) === 1);
    await other.store.apply(POOL, 'i-1', { type: 'started' });
    await seed(other.store, POOL, [instance('i-2', 'idle')]);
    await other.redis.ping();
    assert.equal(done, false);
    await other.store.apply(POOL, 'i-1', { type: 'registered', agent: 'a' });
    assert.equal((await idle).state, 'idle');
  });

  it('resolves at once when the record already satisfies the predicate', async () => {
    const r = await f.store.waitFor(POOL, 'i-1', (x) => x.state === 'waking', new AbortController().signal);
    assert.equal(r.version, 1);
  });

  it('rejects with the reason on abort, and unsubscribes', async () => {
    const ac = new AbortController();
    const waiting = f.store.waitFor(POOL, 'i-1', () => false, ac.signal);
    await waitUntil(async () => (await subscribers()) === 1);
    const rejected = assert.rejects(waiting, /demand gone/);
    ac.abort(new Error('demand gone'));
    await rejected;
    await waitUntil(async () => (await subscribers()) === 0);
  });

  it('rejects at once on an already aborted signal', async () => {
    await assert.rejects(f.store.waitFor(POOL, 'i-1', () => true, AbortSignal.abort(new Error('late'))), /late/);
  });

  it('rejects with NotFoundError for an unknown or removed instance', async () => {
    const ac = new AbortController();
    await assert.rejects(f.store.waitFor(POOL, 'i-none', () => true, ac.signal), NotFoundError);
    const waiting = f.store.waitFor(POOL, 'i-1', (r) => r.state === 'idle', ac.signal);
    await waitUntil(async () => (await subscribers()) === 1);
    const rejected = assert.rejects(waiting, NotFoundError);
    await other.store.remove(POOL, 'i-1');
    await rejected;
  });

  it('serves many waiters on one subscriber connection', async () => {
    await seed(f.store, POOL, [instance('i-2', 'waking')]);
    const ac = new AbortController();
    const waits = ['i-1', 'i-2', 'i-1'].map((id) => f.store.waitFor(POOL, id, (r) => r.state === 'booting', ac.signal));
    await other.store.apply(POOL, 'i-1', { type: 'started' });
    await other.store.apply(POOL, 'i-2', { type: 'started' });
    assert.deepEqual((await Promise.all(waits)).map((r) => r.id), ['i-1', 'i-2', 'i-1']);
    assert.equal(await subscribers(), 0);
  });

  it('re-reads after its subscriber reconnects, so a change made meanwhile is not missed', async () => {
    const waiting = f.store.waitFor(POOL, 'i-1', (r) => r.state === 'booting', new AbortController().signal);
    await waitUntil(async () => (await subscribers()) === 1);
    const clients = (await f.redis.client('LIST')) as string;
    const sub = clients.split('\n').find((l) => l.includes(`name=${f.prefix} `) && / sub=1 /.test(l));
    assert.ok(sub, 'the store has a subscriber connection');
    await f.redis.client('KILL', 'ID', /(?:^| )id=(\d+)/.exec(sub)![1]!);
    // Published while nobody listens: only the re-read after reconnecting can see it.
    assert.equal(await f.redis.publish(f.store.changesChannel(POOL), 'ignored'), 0);
    await f.redis.hset(`${f.prefix}:pool:${POOL}:instance:i-1`, 'state', 'booting');
    assert.equal((await waiting).state, 'booting');
  });

  it('close() rejects pending waiters', async () => {
    const waiting = f.store.waitFor(POOL, 'i-1', () => false, new AbortController().signal);
    await waitUntil(async () => (await subscribers()) === 1);
    const rejected = assert.rejects(waiting, InstanceStoreClosedError);
    await f.store.close();
    await rejected;
    await assert.rejects(f.store.waitFor(POOL, 'i-1', () => true, new AbortController().signal), InstanceStoreClosedError);
  });
});
