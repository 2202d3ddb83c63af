/**
 * The yardstick of issue 13: nginx WebDAV with 2 workers (the server ccache's docs recommend)
 * serving the same `/cas/<sha256>` layout, both driven by wrk with the same blobs and the same
 * connections, rounds alternating so neither side gets the quieter moments.
 *
 * nginx runs from a config written into a temp dir (its own pid, logs, temp paths, data root)
 * on a free port, as the invoking user; it is stopped on every way out by the caller's cleanup.
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream, mkdirSync, promises as fsp, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { poll, spawnLogged, type LoggedChild } from './procs';

export interface WrkFigure {
  perSec: number;
  requests: number;
  /** Non-2xx answers and socket errors together. */
  errors: number;
}

/** One server in a side by side: a name for the table and its base URL (may end in a path prefix). */
export interface Target {
  name: string;
  base: string;
  /**
   * Answers every GET with the same body and stores nothing (the bare node:http anchors): no
   * blobs are PUT to it. @defaultValue false
   */
  constant?: boolean;
}

/** Each target's wrk figure per round, and the median requests/s of its rounds. */
export interface SideBySide {
  rounds: Array<Record<string, WrkFigure>>;
  medians: Record<string, number>;
}

/** True when both nginx and wrk are on PATH. */
export function haveNginxAndWrk(): boolean {
  return ['nginx', 'wrk'].every((cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts nginx WebDAV (PUT, DELETE) with 2 workers under `dir`; resolves its base URL and process. */
export async function startNginx(dir: string): Promise<{ base: string; proc: LoggedChild }> {
  for (const d of ['data', 'tmp', 'logs']) mkdirSync(join(dir, d), { recursive: true });
  const port = await freePort();
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, 'tmp', t)};`).join('\n');
  writeFileSync(
    join(dir, 'nginx.conf'),
    // Workers run as the invoking user (as root nginx would switch to nobody, who cannot write here).
    `worker_processes 2;
${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
${temps}
  client_max_body_size 0;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${port};
    root ${join(dir, 'data')};
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw;
    }
  }
}
`,
  );
  const proc = spawnLogged('nginx', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs', 'error.log')], join(dir, 'logs', 'stdout.log'), process.env);
  const base = `http://127.0.0.1:${port}`;
  await poll('nginx to listen', 10_000, async () => {
    if (proc.child.exitCode !== null) throw new Error(`nginx exited (${proc.child.exitCode}): ${proc.log()}`);
    return (await fetch(`${base}/`).then((r) => r.status).catch(() => undefined)) !== undefined ? true : undefined;
  });
  return { base, proc };
}

const running = new Set<ChildProcess>();

/** SIGKILL to every wrk still running (a cleanup that stops the servers under it). */
export function killWrk(): void {
  for (const c of running) c.kill('SIGKILL');
}

/**
 * Runs wrk against `base` with GETs of random ones of `paths`; parses its summary. Asynchronous,
 * so the bench's signal handlers and run budget keep working while wrk runs.
 */
export function runWrk(base: string, pathsFile: string, luaFile: string, o: { connections: number; threads: number; seconds: number }): Promise<WrkFigure> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn('wrk', [`-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '-s', luaFile, base], {
      env: { ...process.env, WRK_PATHS: pathsFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    running.add(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), (o.seconds + 30) * 1000);
    child.once('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code !== 0) return reject(new Error(`wrk failed (${code ?? signal}): ${stderr}${stdout}`));
      const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? 0);
      const requests = num(/(\d+) requests in/);
      const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
      resolve({ perSec: num(/Requests\/sec:\s+([\d.]+)/), requests, errors: non2xx + sockErrors });
    });
  });
}

const LUA = `
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i * 7919) % #paths + 1])
end
`;

/**
 * Stores `count` random blobs of `bytes` on every target that stores (PUT /cas/<sha256>), then
 * runs wrk rounds against each target in turn, the order rotating per round so drift in the
 * machine's load hits all alike; each target's figure is the median of its rounds.
 */
export async function hitsSideBySide(
  targets: Target[],
  dir: string,
  o: { count: number; bytes: number; rounds: number; seconds: number; connections: number; threads: number },
): Promise<SideBySide> {
  const paths: string[] = [];
  for (let i = 0; i < o.count; i++) {
    const data = randomBytes(o.bytes);
    const path = `/cas/${createHash('sha256').update(data).digest('hex')}`;
    for (const t of targets.filter((x) => !x.constant)) {
      const res = await fetch(`${t.base}${path}`, { method: 'PUT', body: data });
      if (res.status >= 300) throw new Error(`PUT ${t.base}${path}: HTTP ${res.status}`);
    }
    paths.push(path);
  }
  const luaFile = join(dir, 'wrk-random-get.lua');
  writeFileSync(luaFile, LUA);
  // wrk takes the origin from its URL and the path from the script: one paths file per prefix.
  const runs = targets.map((t, i) => {
    const url = new URL(t.base);
    const prefix = url.pathname.replace(/\/$/, '');
    const pathsFile = join(dir, `wrk-paths-${i}.txt`);
    writeFileSync(pathsFile, `${paths.map((p) => prefix + p).join('\n')}\n`);
    return { t, wrk: (seconds = o.seconds) => runWrk(url.origin, pathsFile, luaFile, { ...o, seconds }) };
  });
  // One short unmeasured pass each: page cache, JIT and (for spillway) first-read verification.
  for (const r of runs) await r.wrk(Math.min(2, o.seconds));
  const rounds: SideBySide['rounds'] = [];
  for (let r = 0; r < o.rounds; r++) {
    const round: Record<string, WrkFigure> = {};
    for (let k = 0; k < runs.length; k++) {
      const run = runs[(r + k) % runs.length]!;
      round[run.t.name] = await run.wrk();
    }
    rounds.push(round);
  }
  return { rounds, medians: Object.fromEntries(targets.map((t) => [t.name, median(rounds.map((x) => x[t.name]!.perSec))])) };
}

/** The median of `xs` (the upper one of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One server in a PUT side by side. */
export type PutTarget = Target;

/** Each target's MB/s (10^6 B/s): the median of its rounds, and every round. */
export interface Rates {
  medians: Record<string, number>;
  rounds: Array<Record<string, number>>;
}

/** Per size, each target's PUT MB/s, and its GET MB/s when asked for. */
export interface PutSideBySide extends Rates {
  mib: number;
  get?: Rates;
}

/** PUTs `file` to `url` with a bare node:http client (the same one for every server); resolves seconds. */
function timedPut(url: string, file: string, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': size } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode !== undefined && res.statusCode < 300 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`PUT ${url}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), req).catch(reject);
  });
}

