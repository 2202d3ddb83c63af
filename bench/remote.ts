/**
 * Remote execution benchmark (issue 14's figures), with Debian's Bazel (bazel-bootstrap 4.2.3):
 *
 * - a workspace of BENCH_RULES (200) tiny genrules (`echo N > $@`), built from clean with an
 *   empty cache by Bazel locally (linux-sandbox) and by the master with --remote_executor;
 * - the same build fully cached, after `bazel clean`: through gRPC (--remote_cache=grpc://) and
 *   through Bazel's HTTP cache (--remote_cache=http://.../cache) against the same master and
 *   the same entries;
 * - the fully cached build BENCH_CACHED_RUNS (7) times per protocol, alternating, after one
 *   warm-up build of each (which prints every request kind served, with server-side latency);
 *   the medians are compared, and the master's and the Bazel server's CPU per build are printed
 *   (the requests again for the last round); BENCH_BASE_DIST adds a master built from there;
 * - Execute -> action started (the operation's EXECUTING stage, sent when an agent has the
 *   build) for BENCH_EXEC_SAMPLES (50) distinct tiny actions on an idle agent, one at a time,
 *   and Execute -> COMPLETED for the same actions, from a client in this process and from one
 *   in its own process (as Bazel is), with the server-side stages of each Execute.
 *
 * The master runs in this process (startDaemon, its own redis-server); the agent is a real
 * `spillway agent` process with 2 executors. One Bazel server is warmed up first and kept for
 * every build, so the figures are build wall times without JVM start-up. Everything runs in a
 * temp dir removed at the end, under a budget.
 *
 *   npm run bench:remote        # or: node dist/bench/remote.js
 *   BENCH_RULES=50 BENCH_EXEC_SAMPLES=20 node dist/bench/remote.js
 *   BENCH_PROFILE=1 node dist/bench/remote.js   # plus a CPU profile of the master per protocol
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, promises as fsp, readFileSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { CasClient, digestOf, type Digest } from '../src/cas';
import { startDaemon, type Daemon } from '../src/cli/daemon';
import { parseConfig } from '../src/config';
import { createLogger, startRedisServer, type RedisServerHandle } from '../src/lib';
import { reapiProtos } from '../src/remote-execution';
import { f1, f2, intEnv, machineInfo, machineLine, once, printTable, runBench, say, stats, type Stats, type TableRow } from './harness';
import { timeAll, type ExecuteSample } from './remote-execute-client';
import { spawnLogged, stopChild, type LoggedChild } from './procs';
import { printProfile } from './cpuprofile';
import { ExecuteStages, RequestTally } from './remote-trace';
import { processCpuMs, startBaseDaemon } from './remote-baseline';

const run = promisify(execFile);
const RULES = intEnv('BENCH_RULES', 200);
const EXEC_SAMPLES = intEnv('BENCH_EXEC_SAMPLES', 50);
/** Fully cached builds per protocol, alternating gRPC and HTTP so load changes hit both alike; the medians are compared. */
const CACHED_RUNS = intEnv('BENCH_CACHED_RUNS', 7);
/** Execute samples not counted: they open the connections. */
const WARMUP = 3;
/** BENCH_PROFILE=1: a CPU profile of this process (the master) during the first counted cached build of each protocol. */
const PROFILE = process.env.BENCH_PROFILE === '1';
/** BENCH_BASE_DIST=/work/base/dist: also time the cached gRPC build against a master built from there, in the same rounds. */
const BASE_DIST = process.env.BENCH_BASE_DIST;
const baseServers: Array<() => Promise<void>> = [];

