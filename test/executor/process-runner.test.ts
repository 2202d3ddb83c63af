import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess, type OutputStream, type RunSpec } from '../../src/executor';
import { groupGone } from '../../src/executor/process-group';
import { FakeClock } from '../fakes/fake-clock';

const PATH = '/usr/local/bin:/usr/bin:/bin';

/** A zombie waiting for a reaper counts as gone: it holds no resources and runs no code. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('executor/process-runner', () => {
  let cwd: string;
  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), 'spillway-runner-'));
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  function run(spec: Partial<RunSpec>) {
    const out: Array<{ stream: OutputStream; chunk: string }> = [];
    let waiters: Array<() => void> = [];
    const handle = runProcess({ cwd, timeoutMs: 10_000, baseEnv: { PATH }, ...spec }, (stream, chunk) => {
      out.push({ stream, chunk });
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
    });
    const text = (stream: OutputStream) => out.filter((o) => o.stream === stream).map((o) => o.chunk).join('');
    /** Resolves once stdout contains `needle` (an event, not a sleep). */
    const until = async (needle: string) => {
      while (!text('stdout').includes(needle)) await new Promise<void>((r) => waiters.push(r));
    };
    return { handle, out, text, until };
  }

  it('reports exit codes of argv and shell commands', async () => {
    const ok = await run({ argv: ['true'] }).handle.result;
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.signal, null);
    assert.equal(ok.timedOut, false);
    assert.equal(ok.error, undefined);
    assert.ok(ok.finishedAt >= ok.startedAt);
    const three = await run({ shell: 'exit 3' }).handle.result;
    assert.equal(three.exitCode, 3);
  });

  it('reports the signal that killed the command', async () => {
    const r = await run({ shell: 'kill -TERM $$' }).handle.result;
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.timedOut, false);
  });

  it('merges env over the base env and runs in cwd', async () => {
    const { handle, text } = run({ shell: 'echo "$A $B $(pwd)"', baseEnv: { PATH, A: 'base', B: 'base' }, env: { B: 'job' } });
    assert.equal((await handle.result).exitCode, 0);
    assert.equal(text('stdout'), `base job ${cwd}\n`);
  });

  it('streams stdout and stderr separately and in order, without splitting characters', async () => {
    const { handle, text } = run({
      shell: "seq 1 2000; echo oops >&2; printf '\\342\\202'; sleep 0.05; printf '\\254\\n'",
    });
    assert.equal((await handle.result).exitCode, 0);
    const expected = Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join('') + '€\n';
    assert.equal(text('stdout'), expected);
    assert.equal(text('stderr'), 'oops\n');
  });

  it('turns a missing program into a result with error, not an exception', async () => {
    const { handle } = run({ argv: ['spillway-no-such-program'] });
    assert.equal(handle.pid, undefined);
    const r = await handle.result;
    assert.match(r.error ?? '', /ENOENT/);
    assert.equal(r.exitCode, null);
  });

  it('refuses a cwd that does not exist', async () => {
    const r = await run({ argv: ['true'], cwd: join(cwd, 'missing') }).handle.result;
    assert.match(r.error ?? '', /cwd does not exist/);
  });

  it('on timeout kills the whole process group, grandchildren included', async () => {
    const { handle, text, until } = run({ shell: 'sleep 100 & echo $!; sleep 100', timeoutMs: 300 });
    await until('\n');
    const grandchild = Number(text('stdout').trim());
    assert.ok(alive(grandchild));
    const r = await handle.result;
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(alive(grandchild), false);
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace period', async () => {
    const { handle, text, until } = run({
      shell: 'trap "" TERM; sleep 100 & echo $!; wait',
      timeoutMs: 200,
      killGraceMs: 300,
    });
    await until('\n');
    const grandchild = Number(text('stdout').trim());
    const r = await handle.result;
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(r.finishedAt - r.startedAt >= 450, `took ${r.finishedAt - r.startedAt} ms`);
    assert.equal(alive(grandchild), false);
  });

  it('cancel terminates the build and its background processes', async () => {
    const { handle, text, until } = run({ shell: 'sleep 100 & echo $!; wait' });
    await until('\n');
    const grandchild = Number(text('stdout').trim());
    handle.cancel('test');
    const r = await handle.result;
    assert.equal(r.timedOut, false);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(alive(grandchild), false);
  });

  it('removes processes a build left behind when it exits normally', async () => {
    const { handle, text } = run({ shell: 'sleep 100 >/dev/null 2>&1 & echo $!' });
    const r = await handle.result;
    assert.equal(r.exitCode, 0);
    assert.equal(alive(Number(text('stdout').trim())), false);
  });

  it('times out and kills on the injected clock: an hour-long timeout and grace pass in an instant', async () => {
    const clock = new FakeClock();
    let up!: () => void;
    const isUp = new Promise<void>((r) => (up = r));
    const handle = runProcess(
      { cwd, timeoutMs: 3_600_000, killGraceMs: 600_000, baseEnv: { PATH }, shell: 'trap "" TERM; echo up; while :; do sleep 0.05; done' },
      (_s, chunk) => chunk.includes('up') && up(),
      { clock },
    );
    await isUp;
    await clock.sleeping(1);
    clock.advance(3_600_000);
    // The build ignores SIGTERM: only the kill grace, also on the fake clock, ends it.
    await clock.sleeping(1);
    clock.advance(600_000);
    // Waiting for the killed group to be gone polls on the same clock.
    let settled = false;
    void handle.result.then(() => (settled = true));
    while (!settled) {
      await new Promise((r) => setTimeout(r, 5));
      clock.advance(10);
    }
    const r = await handle.result;
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(r.finishedAt - r.startedAt >= 4_200_000, 'the result is timed by the injected clock too');
  });

  it('waits for a process group to be gone on the injected clock (polling, bounded)', async () => {
    const clock = new FakeClock();
    const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    try {
      const gone = groupGone(child.pid!, 60_000, clock);
      let done = false;
      void gone.then(() => (done = true));
      await clock.sleeping(1);
      clock.advance(60_000);
      await clock.sleeping(0);
      await gone;
      assert.equal(done, true, 'gave up after 60 s of the fake clock, at once in real time');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
