import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { configSchema, type Config } from '../../src/config';
import { createLogger, type LogEntry } from '../../src/lib';
import { Ec2Provider, InstanceStore, Provisioner, RuleBook, type InstanceRecord } from '../../src/provisioner';
import { DEFAULT_PROVIDER_BACKOFF } from '../../src/provisioner/backoff-provider';
import { FakeBacklog } from '../fakes/fake-backlog';
import { FakeClock } from '../fakes/fake-clock';
import { FakeEc2 } from '../fakes/fake-ec2';
import { FakeFleet } from '../fakes/fake-fleet';
import { seededRandom, seedFrom } from '../helpers/prng';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

const POOL = 'cloud';
const TICK_MS = 1000;
const STOPPED = ['i-0stopped0001', 'i-0stopped0002'];
/** Builds waiting; one executor per instance, so 2 wakes and 2 launches serve them. */
const NEEDED = 4;
/** Throttled for the first two steps (the wake, the first launch), then 5xx for the rest. */
const THROTTLED_MS = 20_000;
const OUTAGE_MS = 300_000;
/** The EC2 retrier's longest pause inside one call (5 tries: 1, 2, 4, 8 s ceilings). */
const RETRIER_SPAN_MS = 15_000;

function farmConfig(prefix: string): Config {
  return configSchema.parse({
    redis: { url: redisUrl(), keyPrefix: prefix },
    agents: { token: 'agent-token-0123456789' },
    jobTypes: { b2g: { overflow: { pool: POOL } } },
    pools: {
      [POOL]: {
        provider: 'ec2',
        maxInstances: NEEDED,
        ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a', 'subnet-b'] },
      },
    },
  });
}

