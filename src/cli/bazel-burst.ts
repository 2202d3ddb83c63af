import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { actionNames, actionScript, DEMO_INPUT, type DemoActions } from './demo-actions';

/** What one `bazel build` said. */
export interface BazelBuild {
  code: number;
  /** Bazel's own count, e.g. "25 processes: 24 remote, 1 internal". */
  processes: string | undefined;
  /** Actions Bazel ran remotely (`N remote`) and took from the remote cache (`N remote cache hit`). */
  remote: number;
  cacheHits: number;
  /** The end of Bazel's output, for a failed build. */
  tail: string;
}

export interface BazelWorkspaceOptions {
  /** A directory of its own: the workspace, Bazel's output root and HOME go below it. */
  dir: string;
  actions: DemoActions;
  grpcUrl: string;
  token: string;
  /** @defaultValue 'bazel' on PATH */
  bazel?: string;
}

/** Runs bazel; never rejects: a failure is its exit code and output. */
function runBazel(bin: string, args: readonly string[], cwd: string, home: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { cwd, env: { ...process.env, HOME: home }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}${err && code === 1 && !stderr ? err.message : ''}` });
    });
  });
}

/** The installed Bazel's version line, or undefined without one. */
export async function bazelVersion(bin = 'bazel'): Promise<string | undefined> {
  const { code, output } = await runBazel(bin, ['--version'], process.cwd(), process.env.HOME ?? process.cwd());
  return code === 0 ? output.trim().split('\n')[0] : undefined;
}

/**
 * The remote demo with a real Bazel: a workspace of one genrule per demo action, built with
 * `--remote_executor` pointing at the demo's master and `--jobs` as high as the burst, so every
 * action is queued at once. The flags and the token go into the workspace's `.bazelrc` (0600),
 * not onto a command line other users can read.
 */
export class BazelWorkspace {
  private readonly ws: string;
  private readonly startup: string[];
  private readonly bin: string;

  constructor(private readonly o: BazelWorkspaceOptions) {
    this.ws = join(o.dir, 'ws');
    this.bin = o.bazel ?? 'bazel';
    // An idle server goes away by itself should the demo be killed before its shutdown.
    this.startup = [`--output_user_root=${join(o.dir, 'bazel-root')}`, '--max_idle_secs=120'];
  }

  async write(): Promise<void> {
    await fsp.mkdir(this.ws, { recursive: true });
    await fsp.writeFile(join(this.ws, 'WORKSPACE'), '');
    await fsp.writeFile(join(this.ws, DEMO_INPUT.name), DEMO_INPUT.text);
    const rules = actionNames(this.o.actions).map(
      (a) => `genrule(name = "${a}", srcs = ["${DEMO_INPUT.name}"], outs = ["${a}.txt"], cmd = "${actionScript(this.o.actions, a, '$<', '$@')}")\n`,
    );
    await fsp.writeFile(join(this.ws, 'BUILD'), rules.join(''));
    const rc = [
      `build --remote_executor=${this.o.grpcUrl}`,
      // Quoted: an rc file splits on spaces like a shell.
      `build "--remote_header=Authorization=Bearer ${this.o.token}"`,
      `build --jobs=${Math.max(this.o.actions.count, 2)}`,
      'build --color=no --curses=no --show_progress_rate_limit=5',
    ];
    await fsp.writeFile(join(this.ws, '.bazelrc'), rc.join('\n') + '\n', { mode: 0o600 });
  }

  async build(): Promise<BazelBuild> {
    const { code, output } = await runBazel(this.bin, [...this.startup, 'build', '//:all'], this.ws, this.o.dir);
    const processes = /(\d+ process(?:es)?: [^\n]*?)\.?$/m.exec(output)?.[1];
    const count = (re: RegExp) => Number(re.exec(processes ?? '')?.[1] ?? 0);
    return {
      code,
      processes,
      remote: count(/(\d+) remote(?! cache)\b/),
      cacheHits: count(/(\d+) remote cache hit/),
      tail: output.trim().split('\n').slice(-15).join('\n'),
    };
  }

  async clean(): Promise<void> {
    await runBazel(this.bin, [...this.startup, 'clean'], this.ws, this.o.dir);
  }

  /** The outputs in bazel-bin, by action; undefined for one that is missing. */
  async outputs(): Promise<Map<string, string | undefined>> {
    const out = new Map<string, string | undefined>();
    for (const a of actionNames(this.o.actions)) out.set(a, await fsp.readFile(join(this.ws, 'bazel-bin', `${a}.txt`), 'utf8').catch(() => undefined));
    return out;
  }

  async shutdown(): Promise<void> {
    await runBazel(this.bin, [...this.startup, 'shutdown'], this.ws, this.o.dir);
  }
}
