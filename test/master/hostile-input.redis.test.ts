import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { WebSocket, type RawData } from 'ws';
import { freePort } from '../../src/lib';
import type { BuildRecord } from '../../src/master';
import { helloFrameFor } from '../helpers/hello-frame';
import { HostileInput } from '../helpers/hostile-input';
import { farmConfigRaw, spawnCli, TOKEN, writeConfigFile, type CliProcess } from '../helpers/farm';
import { seededRandom, seedFrom } from '../helpers/prng';

const ADMIN = 'admin-token-0123456789';
const CAS_TOKEN = 'cas-token-0123456789';
const LIMIT = 64 * 1024;
const JOB_TYPES = ['b2g', 'linux64', 'fuzzing'];

/** A case is replayed from its own seed, so the run's interleaving cannot change its input. */
interface Case {
  kind: 'ws' | 'http' | 'queue';
  seed: number;
}

/** What went wrong, for the failure message: one line per offending input. */
type Findings = string[];

describe('faults: hostile input against a running master (seeded fuzz)', function () {
  this.timeout(60_000);
  const seed = seedFrom('SPILLWAY_FUZZ_SEED');
  const count = Number(process.env.SPILLWAY_FUZZ_COUNT ?? 500);
  const procs: CliProcess[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    await Promise.allSettled(closers.splice(0).map((c) => c()));
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });

  it(`stays up and correct through ${count} hostile frames, requests and jobs`, async () => {
    const replay = `SPILLWAY_FUZZ_SEED=${seed} SPILLWAY_FUZZ_COUNT=${count}`;
    console.log(`      fuzz: ${replay}`);
    const [httpPort, agentPort, deadPort] = [await freePort(), await freePort(), await freePort()];
    const raw = farmConfigRaw({ log: { level: 'info', format: 'json' } });
    Object.assign(raw.http as object, { port: httpPort, bodyLimitBytes: LIMIT });
    // Hundreds of connections from one address: the registration rate limit (tested on its own)
    // would otherwise turn most of them away before a frame is read.
    Object.assign(raw.agents as object, { port: agentPort, maxFrameBytes: LIMIT, registrationRate: { burst: 100_000, perMinute: 100_000 } });
    raw.jobTypes = { b2g: { attempts: 2 }, linux64: {}, fuzzing: { attempts: 1, overflow: { pool: 'cloud', enabled: false } } };
    // A pool makes the rules routes live; its EC2 endpoint is a closed port, so nothing launches.
    raw.pools = {
      cloud: {
        provider: 'ec2',
        maxInstances: 1,
        ec2: { region: 'eu-west-1', endpoint: `http://127.0.0.1:${deadPort}`, launchTemplate: { name: 'none' }, subnetIds: ['subnet-none'] },
      },
    };
    raw.adminToken = ADMIN;
    raw.cas = { dir: mkdtempSync(join(tmpdir(), 'spillway-fuzz-cas-')), tokens: [CAS_TOKEN] };
    const redis = raw.redis as { url: string; queuePrefix: string };
    const master = spawnCli(['master', '--config', writeConfigFile(raw)], {
      AWS_ACCESS_KEY_ID: 'fuzz',
      AWS_SECRET_ACCESS_KEY: 'fuzz',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    procs.push(master);
    await master.waitForOutput(/HTTP API/);
    const http = `http://127.0.0.1:${httpPort}`;
    const wsUrl = `ws://127.0.0.1:${agentPort}`;

    // The well-behaved agent is there all along, in its own process; only it serves b2g.
    // It also runs cached actions against the master's CAS, so hostile input trees reach a real agent.
    const good = spawnCli(['agent', '--master', wsUrl, '--name', 'good-agent', '--job-types', 'b2g', '--executors', '1', '--cas', http], {
      SPILLWAY_AGENT_TOKEN: TOKEN,
      SPILLWAY_CAS_TOKEN: CAS_TOKEN,
    });
    procs.push(good);
    await good.waitForOutput(/agent\.welcomed/);

    const connection = { url: redis.url };
    const b2g = new Queue('b2g', { connection, prefix: redis.queuePrefix });
    // From the stream's start: a job settled before the first read of '$' would be missed.
    const events = new QueueEvents('b2g', { connection, prefix: redis.queuePrefix, lastEventId: '0-0' });
    closers.push(() => b2g.close(), () => events.close());
    await events.waitUntilReady();
    const failed = new Map<string, string>();
    const completed = new Set<string>();
    const settledWaiters: Array<() => void> = [];
    events.on('failed', ({ jobId, failedReason }) => (failed.set(jobId, failedReason), settledWaiters.forEach((w) => w())));
    events.on('completed', ({ jobId }) => (completed.add(jobId), settledWaiters.forEach((w) => w())));

    const h = new HostileInput(seededRandom(seed));
    const cases: Case[] = Array.from({ length: count }, () => ({ kind: h.pick(['ws', 'ws', 'ws', 'http', 'http', 'queue'] as const), seed: h.int(2 ** 32) }));
    const findings: Findings = [];
    const malformed: string[] = [];
    const ctx: FuzzContext = { http, wsUrl, b2g, malformed, findings, knownJobIds: [], unrunnable: [], hostileTrees: [], counts: {} };
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const r = new HostileInput(seededRandom(c.seed));
        ctx.counts[c.kind] = (ctx.counts[c.kind] ?? 0) + 1;
        if (c.kind === 'ws') await wsCase(r, ctx);
        else if (c.kind === 'http') await httpCase(r, ctx);
        else await queueCase(r, ctx);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));

    // Waits end early, and say why, if the master dies.
    const bounded = <T>(p: Promise<T>, ms: number, message: () => string): Promise<T> =>
      Promise.race([
        within(p, ms, message),
        master.exited.then(({ code, signal }) => {
          throw new Error(`the master exited (${code ?? signal}) (${replay}):\n${master.output().slice(-3000)}`);
        }),
      ]);

    // Malformed jobs fail with the reason, each one; none completes and nothing hangs.
    await bounded(
      new Promise<void>((resolve) => {
        const check = () => malformed.every((id) => failed.has(id) || completed.has(id)) && resolve();
        settledWaiters.push(check);
        check();
      }),
      20_000,
      () => `malformed jobs not settled: ${malformed.filter((id) => !failed.has(id) && !completed.has(id)).join(', ')} (${replay})`,
    );
    for (const id of malformed) {
      assert.ok(!completed.has(id), `malformed job ${id} completed: ${JSON.stringify((await b2g.getJob(id))?.data)} (${replay})`);
      assert.match(failed.get(id) ?? '', /^invalid job data: /, `job ${id} (${replay})`);
    }
    assert.deepEqual(findings, [], replay);

    // The master is still up and still right.
    assert.equal(master.child.exitCode, null, `the master exited (${replay}):\n${master.output().slice(-4000)}`);
    const health = await fetch(`${http}/healthz`);
    assert.deepEqual([health.status, await health.json()], [200, { ok: true, redis: 'ok', agentListener: 'ok' }]);
    const rules = (await (await fetch(`${http}/api/rules`)).json()) as { rules: Record<string, unknown> };
    assert.deepEqual(Object.keys(rules.rules).filter((t) => !JOB_TYPES.includes(t)), [], `rules exist only for configured job types (${replay})`);

    const fresh = await b2g.add('build', { argv: ['true'] });
    await bounded(
      new Promise<void>((resolve) => {
        const check = () => completed.has(fresh.id!) && resolve();
        settledWaiters.push(check);
        check();
      }),
      15_000,
      () => `a fresh job was not completed: ${failed.get(fresh.id!) ?? 'still open'} (${replay})`,
    );
    console.log(`      fuzz: ${JSON.stringify(ctx.counts)} cases; ${malformed.length} malformed, ${ctx.unrunnable.length} unrunnable and ${ctx.hostileTrees.length} hostile-tree jobs`);
    const view = (await (await fetch(`${http}/api/jobs/${fresh.id}?type=b2g`)).json()) as { state: string; builds: BuildRecord[] };
    assert.equal(view.state, 'completed');
    assert.equal(view.builds.at(-1)?.agent, 'good-agent');
    assert.equal(good.child.exitCode, null);
    assert.doesNotMatch(good.output(), /agent\.(disconnected|rejected)/, 'no hostile client got the good agent cut off');

    // Unrunnable jobs wait with their reason; none ran, none failed, and they held nothing up (the fresh job ran).
    for (const id of ctx.unrunnable) {
      assert.ok(!completed.has(id) && !failed.has(id), `unrunnable job ${id} settled: ${failed.get(id) ?? 'completed'} (${replay})`);
    }
    if (ctx.unrunnable.length) {
      const one = (await (await fetch(`${http}/api/jobs/${ctx.unrunnable[0]}?type=b2g`)).json()) as { unrunnable?: string | null };
      assert.match(one.unrunnable ?? '', /label gpu/, `unrunnable job ${ctx.unrunnable[0]} shows why (${replay})`);
    }
    // Hostile input trees failed their job with the reason; the agent is still up (checked above).
    await bounded(
      new Promise<void>((resolve) => {
        const check = () => ctx.hostileTrees.every((id) => failed.has(id) || completed.has(id)) && resolve();
        settledWaiters.push(check);
        check();
      }),
      30_000,
      () => `hostile trees not settled: ${ctx.hostileTrees.filter((id) => !failed.has(id) && !completed.has(id)).join(', ')} (${replay})`,
    );
    for (const id of ctx.hostileTrees) {
      assert.ok(failed.has(id), `the action ${id} with a hostile input tree completed (${replay})`);
      assert.match(failed.get(id) ?? '', /input tree|directory|entry name|symlink|deeper|not in the local cache|invalid job data/, `job ${id} (${replay})`);
    }
    // Every build of every b2g job ran on the good agent: no forged frame started or settled one.
    for (const id of ctx.knownJobIds) {
      const v = (await (await fetch(`${http}/api/jobs/${id}?type=b2g&log=0`)).json()) as { builds?: BuildRecord[] };
      for (const b of v.builds ?? []) assert.equal(b.agent, 'good-agent', `job ${id} has a build by ${b.agent} (${replay})`);
    }
    const metrics = await (await fetch(`${http}/metrics`)).text();
    const refused = [...metrics.matchAll(/^spillway_frames_refused_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    assert.ok(count < 100 || refused > 0, `forged frames are counted in /metrics (${replay})`);

    const out = master.output();
    assert.doesNotMatch(out, /unhandled|uncaught|TypeError|RangeError|ReferenceError/i, `the master's output (${replay})`);
    const errors = out.split('\n').filter((l) => l.includes('"level":"error"') && !/"event":"pool\.(setup-failed|error)"/.test(l));
    assert.deepEqual(errors, [], `errors logged (${replay})`);
  });
});

interface FuzzContext {
  http: string;
  wsUrl: string;
  b2g: Queue;
  /** Ids of the malformed jobs added to b2g: each must fail with a reason. */
  malformed: string[];
  findings: Findings;
  /** Ids of real jobs, for frames that claim jobs the agent does not hold. */
  knownJobIds: string[];
  /** Ids of b2g jobs that ask for a label no agent has: they wait, and never hold up the rest. */
  unrunnable: string[];
  /** Ids of b2g actions whose input tree is hostile: each must fail with a reason, the agent carry on. */
  hostileTrees: string[];
  /** How many cases of each class ran, for the README's figures. */
  counts: Record<string, number>;
}

/** Rejects with `message()` if `p` has not settled within `ms`: a bound on a failure, not a wait. */
function within<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  return Promise.race([p, new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error(message()))))]);
}

