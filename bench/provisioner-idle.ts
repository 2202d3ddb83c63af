/**
 * What an idle pool costs per provisioner tick: N instance records (idle, their agents
 * connected, inside the quiet period, no backlog), a real PoolScaler and InstanceStore on a
 * private redis-server, and a provider that must not be called. Prints, per tick, the Node
 * process's CPU, redis-server's CPU and the Redis commands sent, and the idle CPU share of a
 * core at the provisioner's default tick of 1 s.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/provisioner-idle.js          # N=1000, 300 ticks
 *   BENCH_RECORDS=300 BENCH_TICKS=300 node dist/bench/provisioner-idle.js
 */
import { Redis } from 'ioredis';
import { overflowSchema, poolSchema } from '../src/config';
import { createLogger, startRedisServer, systemClock } from '../src/lib';
import { InstanceActivity, InstanceStore, PoolScaler, PreemptionWindow, WarmWindows, type Provider } from '../src/provisioner';
import { RedisPoolLock } from '../src/provisioner/pool-lock';
import { FakeBacklog } from '../test/fakes/fake-backlog';
import { FakeFleet } from '../test/fakes/fake-fleet';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 1000);
const TICKS = Number(process.env.BENCH_TICKS ?? 300);
const POOL = 'cloud';

const untouched = (): never => {
  throw new Error('an idle tick must not call the provider');
};
const provider: Provider = { kind: 'ec2', setup: untouched, list: untouched, start: untouched, suspend: untouched, launch: untouched, terminate: untouched, close: async () => {} };

async function redisStats(redis: Redis): Promise<{ commands: number; cpuMs: number }> {
  const stats = await redis.info('stats');
  const cpu = await redis.info('cpu');
  const num = (text: string, key: string) => Number(new RegExp(`${key}:([\\d.]+)`).exec(text)?.[1] ?? 0);
  return { commands: num(stats, 'total_commands_processed'), cpuMs: (num(cpu, 'used_cpu_user') + num(cpu, 'used_cpu_sys')) * 1000 };
}

async function main(): Promise<void> {
  const server = await startRedisServer();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const probe = new Redis(server.url);
  const clock = systemClock;
  const log = createLogger({ silent: true });
  const store = new InstanceStore({ redis, keyPrefix: 'bench', clock });
  const config = poolSchema.parse({ provider: 'ec2', maxInstances: RECORDS, quietPeriodMin: 600, ec2: { region: 'eu-west-1', launchTemplate: { name: 'b' }, subnetIds: ['subnet-a'] } });
  const fleet = new FakeFleet();
  for (let i = 0; i < RECORDS; i++) {
    const id = `i-0bench${String(i).padStart(5, '0')}`;
    await store.adopt(POOL, { id, pool: POOL, state: 'idle', since: clock.now(), version: 0, privateIp: null, spot: false, hibernated: false, agent: `agent-${id}`, lastJobEndedAt: clock.now(), reason: null });
    fleet.connect(id);
  }
  const warm = new WarmWindows(config);
  const scaler = new PoolScaler({
    name: POOL,
    config,
    jobTypes: ['b2g'],
    provider,
    instances: store,
    activity: new InstanceActivity({ instances: store, fleet, now: () => clock.now(), log }),
    lock: new RedisPoolLock(redis, 'bench'),
    fleet,
    preemptions: new PreemptionWindow(redis, 'bench'),
    backlog: new FakeBacklog(),
    warm,
    clock,
    log,
  });
  const rules = { b2g: overflowSchema.parse({ pool: POOL }) };
  for (let i = 0; i < 20; i++) await scaler.tick(rules, AbortSignal.timeout(10_000));

  const r0 = await redisStats(probe);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < TICKS; i++) await scaler.tick(rules, AbortSignal.timeout(10_000));
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  const r1 = await redisStats(probe);
  // The probe's INFO calls between the two counts (at most 2) are not the tick's.
  const commands = (r1.commands - r0.commands - 2) / TICKS;
  const nodeMs = (c.user + c.system) / 1000 / TICKS;
  const redisMs = (r1.cpuMs - r0.cpuMs) / TICKS;
  console.log(`records=${RECORDS} ticks=${TICKS} wall/tick=${(wallMs / TICKS).toFixed(2)}ms`);
  console.log(`node cpu/tick=${nodeMs.toFixed(2)}ms redis cpu/tick=${redisMs.toFixed(2)}ms redis commands/tick=${commands.toFixed(1)}`);
  console.log(`idle CPU at one tick per second: node ${(nodeMs / 10).toFixed(1)}% + redis ${(redisMs / 10).toFixed(1)}% of a core`);

  warm.close();
  await store.close();
  await redis.quit();
  await probe.quit();
  await server.stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
