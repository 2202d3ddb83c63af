import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { InstanceChange } from '../../src/provisioner/instance-store';
import { redisUrl } from '../setup/root-hooks';
import { instance, seed, storeFixture, type StoreFixture } from './instance-fixtures';
import { waitUntil } from '../helpers/wait-until';

const POOL = 'ec2-linux64';

describe('InstanceStore.claimWake: one waker', () => {
  let f: StoreFixture;
  beforeEach(() => {
    f = storeFixture();
  });
  afterEach(() => f.dispose());

  it('claims suspended instances, hibernated first, then by id, and moves them to waking', async () => {
    await seed(f.store, POOL, [
      instance('i-c', 'suspended'),
      instance('i-a', 'suspended'),
      instance('i-b', 'idle'),
      instance('i-d', 'suspended', { hibernated: true }),
      instance('i-e', 'suspending'),
    ]);
    f.clock.t = 5_000;
    const first = await f.store.claimWake(POOL, 2);
    assert.deepEqual(first, [
      instance('i-d', 'waking', { pool: POOL, hibernated: true, since: 5_000, version: 2 }),
      instance('i-a', 'waking', { pool: POOL, since: 5_000, version: 2 }),
    ]);
    assert.deepEqual((await f.store.claimWake(POOL, 5)).map((r) => r.id), ['i-c']);
    assert.deepEqual(await f.store.claimWake(POOL, 5), []);
    assert.equal((await f.store.get(POOL, 'i-b'))?.state, 'idle');
    assert.equal((await f.store.get(POOL, 'i-e'))?.state, 'suspending');
  });

  it('asks for nothing when count is 0', async () => {
    await seed(f.store, POOL, [instance('i-a', 'suspended')]);
    assert.deepEqual(await f.store.claimWake(POOL, 0), []);
    assert.equal((await f.store.get(POOL, 'i-a'))?.state, 'suspended');
  });

  it('20 concurrent callers over 2 suspended instances: exactly 2 claims, hibernated first', async () => {
    await seed(f.store, POOL, [instance('i-1', 'suspended'), instance('i-2', 'suspended', { hibernated: true }), instance('i-3', 'busy')]);
    // Redis' own order of the claims, which the callers' interleaving cannot show.
    const sub = f.redis.duplicate();
    const order: string[] = [];
    sub.on('message', (_ch: string, m: string) => order.push((JSON.parse(m) as InstanceChange).id));
    await sub.subscribe(f.store.changesChannel(POOL));
    const stores = [f, f.peer(), f.peer(), f.peer()].map((x) => x.store);
    const claims = await Promise.all(Array.from({ length: 20 }, (_, n) => stores[n % stores.length]!.claimWake(POOL, 1)));
    const claimed = claims.flat().map((r) => r.id);
    assert.deepEqual([...claimed].sort(), ['i-1', 'i-2']);
    await waitUntil(() => order.length === 2);
    sub.disconnect();
    assert.deepEqual(order, ['i-2', 'i-1'], 'the hibernated instance is claimed first');
    for (const id of ['i-1', 'i-2']) {
      const r = await f.store.get(POOL, id);
      assert.equal(r?.state, 'waking');
      assert.equal(r?.version, 2, `${id} was transitioned exactly once`);
    }
  });

  it('across processes: two masters racing over 5 suspended instances claim each exactly once', async function () {
    this.timeout(30_000);
    const ids = ['i-1', 'i-2', 'i-3', 'i-4', 'i-5'];
    await seed(f.store, POOL, ids.map((id, n) => instance(id, 'suspended', { hibernated: n % 2 === 0 })));
    const children = [0, 1].map(() => claimWakeChild(redisUrl(), f.prefix, POOL, 10));
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const results = await Promise.all(children.map((c) => c.claimed));
    const all = results.flat();
    assert.equal(all.length, 5, `claims: ${JSON.stringify(results)}`);
    assert.deepEqual([...new Set(all)].sort(), ids);
    for (const id of ids) assert.equal((await f.store.get(POOL, id))?.version, 2, `${id} was transitioned exactly once`);
  });
});

/** Runs test/provisioner/claim-wake-child.ts (compiled) and follows its ready / result lines. */
function claimWakeChild(url: string, prefix: string, pool: string, calls: number) {
  const child = spawn(process.execPath, [join(__dirname, 'claim-wake-child.js'), url, prefix, pool, String(calls)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const lines = createInterface({ input: child.stdout });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`claim-wake-child exited with ${code} early: ${stderr}`))),
  );
  exited.catch(() => undefined);
  const next = () => Promise.race([new Promise<string>((resolve) => lines.once('line', resolve)), exited]);
  const ready = next().then((line) => assert.equal(line, 'ready'));
  const claimed = ready.then(async () => JSON.parse(await next()) as string[]);
  return { ready, claimed, go: () => child.stdin.end('go\n') };
}