function validHello(name: string): Record<string, unknown> {
  return { ...helloFrameFor({ name, location: 'cloud', jobTypes: ['fuzzing'], executors: 2, version: 'fuzz' }) };
}

function validResult(): Record<string, unknown> {
  return { exitCode: 0, signal: null, timedOut: false, startedAt: Date.now() - 10, finishedAt: Date.now() };
}

/** A frame an agent might send, claiming a job it may well not hold. */
function claimFrame(r: HostileInput, ctx: FuzzContext): Record<string, unknown> {
  const held = {
    queue: r.pick(['b2g', 'fuzzing', 'linux64', 'nope', r.string()]),
    jobId: r.chance(0.6) && ctx.knownJobIds.length ? r.pick(ctx.knownJobIds) : r.string() || '1',
    // Guessed tokens: the old sequential shape, garbage, and 128 random bits like the real ones.
    lockToken: r.pick(['master-00000000:1', r.string() || 't', hexFrom(r, 16)]),
  };
  switch (r.int(5)) {
    case 0:
      return { type: 'started', ...held, startedAt: Date.now() };
    case 1:
      return { type: 'log', queue: held.queue, jobId: held.jobId, stream: r.pick(['stdout', 'stderr']), data: r.string() };
    case 2:
      return { type: 'finished', ...held, result: r.chance(0.5) ? validResult() : r.mutate(validResult()) };
    case 3:
      return { type: 'heartbeat', running: Array.from({ length: r.int(4) }, () => r.string()) };
    default:
      return r.pick([{ type: 'draining' }, validHello('again'), { type: r.string() }, { type: r.value(2) }, { type: 'assign' }, { type: 'welcome' }]);
  }
}

