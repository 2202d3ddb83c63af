/**
 * Remote execution benchmark (issue 14's figures), with Debian's Bazel (bazel-bootstrap 4.2.3):
 *
 * - a workspace of BENCH_RULES (200) tiny genrules (`echo N > $@`), built from clean with an
 *   empty cache by Bazel locally (linux-sandbox) and by the master with --remote_executor;
 * - the same build fully cached, after `bazel clean`: through gRPC (--remote_cache=grpc://) and
 *   through Bazel's HTTP cache (--remote_cache=http://.../cache) against the same master and
 *   the same entries;
 * - Execute -> action started (the operation's EXECUTING stage, sent when an agent has the
 *   build) for BENCH_EXEC_SAMPLES (50) distinct tiny actions on an idle agent, one at a time,
 *   and Execute -> COMPLETED for the same actions.
 *
 * The master runs in this process (startDaemon, its own redis-server); the agent is a real
 * `spillway agent` process with 2 executors. One Bazel server is warmed up first and kept for
 * every build, so the figures are build wall times without JVM start-up. Everything runs in a
 * temp dir removed at the end, under a budget.
 *
 *   npm run bench:remote        # or: node dist/bench/remote.js
 *   BENCH_RULES=50 BENCH_EXEC_SAMPLES=20 node dist/bench/remote.js
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, promises as fsp, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { CasClient, digestOf, type Digest } from '../src/cas';
import { startDaemon, type Daemon } from '../src/cli/daemon';
import { parseConfig } from '../src/config';
import { createLogger, startRedisServer, type RedisServerHandle } from '../src/lib';
import { reapiProtos, type Operation__Output } from '../src/remote-execution';
import { f1, intEnv, machineInfo, machineLine, once, printTable, runBench, say, stats, type TableRow } from './harness';
import { spawnLogged, stopChild, type LoggedChild } from './procs';

const run = promisify(execFile);
const RULES = intEnv('BENCH_RULES', 200);
const EXEC_SAMPLES = intEnv('BENCH_EXEC_SAMPLES', 50);
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
  say(`${what}: ${f1(ms / 1000)} s (${processes})`);
  return ms;
}

const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });

/** Execute one action; ms to the EXECUTING stage and to COMPLETED. */
function timeExecute(execution: ReturnType<typeof executionClient>, action: Digest): Promise<{ started: number; completed: number }> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  const t0 = performance.now();
  const out = { started: NaN, completed: NaN };
  const call = execution.execute({ actionDigest: wire(action), skipCacheLookup: true }, md);
  return new Promise((resolvePromise, reject) => {
    call.on('data', (op: Operation__Output) => {
      const stage = op.metadata ? reapiProtos().executeOperationMetadata.decode(op.metadata.value).stage : '';
      if (stage === 'EXECUTING' && Number.isNaN(out.started)) out.started = performance.now() - t0;
      if (op.done) out.completed = performance.now() - t0;
    });
    call.on('error', reject);
    call.on('end', () => resolvePromise(out));
  });
}

function executionClient(url: string) {
  const v2 = reapiProtos().grpc.build.bazel.remote.execution.v2;
  return new v2.Execution(url.replace('grpc://', ''), grpc.credentials.createInsecure());
}

async function main(): Promise<number> {
  await run('bazel', ['--version']);
  say(machineLine(machineInfo()));
  redis = await startRedisServer();
  const config = parseConfig(
    {
      redis: { url: redis.url },
      http: { host: '127.0.0.1', port: 0 },
      grpc: { host: '127.0.0.1', port: 0 },
      agents: { host: '127.0.0.1', port: 0, token: AGENT_TOKEN },
      jobTypes: { remote: { attempts: 1, timeoutSec: 300 } },
      cas: { dir: join(dir, 'cas'), prefix: '/cache', tokens: [TOKEN] },
      remoteExecution: { defaultJobType: 'remote' },
      log: { level: 'warn' },
    },
    {},
  );
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
  const grpcCached = await cleanBuild('fully cached via gRPC', [`--remote_cache=${grpcUrl}`, header]);
  const httpCached = await cleanBuild('fully cached via HTTP', [`--remote_cache=${casUrl.replace('http://', `http://ci:${TOKEN}@`)}`]);
  await bazel(['shutdown']);

  // Execute -> started: distinct tiny actions, one at a time, on an idle agent.
  const cas = new CasClient({ baseUrl: casUrl, token: TOKEN });
  const put = async (b: Buffer): Promise<Digest> => {
    const d = digestOf(b);
    await cas.uploadMissing([{ digest: d, data: b }]);
    return d;
  };
  const codecs = reapiProtos();
  const root = digestOf(Buffer.alloc(0));
  const execution = executionClient(grpcUrl!);
  const samples: Array<{ started: number; completed: number }> = [];
  for (let i = 0; i < EXEC_SAMPLES + 3; i++) {
    const command = await put(codecs.command.encode({ arguments: ['/bin/true', String(i)] }));
    const action = await put(codecs.action.encode({ commandDigest: wire(command), inputRootDigest: wire(root) }));
    const t = await timeExecute(execution, action);
    if (i >= 3) samples.push(t); // the first few warm up the connections
  }
  execution.close();
  const started = stats(samples.map((s) => s.started));
  const completed = stats(samples.map((s) => s.completed));
  say(`Execute -> EXECUTING: p50 ${f1(started.p50)} ms p90 ${f1(started.p90)} ms; -> COMPLETED: p50 ${f1(completed.p50)} ms p90 ${f1(completed.p90)} ms`);

  const rows: TableRow[] = [
    [`clean build, ${RULES} genrules, Bazel local`, `${f1(local / 1000)} s`, '', undefined],
    [`clean build, ${RULES} genrules, remote execution`, `${f1(remote / 1000)} s`, '', undefined],
    ['  per-action overhead of remote vs local', `${f1((remote - local) / RULES)} ms`, '', undefined],
    ['fully cached build via gRPC', `${f1(grpcCached / 1000)} s`, `<= HTTP (${f1(httpCached / 1000)} s)`, grpcCached <= httpCached],
    ['fully cached build via Bazel HTTP cache', `${f1(httpCached / 1000)} s`, '', undefined],
    [`Execute -> action started, p50 (n=${started.n})`, `${f1(started.p50)} ms`, '<= 5 ms', started.p50 <= 5],
    ['Execute -> action started, p90', `${f1(started.p90)} ms`, '', undefined],
    ['Execute -> COMPLETED (/bin/true), p50', `${f1(completed.p50)} ms`, '', undefined],
  ];
  printTable(rows);
  return 0;
}

const cleanup = once(async () => {
  if (agent) await stopChild(agent);
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
