import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { poolSchema, type PoolConfig } from '../../src/config';
import { MasterMetrics } from '../../src/http/metrics';
import { createLogger, type Clock, type LogEntry } from '../../src/lib';
import {
  createEc2Client,
  Ec2Provider,
  Ec2RequestBucket,
  pendingLaunchId,
  ProviderError,
  reconcilePool,
  type Ec2Client,
} from '../../src/provisioner';
import { BackoffProvider } from '../../src/provisioner/backoff-provider';
import { FakeEc2 } from '../fakes/fake-ec2';
import { redisUrl } from '../setup/root-hooks';
import { instance } from './instance-fixtures';
import { POOL, scalerFixture, type ScalerFixture } from './scaler-fixture';

const FLEET = 1000;
const MIN = 60_000;
const ids = (n: number, prefix = 'i-0fleet') => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, '0')}`);
const signal = new AbortController().signal;

/**
 * EC2 at fleet scale: 1,000 instances per pool against the strict fake EC2 sitting at the
 * bottom of a real EC2Client's middleware stack (the client createEc2Client builds, so the
 * SDK's own retry, serialization and signing middleware run on every request), with a real
 * PoolScaler and InstanceStore on redis.
 */
describe('EC2 at fleet scale: 1,000 instances through the SDK middleware stack (real redis, real scaler)', function () {
  this.timeout(60_000);
  const disposers: Array<() => Promise<unknown>> = [];
  const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  before(() => {
    // The standard credential chain of createEc2Client's client; signing runs, nothing is sent.
    process.env.AWS_ACCESS_KEY_ID = 'AKIDFLEETTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'fleet-test-secret';
  });
  after(() => {
    for (const [k, v] of [['AWS_ACCESS_KEY_ID', savedEnv.id], ['AWS_SECRET_ACCESS_KEY', savedEnv.secret]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  afterEach(async () => {
    for (const d of disposers.splice(0).reverse()) await d();
  });

  function poolConfig(over: Record<string, unknown> = {}, ec2: Record<string, unknown> = {}): PoolConfig {
    return poolSchema.parse({
      provider: 'ec2',
      maxInstances: FLEET,
      quietPeriodMin: 60,
      bootTimeoutSec: 600,
      ...over,
      ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a', 'subnet-b'], ...ec2 },
    });
  }

  /** The fake clock, but sleeping on it moves it on (the retrier and the bucket never wait for real). */
  const running = (f: { now(): number; advance(ms: number): void }): Clock => ({ now: () => f.now(), sleep: async (ms) => f.advance(ms) });

  interface Fleet extends ScalerFixture<BackoffProvider> {
    ec2: FakeEc2;
    logs: LogEntry[];
    retries: Array<{ action: string; code: string }>;
    metrics: MasterMetrics;
    seed(id: string, state: Parameters<typeof instance>[1], over?: Parameters<typeof instance>[2]): Promise<void>;
  }

  async function fleet(config: PoolConfig, o: { client?: Ec2Client; bucket?: { burst: number; perSecond: number } } = {}): Promise<Fleet> {
    let ec2!: FakeEc2;
    const retries: Fleet['retries'] = [];
    const metrics = new MasterMetrics({ queues: async () => [], pools: async () => [], agents: () => [] });
    const base = await scalerFixture({
      name: 'fleet',
      config,
      provider: ({ clock, log }) => {
        ec2 = new FakeEc2(() => clock.now(), 'middleware', o.client ?? createEc2Client({ region: 'eu-west-1' }));
        const inner = new Ec2Provider({
          pool: POOL,
          config: config.ec2!,
          client: ec2.client,
          clock: running(clock),
          log,
          random: () => 0.5,
          onAwsRetry: (e) => {
            retries.push(e);
            metrics.awsRetry(e);
          },
          ...(o.bucket && { bucket: new Ec2RequestBucket(o.bucket, running(clock)) }),
        });
        return new BackoffProvider({ pool: POOL, provider: inner, clock, log, random: () => 0 });
      },
      disposers,
    });
    return {
      ...base,
      ec2,
      retries,
      metrics,
      async seed(id, state, over = {}) {
        assert.ok((await base.store.adopt(POOL, instance(id, state, { pool: POOL, since: base.clock.now(), ...over }))).ok);
      },
    };
  }

  it('a wake of 1,000 throttled past its retries leaves every instance suspended, never failed; after the backoff one StartInstances wakes all 1,000 [BUG: all failed, pool blocked until the reconciler]', async () => {
    const f = await fleet(poolConfig());
    for (const id of ids(FLEET)) {
      f.ec2.addStopped(id, POOL);
      await f.seed(id, 'suspended');
    }
    f.backlog.set('b2g', FLEET);
    f.ec2.throttleNext = 5;
    await f.tick();

    const starts = f.ec2.callsOf('StartInstances');
    assert.equal(starts.length, 5, 'the retrier\'s 5 tries, and not one request more');
    assert.ok(starts.every((c) => (c.input.InstanceIds as string[]).length === FLEET && c.error === 'RequestLimitExceeded'));
    const records = await f.store.list(POOL);
    assert.deepEqual([...new Set(records.map((r) => r.state))], ['suspended']);
    assert.match(records[0]!.reason ?? '', /^start deferred: EC2 StartInstances failed \(RequestLimitExceeded/);
    assert.equal(f.history.of(records[0]!.id).join(' '), 'suspended waking suspended');
    assert.equal(f.ec2.callsOf('RunInstances').length, 0, 'the pool is at its cap: nothing launched in their place');
    assert.ok(f.logs.some((e) => e.event === 'instance.wake-failed' && e.deferred === true && e.count === FLEET));

    // Within the pool's backoff no call goes out; once it has passed, they are woken together.
    await f.tick();
    assert.equal(f.ec2.callsOf('StartInstances').length, 5);
    f.clock.advance(10_000);
    await f.tick();
    const ok = f.ec2.callsOf('StartInstances').filter((c) => !c.error);
    assert.equal(ok.length, 1);
    assert.equal((ok[0]!.input.InstanceIds as string[]).length, FLEET);
    assert.deepEqual([...new Set((await f.store.list(POOL)).map((r) => r.state))], ['booting']);
  });

  it('a throttling storm yields exactly the requests the retry policy says, each retry logged and counted by action and code; the SDK adds none', async () => {
    const f = await fleet(poolConfig());
    for (const id of ids(FLEET)) f.ec2.addStopped(id, POOL);
    const provider = f.provider;

    // 3 refusals, then through: 4 requests, 3 retries.
    f.ec2.throttleNext = 3;
    await provider.start(ids(FLEET), signal);
    assert.equal(f.ec2.callsOf('StartInstances').length, 4);
    assert.deepEqual(f.retries, Array.from({ length: 3 }, () => ({ service: 'ec2', action: 'StartInstances', code: 'RequestLimitExceeded' })));
    const logged = f.logs.filter((e) => e.event === 'ec2.throttled');
    assert.deepEqual(logged.map((e) => [e.action, e.code, e.attempt]), [1, 2, 3].map((n) => ['StartInstances', 'RequestLimitExceeded', n]));
    // Equal jitter at random 0.5: 3/4 of the 1 s, 2 s, 4 s ceilings.
    assert.deepEqual(logged.map((e) => e.delayMs), [750, 1500, 3000]);
    const text = (await f.metrics.text()).body;
    assert.match(text, /spillway_aws_api_retries_total\{service="ec2",action="StartInstances",code="RequestLimitExceeded"\} 3/);

    // A storm longer than the policy: 5 requests, then a retryable ProviderError.
    const before = f.ec2.calls.length;
    f.ec2.throttleNext = 50;
    for (const id of ids(FLEET)) f.ec2.set(id, 'stopped');
    const err = await provider.start(ids(FLEET), signal).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ProviderError && err.disposition === 'retry' && err.providerCode === 'RequestLimitExceeded', String(err));
    assert.equal(f.ec2.calls.length - before, 5);
  });

  it('the control: with the SDK\'s own retries on (maxAttempts 3) the same storm becomes three times the requests', async () => {
    const f = await fleet(poolConfig(), { client: createEc2Client({ region: 'eu-west-1', maxAttempts: 3 }) });
    for (const id of ids(10)) f.ec2.addStopped(id, POOL);
    f.ec2.throttleNext = 50;
    await f.provider.start(ids(10), signal).catch(() => undefined);
    assert.equal(f.ec2.callsOf('StartInstances').length, 15, '5 tries of ours x 3 of the SDK');
  });

  it('1,000 idle instances past their quiet period are stopped by one StopInstances with 1,000 ids [BUG: 1,000 calls]', async () => {
    const f = await fleet(poolConfig());
    for (const id of ids(FLEET)) {
      f.ec2.add(id, POOL, 'running');
      await f.seed(id, 'idle', { agent: `agent-${id}`, lastJobEndedAt: f.clock.now() });
      f.fleet.connect(id);
    }
    f.clock.advance(61 * MIN);
    await f.tick();
    const stops = f.ec2.callsOf('StopInstances');
    assert.deepEqual(stops.map((c) => [(c.input.InstanceIds as string[]).length, c.input.Hibernate, c.error]), [[FLEET, true, undefined]]);
    const records = await f.store.list(POOL);
    assert.equal(records.filter((r) => r.state === 'suspended' && r.hibernated).length, FLEET);
  });

  it('the region\'s bucket paces mutating requests (each try counts) and leaves Describe* alone', async () => {
    const f = await fleet(poolConfig(), { bucket: { burst: 2, perSecond: 1 } });
    const few = ids(5);
    for (const id of few) f.ec2.addStopped(id, POOL);
    const t0 = f.clock.now();
    for (const id of few) await f.provider.start([id], signal);
    await f.provider.list(signal);
    await f.provider.list(signal);
    assert.deepEqual(f.ec2.callsOf('StartInstances').map((c) => c.at - t0), [0, 0, 1000, 2000, 3000]);
    assert.deepEqual(f.ec2.callsOf('DescribeInstances').map((c) => c.at - t0), [3000, 3000]);
  });

  it('RunInstances asks MinCount 1 per subnet and type, takes partial capacity, moves on from InsufficientInstanceCapacity, and asks for the rest next step [BUG: all-or-nothing in one subnet]', async () => {
    const subnets = ['subnet-a', 'subnet-b', 'subnet-c'];
    const types = ['c6i.4xlarge', 'c5.4xlarge'];
    const f = await fleet(poolConfig({}, { subnetIds: subnets, instanceTypes: types }));
    const cap: Record<string, number> = {
      'subnet-a c6i.4xlarge': 100,
      'subnet-b c6i.4xlarge': 0,
      'subnet-c c6i.4xlarge': 200,
      'subnet-a c5.4xlarge': 150,
      'subnet-b c5.4xlarge': 50,
      'subnet-c c5.4xlarge': 100,
    };
    for (const [k, n] of Object.entries(cap)) f.ec2.setCapacity(k.split(' ')[0]!, k.split(' ')[1], n);
    f.backlog.set('b2g', FLEET);
    await f.tick();

    const runs = f.ec2.callsOf('RunInstances');
    assert.equal(runs.length, 6, 'every subnet of every type, once');
    assert.ok(runs.every((c) => c.input.MinCount === 1));
    assert.deepEqual(runs.filter((c) => c.error).map((c) => [c.input.SubnetId, c.input.InstanceType, c.error]), [['subnet-b', 'c6i.4xlarge', 'InsufficientInstanceCapacity']]);
    // The first type's three subnets are asked an even share of the 1,000 (334, then what is left over those after).
    assert.equal(runs[0]!.input.MaxCount, 334);
    assert.equal(new Set(runs.map((c) => `${c.input.SubnetId} ${c.input.InstanceType}`)).size, 6);
    let records = await f.store.list(POOL);
    assert.equal(records.length, 600, 'what EC2 had: 600 of 1,000');
    assert.ok(records.every((r) => r.state === 'booting' && r.clientToken === runs[0]!.input.ClientToken));
    assert.ok(f.logs.some((e) => e.event === 'instance.launch-short' && e.wanted === FLEET && e.launched === 600));

    // Capacity comes back in one place: the next step asks for the 400 still wanted; the one
    // place that gave all of its share is asked again for the rest.
    f.ec2.setCapacity('subnet-c', 'c5.4xlarge', 1000);
    await f.tick();
    records = await f.store.list(POOL);
    assert.equal(records.length, FLEET);
    assert.equal(f.ec2.created().length, FLEET, 'never more than the backlog wanted');
    assert.ok(f.ec2.callsOf('RunInstances').slice(6).every((c) => c.input.MinCount === 1 && (c.input.MaxCount as number) <= 400));
  });

  it('a launch is recorded before RunInstances: 1,000 `launching` records with its ClientToken while the call is in flight, then the instances EC2 named', async () => {
    const f = await fleet(poolConfig({}, { subnetIds: ['subnet-a'] }));
    f.backlog.set('b2g', FLEET);
    let seen: { launching: number; token: unknown; tokens: Set<string | null | undefined> } | undefined;
    f.ec2.beforeRequest = async (action, input) => {
      if (action !== 'RunInstances' || seen) return;
      const records = await f.store.list(POOL);
      seen = { launching: records.filter((r) => r.state === 'launching').length, token: input.ClientToken, tokens: new Set(records.map((r) => r.clientToken)) };
    };
    await f.tick();
    assert.equal(seen?.launching, FLEET);
    assert.deepEqual([...seen!.tokens], [seen!.token]);
    const records = await f.store.list(POOL);
    assert.equal(records.length, FLEET);
    assert.ok(records.every((r) => r.id.startsWith('i-0launched') && r.state === 'booting'));
  });

  it('after a crash mid-launch the reconciler settles the pending records by ClientToken (DescribeInstances client-token); a launch that made nothing is kept while EC2 may not list it yet', async () => {
    const config = poolConfig({}, { subnetIds: ['subnet-a'] });
    const f = await fleet(config);
    const log = createLogger({ silent: true });
    // What a master that crashed during RunInstances leaves: the pending records, and in EC2
    // the instances it launched (a second launch's request never reached EC2).
    const made = 'spillway-cloud-crashed-launch';
    const lost = 'spillway-cloud-never-sent';
    for (let n = 0; n < FLEET; n++) await f.store.apply(POOL, pendingLaunchId(made, n), { type: 'launch' }, { clientToken: made });
    for (let n = 0; n < 3; n++) await f.store.apply(POOL, pendingLaunchId(lost, n), { type: 'launch' }, { clientToken: lost });
    const inner = new Ec2Provider({ pool: POOL, config: config.ec2!, client: f.ec2.client, clock: running(f.clock), log });
    assert.equal((await inner.launch({ count: FLEET, clientToken: made }, signal)).length, FLEET);

    await reconcilePool(POOL, f.provider, f.store, f.clock.now(), signal, log);
    const byToken = f.ec2.callsOf('DescribeInstances').filter((c) => (c.input.Filters as Array<{ Name: string }>).some((x) => x.Name === 'client-token'));
    assert.equal(byToken.length, 1);
    let records = await f.store.list(POOL);
    assert.equal(records.filter((r) => r.id.startsWith('i-0launched') && r.state === 'booting' && r.clientToken === made).length, FLEET);
    assert.deepEqual(records.filter((r) => r.state === 'launching').map((r) => r.clientToken), [lost, lost, lost], 'kept, still counting against the cap');

    f.clock.advance(2 * MIN);
    await reconcilePool(POOL, f.provider, f.store, f.clock.now(), signal, log);
    records = await f.store.list(POOL);
    assert.equal(records.filter((r) => r.state === 'launching').length, 0);
    assert.equal(records.length, FLEET);
  });

  it('reads the pool once per tick: one SMEMBERS and one HGETALL per record with 1,000 idle records [BUG: four reads]', async () => {
    const f = await fleet(poolConfig({ quietPeriodMin: 600 }));
    for (const id of ids(FLEET)) {
      f.ec2.add(id, POOL, 'running');
      await f.seed(id, 'idle', { agent: `agent-${id}`, lastJobEndedAt: f.clock.now() });
      f.fleet.connect(id);
    }
    const redis = new Redis(redisUrl());
    disposers.push(() => redis.quit());
    const stats = async () => {
      const info = await redis.info('commandstats');
      const calls = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
      return { smembers: calls('smembers'), hgetall: calls('hgetall') };
    };
    await f.tick();
    const a = await stats();
    await f.tick();
    const b = await stats();
    assert.deepEqual({ smembers: b.smembers - a.smembers, hgetall: b.hgetall - a.hgetall }, { smembers: 1, hgetall: FLEET });
    assert.equal(f.ec2.calls.filter((c) => c.action !== 'DescribeInstances').length, 0, 'an idle tick calls nothing');
  });
});