function garbageFrame(r: HostileInput, ctx: FuzzContext): string | Buffer {
  switch (r.int(8)) {
    case 0:
      return r.badJson();
    case 1:
      return randomBytesFrom(r, 1 + r.int(512));
    case 2:
      return r.deep(r.pick([64, 5_000, 40_000]));
    case 3:
      return JSON.stringify(r.value(4));
    case 4:
      return r.chance(0.1) ? 'y'.repeat(LIMIT + 1) : JSON.stringify({ type: 'log', queue: 'b2g', jobId: '1', stream: 'stdout', data: 'z'.repeat(LIMIT / 2) });
    case 5:
      return JSON.stringify(r.mutate(claimFrame(r, ctx)));
    default:
      return JSON.stringify(claimFrame(r, ctx));
  }
}

function hexFrom(r: HostileInput, n: number): string {
  return randomBytesFrom(r, n).toString('hex');
}

function randomBytesFrom(r: HostileInput, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => r.int(256)));
}

/** One agent connection: garbage before hello, a bad hello, or a good hello followed by garbage. */
async function wsCase(r: HostileInput, ctx: FuzzContext): Promise<void> {
  const ws = new WebSocket(ctx.wsUrl, { maxPayload: 8 * 1024 * 1024 });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('error', () => undefined);
  const opened = await new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('close', () => resolve(false));
  });
  if (!opened) return;
  // Now and then the good agent's own name: a second live agent by that name must be refused, not evict it.
  const name = r.chance(0.1) ? 'good-agent' : `fuzz-${r.int(40)}`;
  const send = (f: string | Buffer) => ws.readyState === ws.OPEN && ws.send(f, { binary: Buffer.isBuffer(f) });
  const mode = r.int(4);
  if (mode === 0) {
    for (let i = 0, n = 1 + r.int(3); i < n; i++) send(garbageFrame(r, ctx));
  } else if (mode === 1) {
    const hello = validHello(name);
    send(JSON.stringify(r.pick([{ ...hello, token: `${TOKEN}x` }, { ...hello, token: '' }, { ...hello, protocol: 99 }, r.mutate(hello), r.mutate(r.mutate(hello))])));
  } else {
    // Assignments get a result back, valid or not, with the token the master gave.
    ws.on('message', (data: RawData) => {
      let f: { type?: string; queue?: string; jobId?: string; lockToken?: string };
      try {
        f = JSON.parse(data.toString()) as typeof f;
      } catch {
        return;
      }
      if (f.type !== 'assign') return;
      const finished = { type: 'finished', queue: f.queue, jobId: f.jobId, lockToken: f.lockToken, result: validResult() };
      send(JSON.stringify(r.chance(0.5) ? finished : r.mutate(finished)));
    });
    const welcome = new Promise<boolean>((resolve) => {
      ws.once('message', () => resolve(true));
      ws.once('close', () => resolve(false));
    });
    send(JSON.stringify(validHello(name)));
    if (await welcome) for (let i = 0, n = 1 + r.int(15); i < n; i++) send(garbageFrame(r, ctx));
  }
  // A clean close flushes what was sent; some cases just drop the connection instead.
  if (r.chance(0.2)) ws.terminate();
  else ws.close();
  await closed;
}

