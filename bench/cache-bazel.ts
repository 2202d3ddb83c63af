/**
 * Figure 4 of issue 13: Debian's Bazel (bazel-bootstrap 4.2.3) against each cache with
 * `--remote_cache=http://SERVER/`. A workspace of `rules` tiny genrules; one Bazel server
 * (output_user_root and output_base fixed in the bench's temp dir, HOME there too, no home or
 * workspace rc file but the system one, which names Debian's install base; nothing from the
 * network) serves every build. Per cache, a first build fills it (the actions
 * run locally and are uploaded); then in rounds rotating the caches: `bazel clean` (untimed) and
 * a build that must be all remote cache hits (checked from Bazel's process summary: a build
 * that ran anything is an error, never a figure), timed wall-clock.
 *
 * The Bazel server daemonizes (it is not this process's child): `stop()` runs `bazel shutdown`
 * and then kills the pid Bazel wrote, and `--max_idle_secs` ends it should both be skipped.
 */
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { median, type Rates, type Target } from './cas-nginx';

export const haveBazel = (): boolean => spawnSync('sh', ['-c', 'command -v bazel']).status === 0;

export interface BazelBench {
  /** Seconds of a fully cached build after `bazel clean`, per round and median, per target. */
  measure(targets: Target[], rounds: number): Promise<Rates>;
  /** Stops the Bazel server; safe to call more than once and before anything started. */
  stop(): Promise<void>;
  /** Last resort when `stop` hangs: SIGKILL to the server, at once. */
  kill(): void;
}

export function bazelBench(dir: string, rules: number, say: (s: string) => void): BazelBench {
  const ws = join(dir, 'ws');
  const home = join(dir, 'home');
  const outputBase = join(dir, 'output-base');
  const startup = [`--output_user_root=${join(dir, 'user-root')}`, `--output_base=${outputBase}`, '--nohome_rc', '--noworkspace_rc', '--max_idle_secs=900'];
  const env = { ...process.env, HOME: home };
  let started = false;
  /** The Bazel client running now, if any (a cleanup interrupts it before the shutdown). */
  let client: ChildProcess | undefined;

  /** Resolves Bazel's stderr (where it reports); rejects with its tail when it fails. */
  const bazel = (args: string[], timeoutMs = 600_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const c = execFile('bazel', [...startup, ...args], { cwd: ws, env, maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, _stdout, stderr) => {
        if (client === c) client = undefined;
        if (err) reject(new Error(`bazel ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-3000)}`));
        else resolve(stderr);
      });
      client = c;
    });

  const build = (t: Target): Promise<string> =>
    bazel(['build', '//:all', `--remote_cache=${t.base.replace(/\/?$/, '/')}`, '--remote_upload_local_results=true', '--spawn_strategy=local', '--noshow_progress']);

  /** Bazel's process summary, e.g. "200 processes: 200 remote cache hit" (last one in `stderr`). */
  const summary = (stderr: string): string => [...stderr.matchAll(/^INFO: \d+ process(?:es)?: (.*)\.$/gm)].pop()?.[1] ?? '';

  const serverPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(outputBase, 'server', 'server.pid.txt'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined; // never started, or already gone
    }
  };
  const killServer = (pid: number | undefined): void => {
    if (pid === undefined) return;
    try {
      // Only if that pid is still this run's Bazel server (pids get reused).
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(outputBase)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  };

  return {
    async measure(targets, rounds) {
      started = true;
      for (const d of [ws, home]) mkdirSync(d, { recursive: true });
      writeFileSync(join(ws, 'WORKSPACE'), '');
      const lines = Array.from({ length: rules }, (_, i) => `genrule(name = "g${i}", outs = ["g${i}.txt"], cmd = "echo rule ${i} > $@")`);
      writeFileSync(join(ws, 'BUILD'), `${lines.join('\n')}\n`);
      for (const t of targets) {
        await bazel(['clean']);
        const s = summary(await build(t));
        say(`bazel: ${t.name} filled (${s})`);
      }
      const all: Array<Record<string, number>> = [];
      for (let r = 0; r < rounds; r++) {
        const round: Record<string, number> = {};
        for (let k = 0; k < targets.length; k++) {
          const t = targets[(r + k) % targets.length]!;
          await bazel(['clean']);
          const t0 = performance.now();
          const s = summary(await build(t));
          round[t.name] = (performance.now() - t0) / 1000;
          const hits = Number(/(\d+) remote cache hit/.exec(s)?.[1] ?? 0);
          if (hits !== rules || /local|sandbox|worker/.test(s)) throw new Error(`bazel against ${t.name}: not a fully cached build (${rules} genrules): "${s}"`);
        }
        all.push(round);
      }
      return { rounds: all, medians: Object.fromEntries(targets.map((t) => [t.name, median(all.map((x) => x[t.name]!))])) };
    },
    async stop() {
      if (!started) return;
      started = false;
      const pid = serverPid();
      // Bazel runs one command at a time: an interrupted build first, then the shutdown.
      if (client) {
        const c = client;
        const exited = new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));
        c.kill('SIGINT');
        const hard = setTimeout(() => c.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(hard);
      }
      await bazel(['shutdown'], 60_000).catch(() => undefined);
      killServer(pid);
    },
    kill() {
      client?.kill('SIGKILL');
      killServer(serverPid());
    },
  };
}
