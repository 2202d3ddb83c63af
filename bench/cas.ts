/**
 * CAS benchmark (issue 4's figures): blob PUT and GET throughput through the HTTP API against a
 * raw copy of the same bytes on the same disk, 4 KiB GET hits per second with concurrent
 * keep-alive clients, and the latency of an action-cache hit.
 *
 * The server (bench/cas-server.ts: DiskStore + ActionCache + casRoutes on fastify, port 0) is
 * a child process with its store in a temp dir, so the clients here do not share its event
 * loop. Blobs are random bytes in files of the same temp dir, streamed to and from the server;
 * every file is deleted as soon as it has been measured, so disk use stays near 3x the largest
 * blob. The run is bounded, and the server and temp dir are removed on every way out.
 *
 *   npm run bench:cas                 # or: node dist/bench/cas.js
 *   BENCH_SIZES_MIB=1,64 BENCH_HIT_MS=3000 BENCH_AC_SAMPLES=5000 node dist/bench/cas.js
 *   BENCH_ONLY=nginx node dist/bench/cas.js   # only the 4 KiB wrk side by side with nginx
 *   BENCH_CAS_SERVER=/other/checkout/dist/bench/cas-server.js ...   # measure another build's server
 *   BENCH_BASELINE_SERVER=/other/checkout/dist/bench/cas-server.js ...  # and another build next to this one
 *   BENCH_ONLY=put node dist/bench/cas.js     # only the large PUTs side by side with nginx
 *   BENCH_MEMORY_MB=0 ...             # the disk store without its memory tier (default 64, as cas.memoryCacheMb)
 *
 * With nginx and wrk on PATH (apt: nginx-light or nginx, wrk), 4 KiB GET hits are also measured
 * with wrk against spillway and against nginx WebDAV with 2 workers (bench/cas-nginx.ts), same
 * blobs, same connections, rounds alternating, median of BENCH_WRK_ROUNDS (5). Large PUTs
 * (BENCH_PUT_SIZES_MIB, 64 and 256) are measured the same way against nginx WebDAV PUT, one bare
 * node:http client for every server, median of BENCH_PUT_ROUNDS (5); with BENCH_BASELINE_SERVER
 * a second spillway server (another build) takes part in the same rounds, for before/after.
 *
 * Throughput: the primary client is spillway's own CasClient (fetch; upload streams the file,
 * downloadToFile verifies the sha256 and fsyncs), which is what agents use. The raw baseline is
 * a stream copy of the same file followed by fsync (the store fsyncs every blob it commits, and
 * the client fsyncs every download), so both sides write durably; fs.copyFile (which may use
 * copy_file_range) and a bare node:http client (no hashing on the client, no fsync on GET) are
 * reported next to it. Each figure is the median of its repetitions; the source file is in the
 * page cache for all of them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { CasClient, EMPTY_DIGEST, type ActionResult, type Digest } from '../src/cas';
import { f1, f2, intEnv, machineInfo, machineLine, once, printTable, runBench, say, stats, type Stats, type TableRow } from './harness';
import { haveNginxAndWrk, hitsSideBySide, putsSideBySide, startNginx, type PutSideBySide, type PutTarget, type SideBySide } from './cas-nginx';
import { machineCpu, poll, procCpu, spawnLogged, stopChild, type LoggedChild } from './procs';

const MiB = 1024 * 1024;
const SIZES_MIB = (process.env.BENCH_SIZES_MIB ?? '1,64,256')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
/** Repetitions per size: many for small blobs (request and fsync overhead dominate), few for big. */
const repsFor = (mib: number): number => (mib <= 1 ? intEnv('BENCH_REPS_SMALL', 15) : mib <= 64 ? intEnv('BENCH_REPS_MID', 3) : intEnv('BENCH_REPS_BIG', 2));
const HIT_CLIENTS = intEnv('BENCH_HIT_CLIENTS', 32);
const HIT_BLOBS = intEnv('BENCH_HIT_BLOBS', 256);
const HIT_BYTES = 4096;
const HIT_WARMUP_MS = intEnv('BENCH_HIT_WARMUP_MS', 1000);
const HIT_MS = intEnv('BENCH_HIT_MS', 5000);
const HIT_MAX = intEnv('BENCH_HIT_MAX', 1_000_000);
const AC_WARMUP = intEnv('BENCH_AC_WARMUP', 200);
const AC_SAMPLES = intEnv('BENCH_AC_SAMPLES', 2000);
const AC_MAX_MS = intEnv('BENCH_AC_MAX_MS', 10_000);
const RUN_BUDGET_MS = intEnv('BENCH_BUDGET_MS', 150_000);

