import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectIsolation, runProcess, type Isolation } from '../../src/executor';
import { captureLogs } from '../helpers/farm';

const PATH = '/usr/local/bin:/usr/bin:/bin';

describe('the agent builds cpu group (low weight, optional ceiling), on the machine cgroups', () => {
  let isolation: Isolation;
  let cwd: string;
  const logs = captureLogs();
  before(async function () {
    isolation = await detectIsolation({ log: logs.log, buildCpuMax: 0.5 });
    if (!isolation.buildsCpu) {
      console.log('      (skipped: no writable cpu cgroup here)');
      this.skip();
    }
    cwd = mkdtempSync(join(tmpdir(), 'spillway-cpu-'));
  });
  after(async () => {
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it('writes the low weight and a ceiling of half the cores for all builds together, and says so', () => {
    const dir = isolation.buildsCpu!.dir;
    const period = 100_000;
    const want = Math.round(0.5 * availableParallelism() * period);
    if (isolation.kind === 'cgroup-v1') {
      assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8').trim(), '102');
      assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim(), String(want));
    } else {
      assert.equal(readFileSync(join(dir, 'cpu.weight'), 'utf8').trim(), '10');
      assert.equal(readFileSync(join(dir, 'cpu.max'), 'utf8').trim(), `${want} ${period}`);
    }
    assert.equal(isolation.buildsCpu!.maxCores, 0.5 * availableParallelism());
    const ev = logs.entries.find((e) => e.event === 'executor.cpu-ceiling');
    assert.equal(ev?.enforced, true);
  });

  it('runs a build that asks for no limits inside that group, at nice 10', async () => {
    let out = '';
    const handle = runProcess({ cwd, timeoutMs: 20_000, baseEnv: { PATH }, shell: 'nice; cat /proc/self/cgroup' }, (_s, c) => (out += c), { isolation });
    const r = await handle.result;
    assert.equal(r.exitCode, 0, out);
    assert.match(out, /^10\n/);
    assert.ok(out.includes(`builds-${process.pid}/`), out);
  });

  it('throttles builds that want more than the ceiling', async function () {
    const dir = isolation.buildsCpu!.dir;
    const stat = () => readFileSync(join(dir, 'cpu.stat'), 'utf8');
    const throttled = () => Number(/nr_throttled (\d+)/.exec(stat())?.[1] ?? 0);
    // CPU time the group used, in µs (v2: cpu.stat; v1: cpuacct.usage in ns, when mounted with cpu).
    const usedUs = () => {
      const v2 = /usage_usec (\d+)/.exec(stat());
      if (v2) return Number(v2[1]);
      const v1 = join(dir, 'cpuacct.usage');
      return existsSync(v1) ? Number(readFileSync(v1, 'utf8')) / 1000 : undefined;
    };
    const before = { throttled: throttled(), used: usedUs(), at: performance.now() };
    const shell = 'pids=; for i in $(seq $(($(nproc) + 1))); do sh -c "while :; do :; done" & pids="$pids $!"; done; sleep 1.5; kill $pids';
    const r = await runProcess({ cwd, timeoutMs: 20_000, baseEnv: { PATH }, shell }, () => undefined, { isolation }).result;
    assert.equal(r.exitCode, 0);
    const wallUs = (performance.now() - before.at) * 1000;
    const ceiling = isolation.buildsCpu!.maxCores ?? availableParallelism();
    const used = usedUs();
    if (used !== undefined && before.used !== undefined) {
      const cores = (used - before.used) / wallUs;
      assert.ok(cores <= ceiling * 1.1, `the builds used ${cores.toFixed(2)} cores, over the ceiling of ${ceiling}`);
      // Builds run at the lowest weight: on a machine busy with other work they may not even
      // reach the ceiling, and then nothing is there to throttle.
      if (throttled() === before.throttled && cores < ceiling * 0.95) {
        console.log(`      (the machine was too busy for the builds to reach the ceiling: ${cores.toFixed(2)} of ${ceiling} cores; the ceiling held, throttling not observable)`);
        return this.skip();
      }
    } else if (throttled() === before.throttled && loadavg()[0] > availableParallelism()) {
      // No usage counter to tell (cgroup v1 without cpuacct here), and the machine is busier than
      // its cores: the lowest-weight builds may never have reached the ceiling.
      console.log(`      (no CPU usage counter, and the load average ${loadavg()[0].toFixed(1)} is over the ${availableParallelism()} cores: throttling not observable)`);
      return this.skip();
    }
    assert.ok(throttled() > before.throttled, 'the ceiling held the builds back');
  });

  it('removes the group when closed', async () => {
    const dir = isolation.buildsCpu!.dir;
    await isolation.close();
    assert.equal(existsSync(dir), false);
  });
});
