import { strict as assert } from 'node:assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  detectBuildIdentity,
  detectIsolation,
  runProcess,
  type Isolation,
  type OutputStream,
  type RunSpec,
} from '../../src/executor';
import { killAndRemove } from '../../src/executor/cgroup-fs';
import { createLogger, type LogEntry } from '../../src/lib';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const CGROUP_ROOT = '/sys/fs/cgroup';
const OUR_GROUPS = `run-${process.pid}-`;

function logger() {
  const entries: LogEntry[] = [];
  return { entries, log: createLogger({ silent: true, sink: (e) => entries.push(e) }) };
}

/** Every per-build group of this test process, in any hierarchy (v1 and v2 layouts). */
function ourGroups(): string[] {
  const parents = ['cpu', 'memory', 'pids', '', 'unified'].map((d) => join(CGROUP_ROOT, d, 'spillway'));
  return parents.filter((p) => existsSync(p)).flatMap((p) => readdirSync(p).filter((n) => n.startsWith(OUR_GROUPS)).map((n) => join(p, n)));
}

/** A test that fails must not leave processes or groups behind for the next one. */
async function removeOurGroups(): Promise<void> {
  for (const dir of ourGroups()) await killAndRemove(dir, 3000);
}

/**
 * Marks every process this test's builds start: an environment variable is inherited by all of
 * a build's descendants, including one that left its process group and session with setsid and
 * was reparented to init, out of our process tree, which is exactly the stray a test looks for.
 */
const OWNER_VAR = 'SPILLWAY_ISOLATION_TEST';
const OWNER = `${OWNER_VAR}=${process.pid}`;

/**
 * How many live processes started by this test's builds have a command line matching
 * `pattern`. Processes of anyone else on the machine (another suite's `sleep`, another user's
 * build) never count: they lack our marker, or their environment is not ours to read.
 */
function ourProcesses(pattern: RegExp): number {
  let n = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!readFileSync(`/proc/${e}/environ`, 'utf8').split('\0').includes(OWNER)) continue;
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (pattern.test(cmd)) n++;
    } catch {
      // exited while we looked, or not ours to read
    }
  }
  return n;
}