const TARGET = { ratio: 0.6, acP50Ms: 2 };
const SERVER = process.env.BENCH_CAS_SERVER ?? resolve(__dirname, 'cas-server.js');
const ONLY_NGINX = process.env.BENCH_ONLY === 'nginx';
const ONLY_PUT = process.env.BENCH_ONLY === 'put';
const BASELINE_SERVER = process.env.BENCH_BASELINE_SERVER;
const PUT_SIZES_MIB = (process.env.BENCH_PUT_SIZES_MIB ?? '64,256')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const PUT_ROUNDS = intEnv('BENCH_PUT_ROUNDS', 5);
/** The server's memory tier, as `cas.memoryCacheMb` (its default); 0 measures the disk store alone. */
const MEMORY_TIER_MB = intEnv('BENCH_MEMORY_MB', 64, true);
const WRK = {
  count: HIT_BLOBS,
  bytes: HIT_BYTES,
  rounds: intEnv('BENCH_WRK_ROUNDS', 5),
  seconds: intEnv('BENCH_WRK_SEC', 5),
  connections: HIT_CLIENTS,
  threads: intEnv('BENCH_WRK_THREADS', 2),
};
/** The issue-13 goal: spillway's 4 KiB hit rate as a share of nginx's. */
const NGINX_TARGET = 0.8;

// ---------------------------------------------------------------------------------------------
// Everything this run started, so any exit path can stop it.

const work = mkdtempSync(join(tmpdir(), 'spillway-bench-cas-'));
const storeRoot = join(work, 'store');
const filesDir = join(work, 'files');
let server: LoggedChild | undefined;
let baseline: LoggedChild | undefined;
let nginx: LoggedChild | undefined;
const agents: http.Agent[] = [];

const cleanup = once(async () => {
  for (const a of agents.splice(0)) a.destroy();
  if (server) await stopChild(server, 5000).catch(() => undefined);
  if (baseline) await stopChild(baseline, 5000).catch(() => undefined);
  if (nginx) await stopChild(nginx, 5000).catch(() => undefined);
});

function removeWork(): void {
  if (process.env.BENCH_KEEP) say(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function startServer(maxBytes: number, maxBlobBytes: number): Promise<string> {
  const started = await startCasServer(SERVER, storeRoot, 'server', maxBytes, maxBlobBytes);
  server = started.proc;
  return started.base;
}

async function startCasServer(script: string, root: string, name: string, maxBytes: number, maxBlobBytes: number): Promise<{ base: string; proc: LoggedChild }> {
  mkdirSync(root, { recursive: true });
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const s = spawnLogged(name, process.execPath, [script, root, String(maxBytes), String(maxBlobBytes), String(MEMORY_TIER_MB * MiB)], join(work, `${name}.log`), env);
  if (name === 'baseline') baseline = s;
  const m = await poll('the CAS server to listen', 20_000, () => {
    if (s.child.exitCode !== null) throw new Error(`cas-server exited (${s.child.exitCode}):\n${s.log().slice(-2000)}`);
    return /listening (http:\/\/\S+)/.exec(s.log()) ?? undefined;
  });
  return { base: m[1]!, proc: s };
}

function keepAliveAgent(maxSockets: number): http.Agent {
  const a = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  agents.push(a);
  return a;
}

interface Resp {
  status: number;
  body: Buffer;
  contentType: string | undefined;
}

/** One request over `agent`; the whole response body in memory. */
function request(agent: http.Agent, url: string, method: string, body?: Buffer, headers: http.OutgoingHttpHeaders = {}): Promise<Resp> {
  return new Promise((res, rej) => {
    const req = http.request(url, { method, agent, headers: body ? { 'content-type': 'application/octet-stream', 'content-length': body.length, ...headers } : headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), contentType: r.headers['content-type'] }));
      r.on('error', rej);
    });
    req.on('error', rej);
    req.end(body);
  });
}

async function expectOk(p: Promise<Resp>, what: string, ok = [200, 404]): Promise<Resp> {
  const r = await p;
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
  return r;
}

