import { CasClient, parseActionResult, parseDigestString } from '../cas';
import type { BuildRecord } from '../master';
import { BazelWorkspace, bazelVersion } from './bazel-burst';
import { actionNameOf, actionNames, expectedOutput, type DemoActions } from './demo-actions';
import { REMOTE_JOB_TYPE, startDemoFarm, type DemoFarm } from './demo-farm';
import { narrateLogEntry } from './demo-narrator';
import { RemoteNarrator } from './demo-remote-narrator';
import { ReapiBurst } from './reapi-burst';
import { onShutdownSignal } from './shutdown';

export interface DemoRemoteFlags {
  /** Actions in the burst. @defaultValue 24 */
  actions?: number;
  /** How long each action sleeps, so a backlog forms. @defaultValue 1000 */
  actionMs?: number;
  /** `bazel` (Debian's bazel-bootstrap), the `builtin` REAPI client, or `auto`: Bazel when installed. @defaultValue 'auto' */
  client?: 'auto' | 'bazel' | 'builtin';
  /** Exit after the summary instead of keeping the farm up (for the dashboard) until Ctrl-C. */
  exitWhenDone?: boolean;
  /** The cloud pool's quiet period, in seconds. @defaultValue 15 */
  quietSec?: number;
  /** Seconds between progress lines while a burst runs. @defaultValue 2 */
  summaryEvery?: number;
}

/** One round of the burst, as the client reported it. */
interface Round {
  /** Per action: its output (undefined: none), and whether it came from the action cache. */
  outputs: Map<string, string | undefined>;
  cached: number;
  /** Why the client says the round failed; undefined when it did not. */
  failure: string | undefined;
}

/** One client of the burst: Bazel or the built-in one. */
interface BurstClient {
  label: string;
  /** How the second round starts, in words ("after bazel clean"). */
  again: string;
  /** The burst, from clean: every action runs. */
  first(): Promise<Round>;
  /** The same burst again (Bazel: after `bazel clean`): every action from the action cache. */
  second(): Promise<Round>;
  close(): Promise<void>;
}

/**
 * `spillway demo --remote`: the demo's farm with its gRPC port, and a Bazel-style burst of
 * remote actions (REAPI v2): with Debian's Bazel when installed, a workspace of genrules built
 * with `--remote_executor` and `--jobs` as high as the burst; without, a built-in REAPI client
 * that uploads and Executes every action at once. The backlog wakes the local cloud pool, some
 * actions run there; a second round is served from the action cache. Prints where every action
 * ran and a summary, then keeps the farm up for the dashboard until Ctrl-C (like `spillway
 * demo`), or exits with `exitWhenDone`. Exit status 1 when an action failed, ran twice or not
 * at all, or wrote the wrong output, or the second round was not all cache hits.
 */
export async function demoRemote(flags: DemoRemoteFlags, env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const actions: DemoActions = { count: flags.actions ?? 24, sleepMs: flags.actionMs ?? 1000 };
  const version = flags.client === 'builtin' ? undefined : await bazelVersion();
  if (flags.client === 'bazel' && !version) {
    out.write('spillway demo: --client bazel: no bazel on PATH (apt-get install bazel-bootstrap); --client builtin needs none\n');
    return 2;
  }
  const farm = await startDemoFarm({
    remote: true,
    quietSec: flags.quietSec ?? 15,
    env,
    out,
    onLog: (e) => narrateLogEntry(e, out),
    hints: ({ addr, casToken }) => [
      `REAPI (gRPC) ${addr.grpcUrl}: bazel build //... --remote_executor=${addr.grpcUrl} --remote_header=Authorization=Bearer ${casToken}`,
    ],
  });
  const { master, addr } = farm;
  const cas = new CasClient({ baseUrl: `${addr.httpUrl}/cache`, token: farm.casToken });
  const narrate = new RemoteNarrator({
    out,
    now: () => Date.now(),
    jobType: REMOTE_JOB_TYPE,
    onpremExecutors: farm.onpremExecutors,
    actionOf: (b) => actionOfBuild(cas, b),
    queue: async () => {
      const c = await master.queueCounts(REMOTE_JOB_TYPE);
      return { waiting: c.waiting + c.prioritized, running: c.active };
    },
  });
  master.on('build-finished', (b) => narrate.build(b));

  const client: BurstClient = version ? bazelClient(farm, actions, version, out) : builtinClient(farm, actions, flags.client === 'builtin' ? '' : ' (no Bazel on PATH)');
  const stopped = onShutdownSignal();
  const stopping = new AbortController();
  void stopped.then(() => stopping.abort());
  const rounds = runRounds(client, narrate, actions, flags.summaryEvery ?? 2, out, stopping.signal).catch((err: Error) => {
    out.write(`spillway demo: PROBLEM: the burst failed: ${err.message}\n`);
    return { ok: false };
  });
  let verdict: { ok: boolean } | undefined;
  try {
    verdict = await Promise.race([rounds, stopped.then(() => undefined)]);
    await client.close().catch(() => undefined);
    if (verdict && !flags.exitWhenDone) {
      out.write(`spillway demo: the farm stays up: the dashboard ${addr.httpUrl}/ lists each action with its on-prem / CLOUD badge; idle cloud instances hibernate after ${flags.quietSec ?? 15}s; Ctrl-C stops\n`);
      await stopped;
    }
  } finally {
    out.write('spillway demo: stopping\n');
    await farm.stop();
  }
  // A Ctrl-C before the summary is a normal stop, as in `spillway demo`.
  return verdict === undefined || verdict.ok ? 0 : 1;
}

