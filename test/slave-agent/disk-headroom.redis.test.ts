import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskStore } from '../../src/cas';
import { systemClock, createLogger } from '../../src/lib';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

/** A small filesystem of its own, so "nearly full" is real and touches nothing else. */
function smallTmpfs(sizeMb: number): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-headroom-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

type AgentRow = { name: string; diskFull: { path: string; freeMb: number; minFreeMb: number } | null };

describe('disk headroom: a nearly full disk (16 MiB tmpfs work and cache dirs, 8 MiB kept free)', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let fs: string | undefined;

  before(function () {
    fs = smallTmpfs(16);
    if (!fs) {
      console.log('      (skipped: this machine cannot mount a tmpfs; the headroom logic is then untested here)');
      this.skip();
    }
  });
  after(() => {
    if (!fs) return;
    execFileSync('umount', ['-l', fs]);
    rmSync(fs, { recursive: true, force: true });
  });
  beforeEach(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
    mkdirSync(join(fs!, 'work'));
  });
  afterEach(async () => {
    await farm.stop();
    for (const n of ['work', 'cache', 'filler']) rmSync(join(fs!, n), { recursive: true, force: true });
  });

  const agentOpts = () => ({ name: 'tight', workDir: join(fs!, 'work'), cacheDir: join(fs!, 'cache'), minFreeMb: 8, diskCheckSec: 0.05 });

  it('refuses new work while full, shows it on /api/agents, and takes the waiting build once space is back', async () => {
    const agent = await farm.agent(agentOpts());
    const full = new Promise((r) => agent.once('disk', r));
    writeFileSync(join(fs!, 'filler'), Buffer.alloc(10 * 1024 * 1024));
    await full;
    await farm.logs.waitFor((e) => e.event === 'agent.disk-full' && e.agent === 'tight' && e.component === 'agent-server');
    const { agents: rows } = await farm.api<{ agents: AgentRow[] }>('/api/agents');
    assert.equal(rows[0]?.diskFull?.minFreeMb, 8);
    assert.ok((rows[0]?.diskFull?.freeMb ?? 99) < 8);

    const id = await farm.submit({ type: 'linux64', shell: 'echo built' });
    // The master offers the full agent nothing: the job waits in its queue.
    assert.equal(farm.master.agents()[0]?.freeExecutors, 0);
    const counts = await farm.master.queueCounts('linux64');
    assert.equal(counts.waiting + counts.prioritized + counts.active, 1);
    assert.equal(counts.completed, 0);
    assert.equal(agent.runningJobs().length, 0);

    rmSync(join(fs!, 'filler'));
    const record = await farm.finished(id);
    assert.equal(record.result, 'success');
    assert.equal(record.agent, 'tight');
    const ok = farm.logs.entries.findIndex((e) => e.event === 'agent.disk-ok' && e.component === 'agent-server');
    const started = farm.logs.entries.findIndex((e) => e.event === 'job.started' && e.jobId === id);
    assert.ok(ok >= 0 && ok < started, 'dispatched only after the agent had room again');
    assert.equal((await farm.api<{ agents: AgentRow[] }>('/api/agents')).agents[0]?.diskFull, null);
  });

  it('evicts from the local cache first, and stays open for work when that makes room', async () => {
    const store = await DiskStore.open({ root: join(fs!, 'cache'), maxBytes: 64 * 1024 * 1024, clock: systemClock, log: createLogger({ level: 'error', silent: true }) });
    for (let i = 0; i < 10; i++) await store.putBuffer(randomBytes(1024 * 1024));
    await store.close();
    const agent = await farm.agent({ ...agentOpts(), casUrl: `${farm.addr.httpUrl}/cache` });
    const trimmed = await farm.logs.waitFor((e) => e.event === 'agent.cache-trimmed' && e.agent === 'tight');
    assert.ok(Number(trimmed.freedBytes) >= 2 * 1024 * 1024);
    assert.equal(farm.logs.entries.some((e) => e.event === 'agent.disk-full'), false);
    const id = await farm.submit({ type: 'linux64', shell: 'echo built' });
    assert.equal((await farm.finished(id)).result, 'success');
    void agent;
  });
});