/** `bytes` random bytes written to `file` in 4 MiB pieces; resolves their digest. */
async function randomFile(file: string, bytes: number): Promise<Digest> {
  const hasher = createHash('sha256');
  const fh = await fsp.open(file, 'w');
  try {
    for (let left = bytes; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 4 * MiB));
      hasher.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await fh.close();
  }
  return { hash: hasher.digest('hex'), size: bytes };
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Seconds `fn` takes. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** The raw baseline: read stream -> write stream of the same file on the same disk, then fsync. */
async function streamCopy(src: string, dest: string): Promise<void> {
  await pipeline(createReadStream(src, { highWaterMark: MiB }), createWriteStream(dest));
  await fsyncFile(dest);
}

/** PUT with a bare node:http client: the file piped into the request. */
function plainPut(agent: http.Agent, url: string, file: string, size: number): Promise<void> {
  return new Promise((res, rej) => {
    const req = http.request(url, { method: 'PUT', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': size } }, (r) => {
      r.resume();
      r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`plain PUT: HTTP ${r.statusCode}`))));
      r.on('error', rej);
    });
    req.on('error', rej);
    pipeline(createReadStream(file, { highWaterMark: MiB }), req).catch(rej);
  });
}

/** GET with a bare node:http client: the response piped into a file (no hash, no fsync). */
function plainGet(agent: http.Agent, url: string, dest: string, size: number): Promise<void> {
  return new Promise((res, rej) => {
    const req = http.request(url, { method: 'GET', agent }, (r) => {
      if (r.statusCode !== 200) {
        r.resume();
        return rej(new Error(`plain GET: HTTP ${r.statusCode}`));
      }
      pipeline(r, createWriteStream(dest))
        .then(async () => {
          const st = await fsp.stat(dest);
          if (st.size !== size) throw new Error(`plain GET: got ${st.size} bytes, want ${size}`);
          res();
        })
        .catch(rej);
    });
    req.on('error', rej);
    req.end();
  });
}

const median = (xs: number[]): number => stats(xs).p50;
const mbps = (bytes: number, seconds: number): number => bytes / 1e6 / seconds;

// ---------------------------------------------------------------------------------------------
// Phases

interface SizeFigures {
  mib: number;
  reps: number;
  raw: number;
  copyFile: number;
  put: number;
  get: number;
  plainPut: number;
  plainGet: number;
}

/**
 * One blob size: per repetition a raw stream copy, fs.copyFile, then (after deleting the blob
 * from the store, so each PUT really stores it) a CasClient PUT and downloadToFile, and the same
 * with the bare node:http client. Rates are MB/s (10^6 bytes), medians over the repetitions.
 */
async function throughput(base: string, client: CasClient, agent: http.Agent, mib: number): Promise<SizeFigures> {
  const size = mib * MiB;
  const reps = repsFor(mib);
  const src = join(filesDir, `src-${mib}`);
  const out = join(filesDir, `out-${mib}`);
  say(`${mib} MiB: writing ${mib} MiB of random bytes`);
  const digest = await randomFile(src, size);
  const blobUrl = `${base}/cas/${digest.hash}`;
  const t = { raw: [] as number[], copyFile: [] as number[], put: [] as number[], get: [] as number[], plainPut: [] as number[], plainGet: [] as number[] };
  try {
    for (let i = 0; i < reps; i++) {
      t.raw.push(await timed(() => streamCopy(src, out)));
      await fsp.rm(out, { force: true });
      t.copyFile.push(await timed(async () => {
        await fsp.copyFile(src, out);
        await fsyncFile(out);
      }));
      await fsp.rm(out, { force: true });

      await expectOk(request(agent, blobUrl, 'DELETE'), 'DELETE');
      t.put.push(await timed(() => client.upload({ digest, path: src })));
      t.get.push(await timed(async () => {
        if (!(await client.downloadToFile(digest, out))) throw new Error(`GET ${digest.hash}: 404 right after PUT`);
      }));
      await fsp.rm(out, { force: true });

      await expectOk(request(agent, blobUrl, 'DELETE'), 'DELETE');
      t.plainPut.push(await timed(() => plainPut(agent, blobUrl, src, size)));
      t.plainGet.push(await timed(() => plainGet(agent, blobUrl, out, size)));
      await fsp.rm(out, { force: true });
    }
  } finally {
    await fsp.rm(out, { force: true });
    await fsp.rm(src, { force: true });
    await request(agent, blobUrl, 'DELETE').catch(() => undefined);
  }
  const r = (xs: number[]) => mbps(size, median(xs));
  const fig = { mib, reps, raw: r(t.raw), copyFile: r(t.copyFile), put: r(t.put), get: r(t.get), plainPut: r(t.plainPut), plainGet: r(t.plainGet) };
  say(`${mib} MiB x${reps}: raw ${f1(fig.raw)} MB/s, PUT ${f1(fig.put)} MB/s (${f2(fig.put / fig.raw)}), GET ${f1(fig.get)} MB/s (${f2(fig.get / fig.raw)})`);
  return fig;
}

