import * as child_process from 'node:child_process';
import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { groupGone, signalGroup } from './process-group';

/** What to run, where, and for how long. Exactly one of `argv` or `shell`. */
export interface RunSpec {
  /** Program and arguments, run directly (PATH lookup uses the child's env). */
  argv?: string[];
  /** A command line for `/bin/sh -c`. */
  shell?: string;
  /** The environment the build starts from (the agent's own, minus its secrets). @defaultValue `{}` */
  baseEnv?: Record<string, string>;
  /** Merged over `baseEnv`. */
  env?: Record<string, string>;
  /** Absolute path of an existing directory. */
  cwd: string;
  timeoutMs: number;
  /** Between SIGTERM and SIGKILL to the process group. @defaultValue 5000 */
  killGraceMs?: number;
}

export type OutputStream = 'stdout' | 'stderr';

/**
 * What happened to one run. Deliberately the same shape as the protocol's `BuildResult`
 * (the executor sits below protocol in the layering, so it cannot import it).
 */
export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Set when the command could not be started at all (ENOENT, bad cwd...). */
  error?: string;
  startedAt: number;
  finishedAt: number;
}

export interface RunHandle {
  /** Undefined when the command could not be spawned. */
  readonly pid: number | undefined;
  /** Settles once the process and everything it started are gone; never rejects. */
  readonly result: Promise<RunResult>;
  /** Terminates the whole process group (SIGTERM, then SIGKILL after the grace period). */
  cancel(reason: string): void;
}

export interface RunDeps {
  spawn?: typeof child_process.spawn;
  /** @defaultValue Date.now */
  now?: () => number;
}

const DEFAULT_KILL_GRACE_MS = 5000;

/**
 * Runs one command in its own process group and streams its output. When the command ends
 * (normally, by timeout or cancel) the rest of its group is terminated too, so a build never
 * leaves background processes behind on the machine.
 */
export function runProcess(
  spec: RunSpec,
  onOutput: (stream: OutputStream, chunk: string) => void,
  deps: RunDeps = {},
): RunHandle {
  const now = deps.now ?? Date.now;
  const spawn = deps.spawn ?? child_process.spawn;
  const startedAt = now();
  const failed = (error: string): RunHandle => ({
    pid: undefined,
    result: Promise.resolve({ exitCode: null, signal: null, timedOut: false, error, startedAt, finishedAt: now() }),
    cancel: () => undefined,
  });

  const problem = checkSpec(spec);
  if (problem) return failed(problem);
  const [file, ...args] = spec.shell !== undefined ? ['/bin/sh', '-c', spec.shell] : (spec.argv as string[]);
  const killGraceMs = spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS;

  let child: child_process.ChildProcess;
  try {
    child = spawn(file as string, args, {
      cwd: spec.cwd,
      env: { ...spec.baseEnv, ...spec.env },
      // A group of its own lets us signal the build's whole process tree at once.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    return failed(err instanceof Error ? err.message : String(err));
  }
  const pid = child.pid;

  let timedOut = false;
  let exit: { code: number | null; signal: string | null } | undefined;
  let spawnError: string | undefined;
  let openStreams = 2;
  let termTimer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  let settle!: (r: RunResult) => void;
  const result = new Promise<RunResult>((resolve) => (settle = resolve));

  let groupEmpty = false;
  const terminateGroup = () => {
    if (killTimer || pid === undefined || groupEmpty) return;
    if (!signalGroup(pid, 'SIGTERM')) {
      groupEmpty = true;
      return;
    }
    killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), killGraceMs);
  };
  let finishing = false;
  const finish = async () => {
    if (finishing) return;
    finishing = true;
    if (termTimer) clearTimeout(termTimer);
    if (killTimer) clearTimeout(killTimer);
    if (drainTimer) clearTimeout(drainTimer);
    // Whatever survived the leader goes now, even if it let go of our pipes; the result
    // promises that nothing of the build runs any more, so wait for the kill to land.
    if (pid !== undefined && !groupEmpty && signalGroup(pid, 'SIGKILL')) await groupGone(pid, 2000);
    settle({
      exitCode: exit?.code ?? null,
      signal: exit?.signal ?? null,
      timedOut,
      ...(spawnError !== undefined && { error: spawnError }),
      startedAt,
      finishedAt: now(),
    });
  };
  const maybeFinish = () => {
    if ((exit || spawnError !== undefined) && openStreams === 0) void finish();
  };

  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) {
      openStreams--;
      continue;
    }
    const decoder = new StringDecoder('utf8');
    stream.on('data', (b: Buffer) => {
      const text = decoder.write(b);
      if (text) onOutput(name, text);
    });
    stream.once('close', () => {
      const rest = decoder.end();
      if (rest) onOutput(name, rest);
      openStreams--;
      maybeFinish();
    });
  }

  child.on('error', (err) => {
    // After a successful spawn this can only be a failed child.kill(), which we never use.
    if (pid !== undefined) return;
    spawnError = err.message;
    maybeFinish();
  });
  child.once('exit', (code, signal) => {
    exit = { code, signal };
    if (termTimer) clearTimeout(termTimer);
    // Leftovers of the build still hold our pipes: ask them to go, then insist.
    terminateGroup();
    drainTimer = setTimeout(() => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, killGraceMs + 1000);
    maybeFinish();
  });

  if (pid !== undefined) {
    termTimer = setTimeout(() => {
      timedOut = true;
      terminateGroup();
      // setTimeout fires at once for delays past 2^31-1 ms (~24.8 days).
    }, Math.min(spec.timeoutMs, 2 ** 31 - 1));
  }

  return {
    pid,
    result,
    cancel: () => {
      if (exit) return;
      if (termTimer) clearTimeout(termTimer);
      terminateGroup();
    },
  };
}

function checkSpec(spec: RunSpec): string | undefined {
  if ((spec.argv === undefined) === (spec.shell === undefined)) return 'exactly one of argv or shell is required';
  if (spec.argv !== undefined && spec.argv.length === 0) return 'argv needs at least the program';
  if (!isAbsolute(spec.cwd)) return `cwd must be absolute: ${spec.cwd}`;
  try {
    if (!statSync(spec.cwd).isDirectory()) return `cwd is not a directory: ${spec.cwd}`;
  } catch {
    return `cwd does not exist: ${spec.cwd}`;
  }
  return undefined;
}