/** Both rounds, then the summary; `ok` false with the reasons printed. */
async function runRounds(client: BurstClient, narrate: RemoteNarrator, actions: DemoActions, every: number, out: NodeJS.WritableStream, signal: AbortSignal): Promise<{ ok: boolean }> {
  const names = actionNames(actions);
  out.write(`spillway demo: burst of ${actions.count} remote actions (each sleeps ${actions.sleepMs} ms) from ${client.label}, all at once\n`);
  const ticker = setInterval(() => void narrate.progress(), every * 1000);
  let first: Round;
  try {
    first = await client.first();
    await narrate.settled();
    await narrate.progress();
  } finally {
    clearInterval(ticker);
  }
  // Ctrl-C during the first round: no second one (the caller is stopping the farm).
  if (signal.aborted) return { ok: false };
  const problems: string[] = [];
  if (first.failure) problems.push(`first round: ${first.failure}`);
  const wrong = names.filter((a) => first.outputs.get(a) !== expectedOutput(a));
  if (wrong.length > 0) problems.push(`wrong or missing output: ${wrong.join(', ')}`);
  const t = narrate.tally();
  const runs = new Map<string, number>();
  for (const r of narrate.ran) runs.set(r.action, (runs.get(r.action) ?? 0) + 1);
  const notOnce = names.filter((a) => runs.get(a) !== 1);
  if (notOnce.length > 0) problems.push(`not run exactly once: ${notOnce.map((a) => `${a} x${runs.get(a) ?? 0}`).join(', ')}`);
  if (t.failed > 0) problems.push(`${t.failed} build(s) failed`);

  out.write(`spillway demo: second round: the same ${actions.count} actions ${client.again}\n`);
  const before = narrate.ran.length;
  const second = await client.second();
  await narrate.settled();
  if (second.failure) problems.push(`second round: ${second.failure}`);
  const ranAgain = narrate.ran.length - before;
  if (second.cached !== actions.count || ranAgain > 0) problems.push(`second round: ${second.cached} of ${actions.count} from the cache, ${ranAgain} ran again`);

  out.write(`  second round: ${second.cached} of ${actions.count} actions served from the action cache, ${ranAgain} ran again\n`);
  const agents = (where: 'onprem' | 'cloud') => {
    const own = narrate.ran.filter((r) => (r.location === 'cloud') === (where === 'cloud')).map((r) => r.agent);
    return [...new Set(own)].sort().map((a) => `${a} ${own.filter((x) => x === a).length}`).join(', ');
  };
  out.write(
    `spillway demo: summary: ${actions.count} actions, ${t.done} ran: on-prem ${t.onprem} (${agents('onprem')}), cloud ${t.cloud} (${agents('cloud') || 'none'}); outputs correct ${actions.count - wrong.length}/${actions.count}; second round: ${second.cached} cached, ${ranAgain} ran\n`,
  );
  if (t.cloud === 0 && t.done > 0) out.write('spillway demo: no action reached the cloud this time (the on-prem agents kept up): try more actions or a longer --action-ms\n');
  for (const p of problems) out.write(`spillway demo: PROBLEM: ${p}\n`);
  return { ok: problems.length === 0 };
}

/** The demo action a build ran: the output its result blob names (the agent's JSON result). */
async function actionOfBuild(cas: CasClient, b: BuildRecord): Promise<string | undefined> {
  if (!b.actionResult) return undefined;
  const blob = await cas.getBlob(parseDigestString(b.actionResult));
  const result = blob && parseActionResult(JSON.parse(blob.toString()));
  return result?.outputFiles.map((f) => actionNameOf(f.path)).find((a) => a !== undefined);
}

function bazelClient(farm: DemoFarm, actions: DemoActions, version: string, out: NodeJS.WritableStream): BurstClient {
  const ws = new BazelWorkspace({ dir: farm.dir, actions, grpcUrl: farm.addr.grpcUrl!, token: farm.casToken });
  const round = async (): Promise<Round> => {
    const b = await ws.build();
    out.write(`  bazel: ${b.processes ?? '(no process count)'}\n`);
    return {
      outputs: await ws.outputs(),
      cached: b.cacheHits,
      failure: b.code === 0 ? undefined : `bazel exited ${b.code}:\n${b.tail}`,
    };
  };
  const written = ws.write();
  return {
    // Debian's bazel-bootstrap calls itself "bazel no_version".
    label: `${/\d/.test(version) ? version.replace(/^bazel/, 'Bazel') : 'Bazel'} (--remote_executor, --jobs ${actions.count})`,
    again: 'after bazel clean',
    async first() {
      await written;
      return round();
    },
    async second() {
      await ws.clean();
      return round();
    },
    close: () => ws.shutdown(),
  };
}

function builtinClient(farm: DemoFarm, actions: DemoActions, why: string): BurstClient {
  const burst = new ReapiBurst(farm.addr.grpcUrl!, farm.casToken, actions);
  const round = async (): Promise<Round> => {
    await burst.upload();
    const outcomes = await burst.executeAll();
    const failed = outcomes.filter((o) => o.error !== undefined || o.exitCode !== 0);
    return {
      outputs: new Map(outcomes.map((o) => [o.action, o.output])),
      cached: outcomes.filter((o) => o.cached).length,
      failure: failed.length === 0 ? undefined : failed.map((o) => `${o.action}: ${o.error ?? `exit ${o.exitCode}`}`).join('; '),
    };
  };
  return { label: `the built-in REAPI client${why}`, again: 'again (Execute checks the action cache first)', first: round, second: round, close: async () => burst.close() };
}