interface HitFigures {
  perSec: number;
  n: number;
  seconds: number;
  errors: number;
  lat: Stats;
  clientCpuMs: number;
  /** CPU of the server process during the measured window, ms. */
  serverCpuMs: number;
  /** Busy fraction of the whole machine during the measured window (all processes, all CPUs). */
  machineBusy: number;
}

/**
 * `HIT_CLIENTS` concurrent loops, each GETting random ones of `HIT_BLOBS` stored 4 KiB blobs
 * over a keep-alive agent (one socket per loop), for `HIT_MS` after a warm-up or `HIT_MAX`
 * requests. Every 64th body is hashed and compared.
 */
async function hits(base: string): Promise<HitFigures> {
  const agent = keepAliveAgent(HIT_CLIENTS);
  const blobs: Array<{ hash: string; data: Buffer }> = [];
  for (let i = 0; i < HIT_BLOBS; i++) {
    const data = randomBytes(HIT_BYTES);
    const hash = createHash('sha256').update(data).digest('hex');
    await expectOk(request(agent, `${base}/cas/${hash}`, 'PUT', data), 'PUT 4 KiB', [200]);
    blobs.push({ hash, data });
  }
  let measuring = false;
  let stopAt = Infinity;
  let n = 0;
  let errors = 0;
  const lat: number[] = [];
  const loop = async (w: number): Promise<void> => {
    for (let k = w; ; k++) {
      const now = performance.now();
      if (now >= stopAt || n >= HIT_MAX) return;
      const b = blobs[(k * 7919 + w) % blobs.length]!;
      const r = await request(agent, `${base}/cas/${b.hash}`, 'GET');
      const ok = r.status === 200 && r.body.length === HIT_BYTES && (k % 64 !== 0 || r.body.equals(b.data));
      if (!measuring) continue;
      if (!ok) errors++;
      n++;
      lat.push(performance.now() - now);
    }
  };
  say(`4 KiB hits: ${HIT_CLIENTS} keep-alive clients over ${HIT_BLOBS} blobs, ${HIT_WARMUP_MS} ms warm-up then ${HIT_MS} ms (at most ${HIT_MAX} requests)`);
  const t0 = performance.now();
  let tStart = t0 + HIT_WARMUP_MS;
  stopAt = tStart + HIT_MS;
  let cpu0 = process.cpuUsage();
  let srv0 = procCpu(server?.child.pid);
  let mach0 = machineCpu();
  const warm = setTimeout(() => {
    measuring = true;
    tStart = performance.now();
    stopAt = tStart + HIT_MS;
    cpu0 = process.cpuUsage();
    srv0 = procCpu(server?.child.pid);
    mach0 = machineCpu();
  }, HIT_WARMUP_MS);
  try {
    await Promise.all(Array.from({ length: HIT_CLIENTS }, (_, w) => loop(w)));
  } finally {
    clearTimeout(warm);
  }
  const seconds = (performance.now() - tStart) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const srv1 = procCpu(server?.child.pid);
  const mach1 = machineCpu();
  for (const b of blobs) await request(agent, `${base}/cas/${b.hash}`, 'DELETE').catch(() => undefined);
  const fig = { perSec: n / seconds, n, seconds, errors, lat: stats(lat), clientCpuMs: (cpu.user + cpu.system) / 1000,
    serverCpuMs: (srv1?.self ?? NaN) - (srv0?.self ?? NaN),
    machineBusy: (mach1.busyMs - mach0.busyMs) / (mach1.totalMs - mach0.totalMs),
  };
  say(`4 KiB hits: ${f1(fig.perSec)}/s (${n} in ${f2(seconds)} s, ${errors} errors)`);
  return fig;
}