async function startProfile(): Promise<{ stop(file: string): Promise<string> }> {
  const session = new Session();
  session.connect();
  const post = (method: string): Promise<unknown> => new Promise((ok, fail) => session.post(method, (err, res) => (err ? fail(err) : ok(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      session.disconnect();
      await fsp.writeFile(file, JSON.stringify(profile));
      return file;
    },
  };
}
const TOKEN = randomBytes(16).toString('hex');
const AGENT_TOKEN = randomBytes(16).toString('hex');
const CLI = resolve(__dirname, '../src/cli/main.js');

const dir = mkdtempSync(join(tmpdir(), 'spillway-bench-remote-'));
// A root agent runs builds as its build user (nobody), who must pass through to the work dir.
chmodSync(dir, 0o711);
let redis: RedisServerHandle | undefined;
let daemon: Daemon | undefined;
let agent: LoggedChild | undefined;
const ws = join(dir, 'ws');
const outputRoot = join(dir, 'bazel-root');

async function bazel(args: string[]): Promise<{ ms: number; stderr: string }> {
  const t0 = performance.now();
  const { stderr } = await run('bazel', [`--output_user_root=${outputRoot}`, ...args], { cwd: ws, env: { ...process.env, HOME: dir }, maxBuffer: 64 * 1024 * 1024 });
  return { ms: performance.now() - t0, stderr };
}

/** One timed build from clean: `bazel clean`, then `bazel build //:all` with `flags`. */
async function cleanBuild(what: string, flags: string[]): Promise<number> {
  await bazel(['clean']);
  const { ms, stderr } = await bazel(['build', '//:all', ...flags]);
  const processes = /INFO: (\d+ processes[^\n]*)/.exec(stderr)?.[1] ?? '?';
  say(`${what}: ${f2(ms / 1000)} s (${processes})`);
  return ms;
}

const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });

async function main(): Promise<number> {
  await run('bazel', ['--version']);
  say(machineLine(machineInfo()));
  redis = await startRedisServer();
  const rawConfig = {
      redis: { url: redis.url },
      http: { host: '127.0.0.1', port: 0 },
      grpc: { host: '127.0.0.1', port: 0 },
      agents: { host: '127.0.0.1', port: 0, token: AGENT_TOKEN },
      jobTypes: { remote: { attempts: 1, timeoutSec: 300 } },
      cas: { dir: join(dir, 'cas'), prefix: '/cache', tokens: [TOKEN] },
      remoteExecution: { defaultJobType: 'remote' },
      log: { level: 'warn' },
  };
  const config = parseConfig(rawConfig, {});
  daemon = await startDaemon({ config, log: createLogger({ level: 'warn', silent: true }) });
  const { httpUrl, agentUrl, grpcUrl } = daemon.addresses;
  const casUrl = `${httpUrl}/cache`;
  agent = spawnLogged('agent', process.execPath, [CLI, 'agent', '--master', agentUrl, '--name', 'bench-agent', '--job-types', 'remote', '--executors', '2', '--cas', casUrl, '--work-dir', join(dir, 'agent-work'), '--cache-dir', join(dir, 'agent-cache')], join(dir, 'agent.log'), {
    ...process.env,
    SPILLWAY_AGENT_TOKEN: AGENT_TOKEN,
    SPILLWAY_CAS_TOKEN: TOKEN,
  });
  await new Promise<void>((ok, fail) => {
    const deadline = Date.now() + 60_000;
    const check = () => (daemon!.master.agents().length > 0 ? ok() : Date.now() > deadline ? fail(new Error('the agent did not connect')) : setTimeout(check, 50));
    check();
  });

  await fsp.mkdir(ws, { recursive: true });
  await fsp.writeFile(join(ws, 'WORKSPACE'), '');
  await fsp.writeFile(join(ws, 'BUILD'), Array.from({ length: RULES }, (_, i) => `genrule(name = "r${i}", outs = ["r${i}.txt"], cmd = "echo ${i} > $@")\n`).join(''));
  say(`warming up the Bazel server (${RULES} genrules)`);
  await bazel(['build', '//:all']);

  const header = `--remote_header=Authorization=Bearer ${TOKEN}`;
  const local = await cleanBuild('local, clean', []);
  const remote = await cleanBuild('remote execution, empty cache', [`--remote_executor=${grpcUrl}`, header]);
  // BENCH_BASE_DIST: a second master from another build (the unchanged main) on its own
  // redis-server and CAS, timed in the same rounds.
  let base: { url: string } | undefined;
  if (BASE_DIST) {
    // The same entries on both: a copy of this master's CAS (idle now; its index log is append-only).
    await fsp.cp(join(dir, 'cas'), join(dir, 'cas-base'), { recursive: true });
    const baseRedis = await startRedisServer();
    const baseDaemon = await startBaseDaemon(BASE_DIST, { ...rawConfig, redis: { url: baseRedis.url }, cas: { ...rawConfig.cas, dir: join(dir, 'cas-base') }, remoteExecution: {} });
    baseServers.push(async () => {
      await baseDaemon.stop().catch(() => undefined);
      await baseRedis.stop().catch(() => undefined);
    });
    base = { url: baseDaemon.addresses.grpcUrl! };
  }
  const bazelPid = Number((await run('bazel', [`--output_user_root=${outputRoot}`, 'info', 'server_pid'], { cwd: ws, env: { ...process.env, HOME: dir } })).stdout.trim());
  type Target = 'gRPC' | 'HTTP' | 'gRPC, base master';
  const targets: Target[] = base ? ['gRPC', 'gRPC, base master', 'HTTP'] : ['gRPC', 'HTTP'];
  const flagsOf: Record<Target, string[]> = {
    gRPC: [`--remote_cache=${grpcUrl}`, header],
    HTTP: [`--remote_cache=${casUrl.replace('http://', `http://ci:${TOKEN}@`)}`],
    'gRPC, base master': base ? [`--remote_cache=${base.url}`, header] : [],
  };
  const tally = new RequestTally();
  const runs = Object.fromEntries(targets.map((t) => [t, { ms: [] as number[], cpu: [] as number[], bazelCpu: [] as number[] }])) as Record<Target, { ms: number[]; cpu: number[]; bazelCpu: number[] }>;
  const tallied = async (target: Target, warmUp: boolean, show = warmUp): Promise<void> => {
    const r = runs[target];
    const profile = !warmUp && PROFILE && r.ms.length === 0 ? await startProfile() : undefined;
    tally.start();
    const c0 = process.cpuUsage();
    const b0 = processCpuMs(bazelPid);
    try {
      const ms = await cleanBuild(`fully cached via ${target}${warmUp ? ', warm-up' : ''}`, flagsOf[target]);
      if (!warmUp) r.ms.push(ms);
    } finally {
      const c = process.cpuUsage(c0);
      tally.stop();
      if (!warmUp) {
        r.cpu.push((c.user + c.system) / 1000);
        r.bazelCpu.push(processCpuMs(bazelPid) - b0);
      }
      if (show) for (const l of tally.lines()) say(`  ${l}`);
      if (profile) printProfile(`the master during a cached build via ${target}`, await profile.stop(join(dir, `${target.replace(/\W+/g, '-')}.cpuprofile`)));
    }
  };
  // One build of each first, not counted (it shows the requests): the outputs uploaded by the
  // agent then sit in the master's memory tier for both, whichever protocol comes first.
  for (const t of targets) await tallied(t, true);
  for (let i = 0; i < CACHED_RUNS; i++) {
    // ABAB... would give one target the Bazel server's state after the other's build every time.
    const order = i % 2 === 0 ? targets : [...targets].reverse();
    // The last round shows the requests again: the warm-up's are the first look at every entry.
    for (const t of order) await tallied(t, false, i === CACHED_RUNS - 1);
  }
  const median = (t: Target, k: 'ms' | 'cpu' | 'bazelCpu') => stats(runs[t][k]).p50;
  for (const t of targets) say(`cached build via ${t}, median of ${CACHED_RUNS}: ${f2(median(t, 'ms') / 1000)} s; master process CPU ${f1(median(t, 'cpu'))} ms; Bazel server CPU ${f1(median(t, 'bazelCpu'))} ms`);
  if (base) {
    const pairs = runs.gRPC.ms.map((ms, i) => ms / runs['gRPC, base master'].ms[i]!);
    say(`gRPC, this master / base master, per round: ${pairs.map(f2).join(' ')} (median ${f2(stats(pairs).p50)})`);
  }
  const grpcCached = median('gRPC', 'ms');
  const httpCached = median('HTTP', 'ms');
  await bazel(['shutdown']);

  // Execute -> started: distinct tiny actions, one at a time, on an idle agent; from a client
  // in this process and from one in a process of its own (as Bazel is), each on fresh actions.
  const cas = new CasClient({ baseUrl: casUrl, token: TOKEN });
  const codecs = reapiProtos();
  const root = digestOf(Buffer.alloc(0));
  const actions = async (tag: string): Promise<Digest[]> => {
    const out: Digest[] = [];
    for (let i = 0; i < EXEC_SAMPLES + WARMUP; i++) {
      const command = codecs.command.encode({ arguments: ['/bin/true', tag, String(i)] });
      const action = codecs.action.encode({ commandDigest: wire(digestOf(command)), inputRootDigest: wire(root) });
      await cas.uploadMissing([command, action].map((data) => ({ digest: digestOf(data), data })));
      out.push(digestOf(action));
    }
    return out;
  };
  const measure = async (what: string, run: (a: Digest[]) => Promise<ExecuteSample[]>): Promise<{ started: Stats; completed: Stats }> => {
    const list = await actions(what);
    const stages = new ExecuteStages();
    stages.start();
    let samples: ExecuteSample[];
    try {
      samples = (await run(list)).slice(WARMUP); // the first few warm up the connections
    } finally {
      stages.stop();
    }
    const started = stats(samples.map((s) => s.started));
    const completed = stats(samples.map((s) => s.completed));
    say(`Execute from ${what}: -> EXECUTING p50 ${f1(started.p50)} ms p90 ${f1(started.p90)} ms; -> COMPLETED p50 ${f1(completed.p50)} ms p90 ${f1(completed.p90)} ms`);
    say('  server side, ms since the handler started:');
    for (const l of stages.lines(WARMUP)) say(`    ${l}`);
    const epoch = (t: number | undefined) => (t === undefined ? NaN : performance.timeOrigin + t);
    const received = stages.receivedTimes().slice(WARMUP);
    const dispatched = stages.dispatchedTimes().slice(WARMUP);
    const toServer = stats(samples.map((s, i) => epoch(received[i]) - s.sentAt));
    const toClient = stats(samples.map((s, i) => s.sentAt + s.started - epoch(dispatched[i])));
    say(`    client call -> handler started: p50 ${f2(toServer.p50)} ms p90 ${f2(toServer.p90)} ms`);
    say(`    dispatched -> client reads EXECUTING: p50 ${f2(toClient.p50)} ms p90 ${f2(toClient.p90)} ms`);
    return { started, completed };
  };
  const inProcess = await measure('a client in the master process', (list) => timeAll(grpcUrl!, TOKEN, list));
  const ownProcess = await measure('a client process (as Bazel)', async (list) => {
    const file = join(dir, 'actions.json');
    await fsp.writeFile(file, JSON.stringify(list));
    const { stdout } = await run(process.execPath, [join(__dirname, 'remote-execute-client.js'), grpcUrl!, TOKEN, file], { maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(stdout) as ExecuteSample[];
  });
  const { started, completed } = ownProcess;

  const rows: TableRow[] = [
    [`clean build, ${RULES} genrules, Bazel local`, `${f1(local / 1000)} s`, '', undefined],
    [`clean build, ${RULES} genrules, remote execution`, `${f1(remote / 1000)} s`, '', undefined],
    ['  per-action overhead of remote vs local', `${f1((remote - local) / RULES)} ms`, '', undefined],
    [`fully cached build via gRPC, median of ${CACHED_RUNS}`, `${f2(grpcCached / 1000)} s`, `<= HTTP (${f2(httpCached / 1000)} s)`, grpcCached <= httpCached],
    [`fully cached build via Bazel HTTP cache, median of ${CACHED_RUNS}`, `${f2(httpCached / 1000)} s`, '', undefined],
    ...(base ? [[`fully cached build via gRPC against the base master, median of ${CACHED_RUNS}`, `${f2(median('gRPC, base master', 'ms') / 1000)} s`, '', undefined] as TableRow] : []),
    ['master CPU per cached build, gRPC / HTTP', `${f1(median('gRPC', 'cpu'))} / ${f1(median('HTTP', 'cpu'))} ms`, '', undefined],
    ['Bazel server CPU per cached build, gRPC / HTTP', `${f1(median('gRPC', 'bazelCpu'))} / ${f1(median('HTTP', 'bazelCpu'))} ms`, '', undefined],
    [`Execute -> action started, client process, p50 (n=${started.n})`, `${f1(started.p50)} ms`, '<= 5 ms', started.p50 <= 5],
    ['Execute -> action started, client process, p90', `${f1(started.p90)} ms`, '', undefined],
    ['Execute -> action started, client in the master process, p50', `${f1(inProcess.started.p50)} ms`, '', undefined],
    ['Execute -> COMPLETED (/bin/true), p50', `${f1(completed.p50)} ms`, '', undefined],
  ];
  printTable(rows);
  return 0;
}

const cleanup = once(async () => {
  if (agent) await stopChild(agent);
  for (const stop of baseServers) await stop();
  await daemon?.stop().catch(() => undefined);
  await redis?.stop().catch(() => undefined);
});

runBench(main, {
  budgetMs: intEnv('BENCH_BUDGET_MS', 15 * 60_000),
  cleanup,
  kill: () => agent?.child.kill('SIGKILL'),
  afterCleanup: () => rmSync(dir, { recursive: true, force: true }),
  onError: () => {
    try {
      process.stderr.write(`agent log:\n${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-4000)}\n`);
    } catch {
      // no log yet
    }
  },
});