/**
 * GETs `url` with a bare node:http client and discards the body (no hashing, no file: what a
 * read to /dev/null costs the client, the same for every server); resolves seconds. A status
 * other than 200 or a body of another length than `size` is an error, never a figure.
 */
export function timedGet(url: string, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, { method: 'GET' }, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => (got += c.length));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
        else if (got !== size) reject(new Error(`GET ${url}: ${got} bytes, want ${size}`));
        else resolve((performance.now() - t0) / 1000);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface PutOptions {
  /** Also time a GET of the blob right after each PUT. @defaultValue false */
  gets?: boolean;
  /**
   * Each target moves at least this many bytes per round (PUTs repeated, each after a DELETE),
   * so a round of small blobs is not one request's jitter. @defaultValue 0: one PUT per round
   */
  minBytesPerRound?: number;
}

/**
 * Large PUTs side by side: per size, one file of random bytes PUT to every target in each round
 * (after a DELETE, so each PUT really stores it), the order rotating per round so no server
 * always gets the quieter moment. One unmeasured PUT (and GET) each first (page cache, JIT).
 */
export async function putsSideBySide(targets: PutTarget[], dir: string, sizesMib: number[], rounds: number, o: PutOptions = {}): Promise<PutSideBySide[]> {
  const out: PutSideBySide[] = [];
  for (const mib of sizesMib) {
    const size = mib * 1024 * 1024;
    const reps = Math.max(1, Math.ceil((o.minBytesPerRound ?? 0) / size));
    const file = join(dir, `put-${mib}`);
    const hasher = createHash('sha256');
    const fh = await fsp.open(file, 'w');
    for (let left = size; left > 0; left -= 4 * 1024 * 1024) {
      const chunk = randomBytes(Math.min(left, 4 * 1024 * 1024));
      hasher.update(chunk);
      await fh.write(chunk);
    }
    await fh.close();
    const path = `/cas/${hasher.digest('hex')}`;
    /** Seconds of `reps` PUTs (each after an untimed DELETE) and of the GETs after each. */
    const cycle = async (t: PutTarget, n: number): Promise<{ put: number; get: number }> => {
      let put = 0;
      let get = 0;
      for (let i = 0; i < n; i++) {
        await fetch(`${t.base}${path}`, { method: 'DELETE' });
        put += await timedPut(`${t.base}${path}`, file, size);
        if (o.gets) get += await timedGet(`${t.base}${path}`, size);
      }
      return { put, get };
    };
    try {
      for (const t of targets) await cycle(t, 1);
      const puts: Array<Record<string, number>> = [];
      const gets: Array<Record<string, number>> = [];
      for (let r = 0; r < rounds; r++) {
        const put: Record<string, number> = {};
        const get: Record<string, number> = {};
        for (let k = 0; k < targets.length; k++) {
          const t = targets[(r + k) % targets.length]!;
          const s = await cycle(t, reps);
          put[t.name] = (reps * size) / 1e6 / s.put;
          if (o.gets) get[t.name] = (reps * size) / 1e6 / s.get;
        }
        puts.push(put);
        gets.push(get);
      }
      const medians = (all: Array<Record<string, number>>) => Object.fromEntries(targets.map((t) => [t.name, median(all.map((x) => x[t.name]!))]));
      out.push({ mib, rounds: puts, medians: medians(puts), ...(o.gets ? { get: { rounds: gets, medians: medians(gets) } } : {}) });
    } finally {
      for (const t of targets) await fetch(`${t.base}${path}`, { method: 'DELETE' }).catch(() => undefined);
      await fsp.rm(file, { force: true });
    }
  }
  return out;
}