/**
 * A complete successful result (stdout and three outputs stored in the CAS) PUT to /ac/, then
 * GET /ac/<hash> one at a time over one keep-alive socket: each a hit, since the server checks
 * that all referenced blobs are present before answering.
 */
async function acHits(base: string, client: CasClient): Promise<{ lat: Stats; bodyBytes: number }> {
  const agent = keepAliveAgent(1);
  const put = async (data: Buffer): Promise<Digest> => {
    const d = { hash: createHash('sha256').update(data).digest('hex'), size: data.length };
    await client.upload({ digest: d, data });
    return d;
  };
  const stdout = await put(Buffer.from('gcc -c -O2 hello.c -o out/hello.o\n'));
  const outs = [await put(randomBytes(48 * 1024)), await put(randomBytes(4096)), await put(randomBytes(200 * 1024))];
  const result: ActionResult = {
    exitCode: 0,
    stdout,
    stderr: { ...EMPTY_DIGEST },
    outputFiles: outs.map((digest, i) => ({ path: `out/obj/file-${i}.o`, digest, mode: 0o644 })),
    agent: 'bench-agent-1',
    timings: { queuedAt: Date.now() - 3000, startedAt: Date.now() - 2000, finishedAt: Date.now() },
  };
  const key = randomBytes(32).toString('hex');
  if (!(await client.putActionResult(key, result))) throw new Error('the action result was not stored');
  const got = await client.getActionResult(key);
  if (!got || got.outputFiles.length !== outs.length) throw new Error(`GET /ac/ right after PUT: ${JSON.stringify(got)}`);
  const url = `${base}/ac/${key}`;
  say(`action cache: ${AC_WARMUP} warm-up + ${AC_SAMPLES} sequential GET /ac/<hash> hits (at most ${AC_MAX_MS} ms)`);
  let bodyBytes = 0;
  const lat: number[] = [];
  const deadline = performance.now() + AC_MAX_MS;
  for (let i = 0; i < AC_WARMUP + AC_SAMPLES && performance.now() < deadline; i++) {
    const t0 = performance.now();
    const r = await request(agent, url, 'GET');
    const dt = performance.now() - t0;
    if (r.status !== 200 || !(r.contentType ?? '').startsWith('application/json')) throw new Error(`GET /ac/: HTTP ${r.status} ${r.contentType}: ${r.body.toString('utf8').slice(0, 200)}`);
    if (i % 100 === 0 && (JSON.parse(r.body.toString('utf8')) as ActionResult).outputFiles.length !== outs.length) throw new Error('GET /ac/: wrong result');
    bodyBytes = r.body.length;
    if (i >= AC_WARMUP) lat.push(dt);
  }
  const s = stats(lat);
  say(`action cache: p50 ${f2(s.p50)} ms, p99 ${f2(s.p99)} ms over ${s.n}`);
  return { lat: s, bodyBytes };
}

async function nginxSideBySide(base: string): Promise<SideBySide> {
  const dir = join(work, 'nginx');
  const started = await startNginx(dir);
  nginx = started.proc;
  say(`nginx WebDAV (2 workers) at ${started.base}; wrk ${WRK.rounds} rounds x ${WRK.seconds} s each side, ${WRK.connections} connections, ${WRK.count} x ${WRK.bytes} B blobs`);
  const fig = await hitsSideBySide([{ name: 'spillway', base }, { name: 'nginx', base: started.base }], dir, WRK);
  await stopChild(started.proc, 5000);
  nginx = undefined;
  return fig;
}

function nginxRow(v: SideBySide): TableRow {
  const ratio = v.medians.spillway! / v.medians.nginx!;
  return [`4 KiB GET hits/s, ${WRK.connections} conns (wrk), spillway / nginx`, `${f2(ratio)} (${f1(v.medians.spillway!)} / ${f1(v.medians.nginx!)})`, `>= ${NGINX_TARGET}`, ratio >= NGINX_TARGET];
}

