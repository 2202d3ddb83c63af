import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { BuildStore, type BuildIdentity } from '../../src/master/build-store';
import { redisUrl } from '../setup/root-hooks';

/**
 * Trimming the build records while many builds start at once (1,000 agents finishing and
 * starting builds together): every old record is deleted once, by one trim, and the index
 * still comes back down to `keep`. Watched with MONITOR, as Redis saw the commands.
 */
describe('build store: trimming under concurrent starts (real Redis)', function () {
  const keep = 50;
  let redis: Redis;
  let monitor: Redis;
  let prefix: string;
  let store: BuildStore;
  /** DELs and HDELs the master sent itself (not from inside a script), with their arguments. */
  const deletes: string[][] = [];
  let marker = '';

  beforeEach(async () => {
    prefix = `test-trim-${randomBytes(4).toString('hex')}`;
    redis = new Redis(redisUrl());
    monitor = await new Redis(redisUrl()).monitor();
    deletes.length = 0;
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source === 'lua' || !args.some((a) => a.startsWith(prefix))) return;
      const cmd = args[0]!.toLowerCase();
      if (cmd === 'del' || cmd === 'hdel') deletes.push(args);
    });
    store = new BuildStore({ redis, keyPrefix: prefix, keep, logMaxBytes: 1000 });
  });
  afterEach(async () => {
    monitor.disconnect();
    await redis.quit();
  });

  /** Resolves once MONITOR has shown every command sent before it. */
  const monitored = async () => {
    marker = `${prefix}-done-${randomBytes(4).toString('hex')}`;
    const seen = new Promise<void>((resolve) => {
      const on = (_t: string, args: string[]) => {
        if (args[1] !== marker) return;
        monitor.off('monitor', on);
        resolve();
      };
      monitor.on('monitor', on);
    });
    await redis.echo(marker);
    await seen;
  };

  const build = (i: number): BuildIdentity => ({
    id: `job-${i}`,
    type: 'linux64',
    attempt: 1,
    agent: `agent-${i % 7}`,
    location: 'onprem',
    instanceId: null,
    queuedAt: 1000 + i,
    dispatchedAt: 2000 + i,
  });

  it('deletes each old record once when 600 builds start together, and trims to keep afterwards', async () => {
    await Promise.all(Array.from({ length: 600 }, (_, i) => store.started(build(i), 3000 + i)));
    for (let i = 600; i < 700; i++) await store.started(build(i), 3000 + i);
    await monitored();

    const recordDels = deletes.filter((a) => a[0]!.toLowerCase() === 'del').map((a) => a[1]!);
    assert.ok(recordDels.length > 0, 'no trim ran');
    assert.equal(new Set(recordDels).size, recordDels.length, `records deleted more than once: ${recordDels.length} DELs for ${new Set(recordDels).size} records`);
    const attemptDels = deletes.filter((a) => a[0]!.toLowerCase() === 'hdel').map((a) => a.slice(1).join(' '));
    assert.equal(new Set(attemptDels).size, attemptDels.length, 'attempt entries deleted more than once');

    const left = await redis.zcard(`${prefix}:builds`);
    assert.ok(left >= keep && left < keep + 100, `index holds ${left} records, keep is ${keep}`);
    // The newest survive, the oldest are gone with their records.
    assert.equal(await redis.exists(`${prefix}:build:linux64:job-699:1`), 1);
    assert.equal(await redis.exists(`${prefix}:build:linux64:job-0:1`), 0);
    assert.equal(await redis.hexists(`${prefix}:attempts:linux64:job-0`, '1'), 0);
  });
});