describe('executor/isolation', () => {
  let cwd: string;
  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), 'spillway-iso-'));
  });
  afterEach(async () => {
    rmSync(cwd, { recursive: true, force: true });
    await removeOurGroups();
  });

  function run(spec: Partial<RunSpec>, isolation: Isolation | undefined) {
    const out: Array<{ stream: OutputStream; chunk: string }> = [];
    const handle = runProcess(
      { cwd, timeoutMs: 20_000, baseEnv: { PATH, [OWNER_VAR]: String(process.pid) }, ...spec },
      (stream, chunk) => out.push({ stream, chunk }),
      isolation ? { isolation } : {},
    );
    const text = (stream: OutputStream) => out.filter((o) => o.stream === stream).map((o) => o.chunk).join('');
    return { handle, text };
  }

  describe('with the machine cgroups', () => {
    let isolation: Isolation;
    const detected = logger();
    before(async function () {
      isolation = await detectIsolation({ log: detected.log });
      if (isolation.kind === 'none') this.skip(); // no writable cgroups here (not root, read-only mount)
    });

    it('says once what it found and what it enforces', () => {
      const events = detected.entries.filter((e) => e.event === 'executor.isolation');
      assert.equal(events.length, 1);
      assert.equal(events[0]?.kind, isolation.kind);
      assert.deepEqual(events[0]?.cgroups, isolation.cgroups);
    });

    it('puts the build in its group and raises oom_score_adj before it runs', async () => {
      const { handle, text } = run({ shell: 'cat /proc/self/cgroup; cat /proc/self/oom_score_adj', limits: { memoryMb: 256, pids: 50, cpus: 1 } }, isolation);
      const r = await handle.result;
      assert.equal(r.exitCode, 0, text('stderr'));
      assert.ok(text('stdout').includes(`/spillway/${OUR_GROUPS}`), text('stdout'));
      assert.match(text('stdout'), /\n1000\n$/);
      assert.equal(r.oomKilled, false);
      assert.deepEqual(r.limits?.cgroup, { cpu: true, memory: true, pids: true });
      assert.deepEqual(ourGroups(), [], 'groups removed after the run');
    });

    it('as root with a build user: joins the group as root, then runs the build as that user', async function () {
      if (process.getuid?.() !== 0) this.skip();
      const identity = await detectBuildIdentity({ log: logger().log });
      assert.equal(identity.kind, 'user');
      chmodSync(cwd, 0o777);
      const out: string[] = [];
      const handle = runProcess(
        { cwd, timeoutMs: 20_000, baseEnv: { PATH }, shell: 'id -u; id -G; cat /proc/self/cgroup; cat /proc/self/oom_score_adj', limits: { memoryMb: 256, pids: 50 } },
        (_s, c) => out.push(c),
        { isolation: await detectIsolation({ log: logger().log, uid: 65534 }), identity },
      );
      const r = await handle.result;
      assert.equal(r.exitCode, 0, out.join(''));
      assert.match(out.join(''), /^65534\n65534\n/, 'uid and the only group are nobody/nogroup');
      assert.ok(out.join('').includes(`/spillway/${OUR_GROUPS}`), out.join(''));
      assert.match(out.join(''), /\n1000\n$/);
      assert.deepEqual(r.limits?.cgroup, { cpu: false, memory: true, pids: true });
    });

    it('ends a memory hog as out of memory', async () => {
      const hog = 'const a = []; for (let i = 0; i < 30; i++) a.push(Buffer.alloc(10 * 1024 * 1024, 1)); console.log("survived")';
      const { handle, text } = run({ argv: [process.execPath, '-e', hog], limits: { memoryMb: 64 } }, isolation);
      const r = await handle.result;
      assert.equal(r.oomKilled, true, JSON.stringify(r));
      assert.equal(r.signal, 'SIGKILL');
      assert.doesNotMatch(text('stdout'), /survived/);
      assert.equal(r.limits?.requested.memoryMb, 64);
      assert.equal(r.limits?.cgroup.memory, true);
      assert.deepEqual(ourGroups(), []);
    });

    it('stops a fork bomb with the pids limit and leaves nothing behind', async () => {
      const marker = `4.${process.pid}${Date.now() % 1000}`; // a unique sleep duration to find strays by
      const { handle, text } = run(
        { shell: `i=0; while [ $i -lt 200 ]; do sleep ${marker} & i=$((i + 1)); done; wait`, limits: { pids: 20 } },
        isolation,
      );
      const r = await handle.result;
      assert.notEqual(r.exitCode, 0, `exit ${r.exitCode}`);
      assert.match(text('stderr'), /fork/i);
      assert.ok(r.finishedAt - r.startedAt < 4000, `took ${r.finishedAt - r.startedAt} ms`);
      assert.equal(ourProcesses(new RegExp(`sleep ${marker.replace('.', '\\.')}`)), 0);
      assert.deepEqual(ourGroups(), []);
    });

    it('on timeout kills grandchildren, even ones that left the process group', async () => {
      const { handle, text } = run({ shell: 'setsid sleep 101 & sleep 100 & echo started; sleep 100', timeoutMs: 300, limits: { pids: 50 } }, isolation);
      const r = await handle.result;
      assert.match(text('stdout'), /started/);
      assert.equal(r.timedOut, true);
      assert.equal(r.timeoutMs, 300);
      assert.equal(ourProcesses(/^sleep 10[01] $/), 0);
      assert.deepEqual(ourGroups(), []);
    });
  });

  describe('without cgroups', () => {
    let root: string;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'spillway-nocg-'));
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it('says cgroups are not enforced and falls back to rlimits', async () => {
      const { entries, log } = logger();
      const isolation = await detectIsolation({ cgroupRoot: root, log });
      assert.equal(isolation.kind, 'none');
      const ev = entries.find((e) => e.event === 'executor.isolation');
      assert.equal(ev?.level, 'warn');
      assert.deepEqual(ev?.cgroups, { cpu: false, memory: false, pids: false });
      assert.deepEqual(readdirSync(root), [], 'nothing created in a directory that holds no cgroups');

      const hog = 'x = bytearray(300 * 1024 * 1024); print("survived")';
      const { handle, text } = run({ argv: ['python3', '-c', hog], limits: { memoryMb: 64, cpus: 1 } }, isolation);
      const r = await handle.result;
      assert.notEqual(r.exitCode, 0);
      assert.match(text('stderr'), /MemoryError/);
      assert.doesNotMatch(text('stdout'), /survived/);
      assert.equal(r.oomKilled, undefined, 'no OOM verdict without a memory cgroup');
      assert.equal(r.limits?.mechanism, 'none');
      assert.deepEqual(r.limits?.cgroup, { cpu: false, memory: false, pids: false });
      assert.equal(r.limits?.rlimit.memory, true);
      assert.match(r.limits?.note ?? '', /not enforced by cgroups/);
      assert.match(r.limits?.note ?? '', /not enforced: cpu 1/);

      const shown = run({ shell: 'ulimit -v; cat /proc/self/oom_score_adj', limits: { memoryMb: 64 } }, isolation);
      assert.equal((await shown.handle.result).exitCode, 0);
      assert.equal(shown.text('stdout'), '65536\n1000\n');
    });

    it('reports limits as not enforced when the runner has no isolation', async () => {
      const r = await run({ argv: ['true'], limits: { memoryMb: 64 } }, undefined).handle.result;
      assert.equal(r.exitCode, 0);
      assert.match(r.limits?.note ?? '', /no limit enforced/);
    });

    it('keeps a missing program an error result under isolation', async () => {
      const isolation = await detectIsolation({ cgroupRoot: root, log: logger().log });
      const r = await run({ argv: ['spillway-no-such-program'] }, isolation).handle.result;
      assert.match(r.error ?? '', /ENOENT/);
    });
  });
});