/** Large PUTs against nginx WebDAV (and the baseline build, if given), in the same rotating rounds. */
async function putSideBySide(base: string): Promise<PutSideBySide[]> {
  const dir = join(work, 'nginx-put');
  const started = await startNginx(dir);
  nginx = started.proc;
  const biggest = Math.max(...PUT_SIZES_MIB, 1) * MiB;
  const targets: PutTarget[] = [{ name: 'spillway', base }, { name: 'nginx', base: started.base }];
  if (BASELINE_SERVER) {
    const b = await startCasServer(BASELINE_SERVER, join(work, 'baseline-store'), 'baseline', 4 * biggest + 256 * MiB, 2 * biggest);
    targets.push({ name: 'baseline', base: b.base });
  }
  say(`large PUTs side by side (${targets.map((t) => t.name).join(', ')}): ${PUT_SIZES_MIB.join(', ')} MiB, ${PUT_ROUNDS} rounds, bare node:http client`);
  const fig = await putsSideBySide(targets, filesDir, PUT_SIZES_MIB, PUT_ROUNDS);
  await stopChild(started.proc, 5000);
  nginx = undefined;
  if (baseline) await stopChild(baseline, 5000);
  baseline = undefined;
  return fig;
}

function printPuts(figs: PutSideBySide[]): void {
  console.log('');
  console.log(`large PUT MB/s (10^6 B/s), bare node:http client, rounds rotating, median of ${PUT_ROUNDS}:`);
  for (const f of figs) {
    const names = Object.keys(f.medians);
    for (const [i, r] of f.rounds.entries()) console.log(`  ${f.mib} MiB round ${i + 1}: ${names.map((n) => `${n} ${f1(r[n]!)}`).join('  ')}`);
    const ratio = f.medians.spillway! / f.medians.nginx!;
    const rest = names.filter((n) => n !== 'spillway' && n !== 'nginx').map((n) => `, ${n} ${f1(f.medians[n]!)}`).join('');
    printTable([[`${f.mib} MiB PUT MB/s, spillway / nginx${rest}`, `${f2(ratio)} (${f1(f.medians.spillway!)} / ${f1(f.medians.nginx!)})`, `>= ${NGINX_TARGET}`, ratio >= NGINX_TARGET]]);
  }
}