describe('faults: the EC2 API throttled, then failing, for five minutes (real provisioner, EC2 provider and redis; mocked EC2 client)', function () {
  this.timeout(30_000);
  const seed = seedFrom('SPILLWAY_FUZZ_SEED');
  const disposers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const d of disposers.splice(0).reverse()) await d();
  });

  it('backs off with growing pauses, keeps instance states true, and then serves the backlog without a duplicate launch', async () => {
    const why = `(replay with SPILLWAY_FUZZ_SEED=${seed})`;
    const random = seededRandom(seed);
    const prefix = uniquePrefix('outage');
    const config = farmConfig(prefix);
    const clock = new FakeClock();
    const ec2 = new FakeEc2(() => clock.now());
    STOPPED.forEach((id, i) => ec2.addStopped(id, POOL, i === 0));
    const logs: Array<LogEntry & { at: number }> = [];
    const log = createLogger({ silent: true, level: 'debug', sink: (e) => logs.push({ ...e, at: clock.now() }) });
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const store = new InstanceStore({ redis, keyPrefix: prefix, clock });
    const fleet = new FakeFleet();
    const backlog = new FakeBacklog().set('b2g', 0);
    const provider = new Ec2Provider({ pool: POOL, config: config.pools[POOL]!.ec2!, client: ec2.client, clock, log, random });
    const provisioner = new Provisioner({
      config,
      redis,
      instances: store,
      providers: new Map([[POOL, provider]]),
      fleet,
      backlog,
      rules: new RuleBook(redis, prefix, config),
      clock,
      log,
      tickMs: TICK_MS,
      random,
    });
    disposers.push(async () => {
      await provisioner.stop();
      await store.close();
      await redis.quit();
      ec2.restore();
    });

    // Agents of instances that came up register at once and each takes one waiting build.
    const registered = new Set<string>();
    let demand = 0;
    const bootAgents = async () => {
      for (const r of await store.list(POOL)) {
        if (r.state !== 'booting' || ec2.instance(r.id)?.state !== 'running' || registered.has(r.id)) continue;
        registered.add(r.id);
        // As in the master: the agent is connected and its build placed before the events.
        fleet.connect(r.id, { executors: 1, running: 1 });
        await provisioner.onRegistered(r.id, `agent-${r.id}`);
        await provisioner.onBusy(r.id);
      }
      backlog.set('b2g', Math.max(0, demand - registered.size));
    };

    /** What must hold whenever the provisioner sleeps, outage or not. */
    const checkConsistent = async (): Promise<InstanceRecord[]> => {
      const records = await store.list(POOL);
      for (const r of records) {
        const m = ec2.instance(r.id);
        const at = `${r.id} (${r.state}, reason ${r.reason ?? '-'}) at +${clock.now() - outageAt} ms ${why}`;
        assert.ok(m && m.state !== 'terminated', `record without an instance in EC2: ${at}`);
        if (r.state === 'waking' || r.state === 'launching') {
          assert.ok(clock.now() - r.since <= RETRIER_SPAN_MS, `stuck in ${r.state} for ${clock.now() - r.since} ms: ${at}`);
        }
        if (['booting', 'idle', 'busy'].includes(r.state)) assert.equal(m.state, 'running', `record says up, EC2 says ${m.state}: ${at}`);
        if (r.state === 'suspended') assert.equal(m.state, 'stopped', `record says suspended, EC2 says ${m.state}: ${at}`);
      }
      return records;
    };

    /** Steps the provisioner's clock until `until` (a time) or `done()`, checking as it goes. */
    const drive = async (until: number, done: () => boolean = () => false): Promise<void> => {
      while (clock.now() < until && !done()) {
        await clock.sleeping(1);
        await bootAgents();
        await checkConsistent();
        if (done()) return;
        clock.advance(Math.min(clock.nextDue()!, until) - clock.now());
      }
    };

    // Before the outage: the pool is set up and reconciled; both stopped instances are known.
    provisioner.start();
    let outageAt = clock.now();
    await drive(clock.now() + 5_000);
    assert.deepEqual(
      (await store.list(POOL)).map((r) => [r.id, r.state]),
      STOPPED.map((id) => [id, 'suspended']),
    );

    // A backlog forms as the API starts refusing everything.
    outageAt = clock.now();
    ec2.weather = 'throttled';
    demand = NEEDED;
    backlog.set('b2g', demand);
    provisioner.kick();
    await drive(outageAt + THROTTLED_MS);
    ec2.weather = '5xx';
    await drive(outageAt + OUTAGE_MS);
    const recoveredAt = clock.now();
    ec2.weather = 'ok';

    const outageCalls = ec2.calls.filter((c) => c.at >= outageAt && c.at < recoveredAt);
    assert.ok(outageCalls.every((c) => c.error), 'every call in the outage failed');
    // With 5 s doubling to a 120 s cap (equal jitter: at least half of each) and up to 5 tries
    // per failed step (7.5 s at least), five minutes hold at most 8 failed steps: 40 calls.
    // Without a backoff across steps, a step every tick makes several hundred.
    assert.ok(outageCalls.length <= 40, `${outageCalls.length} EC2 calls in a 5-minute outage ${why}`);

    // The pauses between failed steps, measured on the mock: from the last call of a failed step
    // to the next call. Each is at least the jitter floor for its place in the run of failures,
    // and they never shrink while under the cap.
    const backoffs = logs.filter((e) => e.event === 'pool.backoff' && e.at >= outageAt && e.at < recoveredAt);
    assert.ok(backoffs.length >= 4, `${backoffs.length} backoffs ${why}`);
    const pauses = backoffs.map((b, k) => {
      assert.equal(b.failures, k + 1, `failures in a row ${why}`);
      const next = ec2.calls.find((c) => c.at > b.at);
      return next ? next.at - b.at : Infinity;
    });
    pauses.forEach((p, k) => {
      const ceiling = Math.min(DEFAULT_PROVIDER_BACKOFF.maxMs, DEFAULT_PROVIDER_BACKOFF.baseMs * 2 ** k);
      assert.ok(p >= ceiling / 2, `pause ${k + 1} was ${p} ms, under half its ceiling ${ceiling} ms ${why}: ${pauses.join(', ')}`);
      if (p !== Infinity) assert.ok(p <= ceiling + TICK_MS, `pause ${k + 1} was ${p} ms, over its ceiling ${ceiling} ms ${why}`);
      const belowCap = DEFAULT_PROVIDER_BACKOFF.baseMs * 2 ** (k + 1) <= DEFAULT_PROVIDER_BACKOFF.maxMs;
      if (k + 1 < pauses.length && belowCap) assert.ok(pauses[k + 1]! >= p, `pauses shrank: ${pauses.join(', ')} ${why}`);
    });
    assert.ok(pauses.at(-1)! >= 8 * pauses[0]!, `pauses did not grow: ${pauses.join(', ')} ${why}`);

    // The API is back: the backlog is served within a backoff cap, a reconcile and a step.
    await drive(recoveredAt + DEFAULT_PROVIDER_BACKOFF.maxMs + 60_000 + 2 * RETRIER_SPAN_MS, () => registered.size >= NEEDED);
    assert.equal(registered.size, NEEDED, `agents registered by +${clock.now() - recoveredAt} ms after recovery: ${[...registered].join(', ')} ${why}`);
    const after = ec2.calls.filter((c) => c.at >= recoveredAt);
    assert.ok(after.every((c) => !c.error), `calls failed after recovery: ${after.filter((c) => c.error).map((c) => `${c.action} ${c.error}`).join(', ')}`);

    // No duplicate launch: one launch intent, one ClientToken for all its tries, and exactly the
    // instances the backlog needed beyond the two stopped ones.
    const runs = ec2.callsOf('RunInstances');
    // A failed wake leaves its instances suspended (not failed) and the pool sits out its
    // backoff, so no launch went out in the outage to stand in for the stopped instances.
    assert.deepEqual(runs.filter((c) => c.at < recoveredAt), [], `launches during the outage ${why}`);
    const deferred = logs.filter((e) => e.event === 'instance.wake-failed' && e.at < recoveredAt);
    assert.ok(deferred.length > 0 && deferred.every((e) => e.deferred === true), `wakes deferred, never failed ${why}`);
    assert.equal(ec2.created().length, NEEDED - STOPPED.length, `instances created: ${ec2.created().map((i) => i.id).join(', ')} ${why}`);
    // One launch, spread over the two subnets: each subnet's request has a token derived from the launch's.
    const launchToken = String(runs[0]?.input.ClientToken);
    assert.ok(runs.every((c) => String(c.input.ClientToken).startsWith(launchToken)), `client tokens: ${runs.map((c) => String(c.input.ClientToken)).join(', ')}`);
    assert.deepEqual(runs.map((c) => c.input.SubnetId).sort(), ['subnet-a', 'subnet-b']);
    // One waker: each stopped instance was started exactly once (failed tries changed nothing).
    for (const id of STOPPED) {
      const ok = ec2.callsOf('StartInstances').filter((c) => !c.error && (c.input.InstanceIds as string[]).includes(id));
      assert.equal(ok.length, 1, `StartInstances for ${id} ${why}`);
    }

    // Redis and EC2 tell the same story: the four instances, all running one build.
    const final = await checkConsistent();
    assert.deepEqual(final.map((r) => [r.id, r.state]).sort(), ec2.live().map((m) => [m.id, 'busy']).sort());
    assert.equal(final.length, NEEDED);

    // The first success reset the backoff: a later blip starts again from the shortest pause.
    const blipAt = clock.now();
    ec2.weather = 'throttled';
    const blip = () => logs.find((e) => e.event === 'pool.backoff' && e.at >= blipAt);
    await drive(blipAt + 120_000, () => blip() !== undefined);
    assert.equal(blip()?.failures, 1, `backoff after the blip ${why}`);
    assert.ok((blip()!.delayMs as number) <= DEFAULT_PROVIDER_BACKOFF.baseMs);
  });
});