describe('executor/build-identity', () => {
  it('refuses a build user that does not exist, and runs as root only when told', async () => {
    const entries: LogEntry[] = [];
    const log = createLogger({ silent: true, sink: (e) => entries.push(e) });
    await assert.rejects(detectBuildIdentity({ log, uid: 0, buildUser: 'no-such-user-here' }), /does not exist/);
    assert.deepEqual(await detectBuildIdentity({ log, uid: 0, buildUser: 'root' }), { kind: 'agent' });
    assert.ok(entries.some((e) => e.event === 'executor.isolation' && e.level === 'warn' && e.buildsRunAs === 'root'));
    const numeric = await detectBuildIdentity({ log, uid: 0, buildUser: '60001:60001' });
    assert.equal(numeric.kind === 'user' && numeric.uid, 60001);
  });

  it('a namespaced build is not pid 1: a timeout ends it with SIGTERM, not after the kill grace', async function () {
    const log = createLogger({ silent: true });
    const identity = await detectBuildIdentity({ log, uid: 1000 });
    if (identity.kind !== 'namespace') this.skip();
    const cwd = mkdtempSync(join(tmpdir(), 'spillway-ns-'));
    try {
      const out: string[] = [];
      const r = await runProcess({ cwd, timeoutMs: 300, killGraceMs: 5000, baseEnv: { PATH }, shell: 'ls /proc | grep -c "^[0-9]"; exec sleep 30' }, (st, c) => st === 'stdout' && out.push(c), { identity }).result;
      assert.equal(r.timedOut, true);
      assert.ok(r.finishedAt - r.startedAt < 3000, `took ${r.finishedAt - r.startedAt} ms`);
      assert.ok(Number(out.join("").trim()) <= 4, `processes visible (init, shell, ls, grep): ${JSON.stringify(out)}`);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