function printNginx(v: SideBySide): void {
  console.log('');
  console.log(`4 KiB GET hits/s with wrk (${WRK.connections} connections, ${WRK.threads} threads, ${WRK.seconds} s per round), rounds alternating:`);
  for (const [i, r] of v.rounds.entries()) {
    console.log(`  round ${i + 1}: spillway ${f1(r.spillway!.perSec)} (${r.spillway!.errors} errors)  nginx ${f1(r.nginx!.perSec)} (${r.nginx!.errors} errors)`);
  }
  printTable([nginxRow(v)]);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const t0 = Date.now();
  const machine = machineInfo();
  const biggest = Math.max(...SIZES_MIB, 1) * MiB;
  mkdirSync(filesDir, { recursive: true });
  say(`machine: nproc=${machine.nproc} node=${machine.node} load=${machine.load}; work dir ${work}`);
  const base = await startServer(4 * biggest + 256 * MiB, 2 * biggest);
  say(`CAS server at ${base} (store ${storeRoot})`);
  const client = new CasClient({ baseUrl: base });
  const agent = keepAliveAgent(1);

  if (ONLY_PUT) {
    const puts = await putSideBySide(base);
    await cleanup();
    printPuts(puts);
    return 0;
  }
  const vsNginx = haveNginxAndWrk() ? await nginxSideBySide(base) : undefined;
  if (!vsNginx) say('nginx or wrk not on PATH: no side-by-side figures');
  if (ONLY_NGINX) {
    await cleanup();
    if (vsNginx) printNginx(vsNginx);
    return vsNginx ? 0 : 1;
  }
  const puts = vsNginx ? await putSideBySide(base) : undefined;
  const sizes: SizeFigures[] = [];
  for (const mib of SIZES_MIB) sizes.push(await throughput(base, client, agent, mib));
  const hit = await hits(base);
  const ac = await acHits(base, client);
  const serverLog = server?.log() ?? '';
  await cleanup();

  // ---- report
  console.log('');
  console.log('spillway CAS benchmark');
  console.log(machineLine(machine));
  console.log(`server: bench/cas-server.js (DiskStore + ActionCache + casRoutes on fastify) as its own process; store and files in ${tmpdir()}`);
  console.log('');
  console.log('blob throughput, MB/s (10^6 B/s), median of the repetitions:');
  console.log('  size     reps   raw copy+fsync  copyFile+fsync   PUT CasClient  GET CasClient   PUT bare http  GET bare http');
  for (const s of sizes) {
    const c = (v: number) => f1(v).padStart(14);
    console.log(`  ${`${s.mib} MiB`.padEnd(8)} ${String(s.reps).padStart(4)}  ${c(s.raw)}  ${c(s.copyFile)}  ${c(s.put)}  ${c(s.get)}  ${c(s.plainPut)}  ${c(s.plainGet)}`);
  }
  console.log('  (CasClient GET = downloadToFile: sha256 + fsync on the client; bare http GET: no hash, no fsync)');
  console.log('');
  console.log(`4 KiB GET hits, ${HIT_CLIENTS} keep-alive clients: ${hit.n} requests in ${f2(hit.seconds)} s, ${hit.errors} errors; CPU: server ${f1(hit.serverCpuMs)} ms (${f2(hit.serverCpuMs / hit.n)} ms/request), clients (this process) ${f1(hit.clientCpuMs)} ms; machine ${Math.round(hit.machineBusy * 100)}% busy`);
  console.log(`  latency (ms): p50 ${f2(hit.lat.p50)}  p90 ${f2(hit.lat.p90)}  p99 ${f2(hit.lat.p99)}  max ${f2(hit.lat.max)}  mean ${f2(hit.lat.mean)}`);
  console.log(`action-cache hits (GET /ac/<hash>, ${ac.bodyBytes}-byte JSON, 1 client, keep-alive): ${ac.lat.n} samples`);
  console.log(`  latency (ms): min ${f2(ac.lat.min)}  p50 ${f2(ac.lat.p50)}  p90 ${f2(ac.lat.p90)}  p99 ${f2(ac.lat.p99)}  max ${f2(ac.lat.max)}  mean ${f2(ac.lat.mean)}`);
  const serverWarnings = serverLog.split('\n').filter((l) => /"level":"(warn|error)"/.test(l));
  if (serverWarnings.length > 0) console.log(`server logged ${serverWarnings.length} warnings/errors, e.g. ${serverWarnings[0]!.slice(0, 300)}`);
  console.log('');
  const rows: TableRow[] = [];
  for (const s of sizes) {
    const ratioRow = (what: string, v: number, target: boolean): TableRow => [
      `${what} ${s.mib} MiB / raw copy`,
      `${f2(v / s.raw)} (${f1(v)} / ${f1(s.raw)} MB/s)`,
      target ? `>= ${TARGET.ratio}` : '-',
      target ? v / s.raw >= TARGET.ratio : undefined,
    ];
    rows.push(ratioRow('PUT', s.put, true), ratioRow('GET', s.get, true));
  }
  for (const s of sizes) {
    rows.push([`PUT ${s.mib} MiB bare http / raw copy`, f2(s.plainPut / s.raw), '-', undefined]);
    rows.push([`GET ${s.mib} MiB bare http / raw copy`, f2(s.plainGet / s.raw), '-', undefined]);
  }
  rows.push([`4 KiB GET hits/s, ${HIT_CLIENTS} clients`, `${f1(hit.perSec)}/s`, 'report', undefined]);
  rows.push([`4 KiB GET hit latency p50 / p99`, `${f2(hit.lat.p50)} / ${f2(hit.lat.p99)} ms`, '-', undefined]);
  rows.push(['action-cache hit latency p50', `${f2(ac.lat.p50)} ms`, `<= ${TARGET.acP50Ms} ms`, ac.lat.p50 <= TARGET.acP50Ms]);
  rows.push(['action-cache hit latency p99', `${f2(ac.lat.p99)} ms`, '-', undefined]);
  if (vsNginx) rows.push(nginxRow(vsNginx));
  printTable(rows);
  if (vsNginx) printNginx(vsNginx);
  if (puts) printPuts(puts);
  console.log(`sizes ${SIZES_MIB.join(', ')} MiB; nproc ${machine.nproc}, node ${machine.node}; bench took ${f1((Date.now() - t0) / 1000)} s`);
  return hit.errors > 0 ? 1 : 0;
}

runBench(main, {
  budgetMs: RUN_BUDGET_MS,
  cleanup,
  kill: () => {
    server?.child.kill('SIGKILL');
    baseline?.child.kill('SIGKILL');
    nginx?.child.kill('SIGKILL');
  },
  afterCleanup: removeWork,
  onError: () => {
    try {
      if (server) process.stderr.write(`--- last output of cas-server:\n${server.log().slice(-1500)}\n`);
    } catch {
      // no log
    }
  },
});
