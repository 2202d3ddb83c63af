import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { configSchema } from '../../src/config';
import { createLogger, type LogEntry } from '../../src/lib';
import { Provisioner, RuleBook, type InstanceRecord } from '../../src/provisioner';
import { InstanceStore } from '../../src/provisioner/instance-store';
import { FakeBacklog } from '../fakes/fake-backlog';
import { FakeClock } from '../fakes/fake-clock';
import { FakeFleet } from '../fakes/fake-fleet';
import { FakeProvider } from '../fakes/fake-provider';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';
import { instance } from './instance-fixtures';
import { watchStates, type StateHistory } from './state-history';

const POOL = 'cloud';
const MIN = 60_000;
const QUIET_MIN = 30;
const TICK_MS = 1_000;

/**
 * The master's busy/idle events reach the provisioner the way the real master emits them:
 * synchronously, one right after the other in the same turn, while the dispatcher's running
 * count for the agent (the fleet) has already moved on.
 */
describe('instance busy/idle under the master\'s event races (real redis)', function () {
  const disposers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const d of disposers.splice(0).reverse()) await d();
  });

  interface Fixture {
    clock: FakeClock;
    fleet: FakeFleet;
    store: InstanceStore;
    provider: FakeProvider;
    provisioner: Provisioner;
    history: StateHistory;
    logs: LogEntry[];
    get(): Promise<InstanceRecord>;
  }

  async function fixture(state: InstanceRecord['state']): Promise<Fixture> {
    const prefix = uniquePrefix('act');
    const config = configSchema.parse({
      redis: { url: redisUrl(), keyPrefix: prefix },
      agents: { token: 'agent-token-0123456789' },
      jobTypes: { b2g: { overflow: { pool: POOL } } },
      pools: { [POOL]: { provider: 'local', maxInstances: 1, quietPeriodMin: QUIET_MIN, suspend: 'stop', reconcileSec: 3600 } },
    });
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const clock = new FakeClock();
    const store = new InstanceStore({ redis, keyPrefix: prefix, clock });
    const provider = new FakeProvider({ now: () => clock.now() }).add('i-1', 'running');
    const fleet = new FakeFleet().connect('i-1');
    const logs: LogEntry[] = [];
    const provisioner = new Provisioner({
      config,
      redis,
      instances: store,
      providers: new Map([[POOL, provider]]),
      fleet,
      backlog: new FakeBacklog().set('b2g', 0),
      rules: new RuleBook(redis, prefix, config),
      clock,
      log: createLogger({ silent: true, level: 'debug', sink: (e) => logs.push(e) }),
      tickMs: TICK_MS,
    });
    assert.ok((await store.adopt(POOL, instance('i-1', state, { pool: POOL, since: clock.now() }))).ok);
    const history = await watchStates(store, POOL);
    disposers.push(async () => {
      await provisioner.stop();
      await history.close();
      await store.close();
      await redis.quit();
    });
    return {
      clock,
      fleet,
      store,
      provider,
      provisioner,
      history,
      logs,
      async get() {
        const r = await store.get(POOL, 'i-1');
        assert.ok(r);
        return r;
      },
    };
  }

  const agent = (f: Fixture) => f.fleet.agents.get('i-1')!;

  it('a woken instance whose agent gets the waiting job as it registers is busy until that build ends [BUG: stayed idle]', async () => {
    const f = await fixture('booting');
    // The dispatcher places the waiting job in the same turn the agent is added.
    agent(f).running = 1;
    await Promise.all([f.provisioner.onRegistered('i-1', 'agent-i-1'), f.provisioner.onBusy('i-1')]);
    const r = await f.get();
    assert.deepEqual([r.state, r.agent], ['busy', 'agent-i-1']);

    f.clock.advance(10 * MIN);
    const end = f.clock.now();
    agent(f).running = 0;
    await f.provisioner.onIdle('i-1', end);
    const after = await f.get();
    assert.deepEqual([after.state, after.lastJobEndedAt], ['idle', end]);
    await f.history.flush();
    assert.deepEqual(f.history.of('i-1'), ['idle', 'busy', 'idle']);
  });

  it('a job-started seen while the record is still booting takes effect', async () => {
    const f = await fixture('booting');
    agent(f).running = 1;
    // The busy event overtakes the registration (another master's hello, a slow write).
    await f.provisioner.onBusy('i-1');
    assert.equal((await f.get()).state, 'busy');
    await f.provisioner.onRegistered('i-1', 'agent-i-1');
    const r = await f.get();
    assert.deepEqual([r.state, r.agent], ['busy', 'agent-i-1']);
  });

  it('a build that starts and ends before its busy is applied still records its end [BUG: lastJobEndedAt kept the older end]', async () => {
    const f = await fixture('idle');
    f.clock.advance(5 * MIN);
    const end = f.clock.now();
    agent(f).running = 1;
    const busy = f.provisioner.onBusy('i-1');
    agent(f).running = 0;
    await Promise.all([busy, f.provisioner.onIdle('i-1', end)]);
    const r = await f.get();
    assert.deepEqual([r.state, r.lastJobEndedAt], ['idle', end]);
  });

  it('back-to-back builds keep the instance busy until the last one ends, and the quiet period counts from that end [BUG: idle while building, stopped early]', async () => {
    const f = await fixture('idle');
    agent(f).running = 1;
    await f.provisioner.onBusy('i-1');
    assert.equal((await f.get()).state, 'busy');

    // Build 1 ends and build 2 is placed in the same turn: "idle" then "busy".
    f.clock.advance(20 * MIN);
    agent(f).running = 0;
    const idle1 = f.provisioner.onIdle('i-1', f.clock.now());
    agent(f).running = 1;
    await Promise.all([idle1, f.provisioner.onBusy('i-1')]);
    assert.equal((await f.get()).state, 'busy', 'build 2 runs');

    // Delivered the other way round (busy, then the idle of the build before): still busy.
    f.clock.advance(5 * MIN);
    agent(f).running = 2;
    const busy = f.provisioner.onBusy('i-1');
    agent(f).running = 1;
    await Promise.all([busy, f.provisioner.onIdle('i-1', f.clock.now())]);
    assert.equal((await f.get()).state, 'busy', 'one build still runs');

    f.clock.advance(15 * MIN);
    const lastEnd = f.clock.now();
    agent(f).running = 0;
    await f.provisioner.onIdle('i-1', lastEnd);
    const r = await f.get();
    assert.deepEqual([r.state, r.lastJobEndedAt], ['idle', lastEnd]);

    // The reaper, on its own loop: not a second before the quiet period after the last build.
    f.provisioner.start();
    await f.clock.sleeping(1);
    f.clock.advance(QUIET_MIN * MIN - 2 * TICK_MS);
    await f.clock.sleeping(1);
    assert.equal((await f.get()).state, 'idle', `${QUIET_MIN * MIN - 2 * TICK_MS} ms after the last build`);
    f.clock.advance(3 * TICK_MS);
    await f.clock.sleeping(1);
    const stopped = await f.get();
    assert.equal(stopped.state, 'suspended');
    assert.match(stopped.reason ?? '', new RegExp(`idle ${QUIET_MIN}m >= quiet period ${QUIET_MIN}m`));
  });
});