/** One HTTP request at a route that takes input. */
/** encodeURIComponent, except that a lone surrogate (which it refuses) goes as `%EF%BF%BD`. */
function enc(s: string): string {
  return encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));
}

async function httpCase(r: HostileInput, ctx: FuzzContext): Promise<void> {
  const headers: Record<string, string> = {};
  let method = 'POST';
  let path = '/api/jobs';
  let body: string | Buffer | undefined;
  const route = r.int(6);
  if (route <= 1) {
    const job = { type: r.pick(['fuzzing', 'fuzzing', 'fuzzing', 'nope', 'constructor', r.string()]), argv: ['true'] };
    const shapes = [() => JSON.stringify(job), () => JSON.stringify(r.mutate(job)), () => JSON.stringify(r.value(3)), () => r.badJson(), () => 'a'.repeat(LIMIT + 10), () => r.deep(r.pick([3_000, 12_000, 30_000]))];
    body = shapes[r.pick([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 5])]!();
    headers['content-type'] = r.chance(0.8) ? 'application/json' : r.pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', r.string()]);
    // Mostly with the admin token: an admin token makes submission need one, and the bodies should get past that.
    if (r.chance(0.8)) headers.authorization = r.pick([`Bearer ${ADMIN}`, `bearer ${ADMIN}`, `Bearer ${ADMIN}x`, r.string()]);
  } else if (route <= 3) {
    method = 'PUT';
    path = `/api/rules/${enc(r.pick(['fuzzing', 'b2g', 'nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty', r.string() || 'x']))}`;
    const auth = r.pick([undefined, `Bearer ${ADMIN}`, `Bearer ${ADMIN}`, `Bearer ${ADMIN}x`, 'Bearer ', `Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}`, r.string()]);
    if (auth !== undefined) headers.authorization = auth;
    const rule = { pool: 'cloud', enabled: false, minBacklog: 1 };
    body = r.pick([() => r.badJson(), () => JSON.stringify(r.value(3)), () => JSON.stringify(r.mutate(rule)), () => JSON.stringify(rule), () => 'b'.repeat(LIMIT + 10)])();
    headers['content-type'] = r.pick(['application/json', 'application/json', 'text/plain', r.string()]);
  } else if (route === 4) {
    const blob = randomBytesFrom(r, r.pick([0, 1, 100, 5000]));
    const hash = r.pick([createHash('sha256').update(blob).digest('hex'), randomBytes(32).toString('hex'), 'zz', 'A'.repeat(64), r.string()]);
    [method, path] = r.pick([
      ['PUT', `/cas/${enc(hash)}`],
      ['GET', `/cas/${enc(hash)}`],
      ['PUT', `/ac/${enc(hash)}`],
      ['GET', `/ac/${enc(hash)}`],
      ['POST', '/cas/find-missing'],
    ] as const);
    if (r.chance(0.7)) headers.authorization = r.pick([`Bearer ${CAS_TOKEN}`, `Basic ${Buffer.from(`u:${CAS_TOKEN}`).toString('base64')}`, 'Bearer nope', r.string()]);
    if (method === 'PUT') body = r.chance(0.5) ? blob : JSON.stringify(r.value(3));
    if (method === 'POST') {
      body = r.pick([() => JSON.stringify({ digests: [r.value(2)] }), () => JSON.stringify(r.value(3)), () => r.badJson()])();
      headers['content-type'] = 'application/json';
    }
  } else {
    method = 'GET';
    path = r.pick([
      `/api/jobs/${enc(r.pick([...ctx.knownJobIds, r.string() || 'x']))}?type=${enc(r.string())}`,
      `/api/jobs/${enc(r.string() || 'x')}/log?attempt=${enc(r.string())}&offset=-1&waitMs=99999999`,
      `/api/builds?limit=${enc(r.string())}&offset=${enc(r.string())}`,
      `/api/builds?before=${enc(r.pick([`${r.int(99)}:b2g:${r.string()}:1`, r.string()]))}&type=${enc(r.string())}&location=${enc(r.string())}&result=${enc(r.string())}`,
      `/jobs/${enc(r.string() || 'x')}?type=${enc(r.string())}`,
      `/log?type=${enc(r.string())}&id=${enc(r.string())}`,
    ]);
  }
  // Headers the fetch API refuses (a lone surrogate, a newline) are input the server never sees.
  for (const [k, v] of Object.entries(headers)) if (!/^[\t\x20-\x7e]*$/.test(v)) delete headers[k];
  let res: Response;
  try {
    res = await fetch(`${ctx.http}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  } catch (err) {
    ctx.findings.push(`${method} ${path}: ${(err as Error).message}`);
    return;
  }
  const text = await res.text();
  if (res.status >= 500) ctx.findings.push(`${method} ${path} -> ${res.status} ${text.slice(0, 200)}`);
  if (method === 'PUT' && path.startsWith('/api/rules/') && res.ok) {
    const type = decodeURIComponent(path.slice('/api/rules/'.length));
    if (!JOB_TYPES.includes(type)) ctx.findings.push(`PUT /api/rules/${type} -> ${res.status}: a rule for a job type that does not exist`);
  }
  if (method === 'POST' && path === '/api/jobs' && res.status === 201) ctx.knownJobIds.push((JSON.parse(text) as { id: string }).id);
}

/** Job data no producer should send, straight into b2g's queue. Every command here is `true`. */
async function queueCase(r: HostileInput, ctx: FuzzContext): Promise<void> {
  if (r.chance(0.2)) {
    const inputRoot = await hostileTree(r, ctx);
    const job = await ctx.b2g.add('build', { argv: ['true'], action: { inputRoot } }, { attempts: 1 });
    ctx.hostileTrees.push(job.id!);
    ctx.knownJobIds.push(job.id!);
    return;
  }
  if (r.chance(0.25)) {
    const job = await ctx.b2g.add('build', { argv: ['true'], requirements: { labels: ['gpu'] } });
    ctx.unrunnable.push(job.id!);
    return;
  }
  const data = r.pick<() => unknown>([
    () => r.value(3),
    () => ({ argv: 'true' }),
    () => ({ argv: [] }),
    () => ({ argv: [1, 2] }),
    () => ({ shell: 5 }),
    () => ({ argv: ['true'], shell: 'true' }),
    () => ({ argv: ['true'], [r.string() || 'extra']: r.value(2) }),
    () => ({ argv: ['true'], timeoutSec: r.pick([-1, 0, 1.5, '10', 2.5e-300]) }),
    () => ({ argv: ['true'], env: { A: r.pick([1, null, ['x'], { a: 1 }]) } }),
    () => ({ argv: ['true'], type: r.pick(['linux64', 'fuzzing', '', 7]) }),
    () => ({ argv: ['true'], cwd: r.pick(['../up', '/abs', 'a/../../b']) }),
    () => ({ argv: ['true'], requirements: { os: 'linux', ...r.pick([{ cpus: 0 }, { cpus: 'one' }, { labels: 'gpu' }, { memoryMb: -5 }, { [r.string() || 'x']: 1 }]) } }),
    () => ({ argv: ['true'], resources: { cpus: r.pick([-1, 0, 'two']) } }),
    () => ({ argv: ['true'], action: r.value(2) }),
    () => ({ argv: ['true'], env: JSON.parse(r.deep(200).replace(/^\[.*$/, '{"a":1}')) as unknown }),
  ])();
  const job = await ctx.b2g.add(r.string() || 'build', data, { attempts: 1 + r.int(3) });
  ctx.malformed.push(job.id!);
  ctx.knownJobIds.push(job.id!);
}

/** Stores `data` in the master's CAS and returns its digest. */
async function putBlob(ctx: FuzzContext, data: Buffer): Promise<{ hash: string; size: number }> {
  const hash = createHash('sha256').update(data).digest('hex');
  const res = await fetch(`${ctx.http}/cas/${hash}`, { method: 'PUT', body: data, headers: { authorization: `Bearer ${CAS_TOKEN}` } });
  if (!res.ok) ctx.findings.push(`PUT /cas/${hash} for a hostile tree -> ${res.status}`);
  return { hash, size: data.length };
}

/** The root of an input tree no agent should materialize: bad names, an escape, garbage, too deep, or missing. */
async function hostileTree(r: HostileInput, ctx: FuzzContext): Promise<{ hash: string; size: number }> {
  const node = (n: Record<string, unknown>) => Buffer.from(JSON.stringify({ files: [], directories: [], symlinks: [], ...n }));
  const file = { digest: await putBlob(ctx, Buffer.from(r.string() || 'x')), executable: false };
  const empty = await putBlob(ctx, node({}));
  switch (r.int(7)) {
    case 0:
      return putBlob(ctx, node({ files: [{ name: r.pick(['..', '.', '', 'a/b', '/etc/passwd']), ...file }] }));
    case 1:
      return putBlob(ctx, node({ directories: [{ name: r.pick(['..', 'a/..', '/']), digest: empty }] }));
    case 2:
      return putBlob(ctx, node({ symlinks: [{ name: 'up', target: r.pick(['../../etc', '../'.repeat(20), 'a/../../x']) }] }));
    case 3:
      return putBlob(ctx, r.chance(0.5) ? randomBytesFrom(r, 1 + r.int(300)) : Buffer.from(r.badJson()));
    case 4:
      return putBlob(ctx, Buffer.from(JSON.stringify(r.pick<unknown>([{ files: 7 }, { files: [{ name: 'f' }] }, { directories: [{ name: 'd', digest: { hash: 'zz', size: -1 } }] }, [1, 2]]))));
    case 5: {
      // Deeper than the agent's input depth limit (256), one directory per level.
      let digest = empty;
      for (let i = 0; i < 260; i++) digest = await putBlob(ctx, node({ directories: [{ name: 'd', digest }] }));
      return digest;
    }
    default:
      return { hash: hexFrom(r, 32), size: 1 + r.int(100) };
  }
}
