/**
 * The yardstick of issue 13: nginx WebDAV with 2 workers (the server ccache's docs recommend)
 * serving the same `/cas/<sha256>` layout, both driven by wrk with the same blobs and the same
 * connections, rounds alternating so neither side gets the quieter moments.
 *
 * nginx runs from a config written into a temp dir (its own pid, logs, temp paths, data root)
 * on a free port, as the invoking user; it is stopped on every way out by the caller's cleanup.
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
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

export interface SideBySide {
  rounds: Array<{ spillway: WrkFigure; nginx: WrkFigure }>;
  spillway: number;
  nginx: number;
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

/** Runs wrk against `base` with GETs of random ones of `paths`; parses its summary. */
export function runWrk(base: string, pathsFile: string, luaFile: string, o: { connections: number; threads: number; seconds: number }): WrkFigure {
  const r = spawnSync('wrk', [`-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '-s', luaFile, base], {
    encoding: 'utf8',
    env: { ...process.env, WRK_PATHS: pathsFile },
    timeout: (o.seconds + 30) * 1000,
  });
  if (r.status !== 0) throw new Error(`wrk failed (${r.status}): ${r.stderr}${r.stdout}`);
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? 0);
  const requests = num(/(\d+) requests in/);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { perSec: num(/Requests\/sec:\s+([\d.]+)/), requests, errors: non2xx + sockErrors };
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
 * Stores `count` random blobs of `bytes` on both servers (PUT /cas/<sha256>), then alternates
 * wrk rounds against each; each side's figure is the median of its rounds.
 */
export async function hitsSideBySide(
  spillwayBase: string,
  nginxBase: string,
  dir: string,
  o: { count: number; bytes: number; rounds: number; seconds: number; connections: number; threads: number },
): Promise<SideBySide> {
  const paths: string[] = [];
  for (let i = 0; i < o.count; i++) {
    const data = randomBytes(o.bytes);
    const path = `/cas/${createHash('sha256').update(data).digest('hex')}`;
    for (const base of [spillwayBase, nginxBase]) {
      const res = await fetch(`${base}${path}`, { method: 'PUT', body: data });
      if (res.status >= 300) throw new Error(`PUT ${base}${path}: HTTP ${res.status}`);
    }
    paths.push(path);
  }
  const pathsFile = join(dir, 'wrk-paths.txt');
  const luaFile = join(dir, 'wrk-random-get.lua');
  writeFileSync(pathsFile, `${paths.join('\n')}\n`);
  writeFileSync(luaFile, LUA);
  const wrk = (base: string, seconds = o.seconds) => runWrk(base, pathsFile, luaFile, { ...o, seconds });
  // One short unmeasured pass each: page cache, JIT and (for spillway) first-read verification.
  wrk(spillwayBase, 2);
  wrk(nginxBase, 2);
  const rounds: SideBySide['rounds'] = [];
  for (let r = 0; r < o.rounds; r++) {
    // Alternate which side goes first, so drift in the machine's load hits both alike.
    if (r % 2 === 0) {
      const spillway = wrk(spillwayBase);
      rounds.push({ spillway, nginx: wrk(nginxBase) });
    } else {
      const nginx = wrk(nginxBase);
      rounds.push({ spillway: wrk(spillwayBase), nginx });
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { rounds, spillway: median(rounds.map((x) => x.spillway.perSec)), nginx: median(rounds.map((x) => x.nginx.perSec)) };
}

/** One server in a PUT side by side: a name for the table and its base URL. */
export interface PutTarget {
  name: string;
  base: string;
}

/** Per size, each target's PUT MB/s (10^6 B/s): the median of its rounds, and every round. */
export interface PutSideBySide {
  mib: number;
  medians: Record<string, number>;
  rounds: Array<Record<string, number>>;
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
 * Large PUTs side by side: per size, one file of random bytes PUT to every target in each round
 * (after a DELETE, so each PUT really stores it), the order rotating per round so no server
 * always gets the quieter moment. One unmeasured PUT each first (page cache, JIT).
 */
export async function putsSideBySide(targets: PutTarget[], dir: string, sizesMib: number[], rounds: number): Promise<PutSideBySide[]> {
  const out: PutSideBySide[] = [];
  for (const mib of sizesMib) {
    const size = mib * 1024 * 1024;
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
    const put = async (t: PutTarget): Promise<number> => {
      await fetch(`${t.base}${path}`, { method: 'DELETE' });
      return timedPut(`${t.base}${path}`, file, size);
    };
    try {
      for (const t of targets) await put(t);
      const all: Array<Record<string, number>> = [];
      for (let r = 0; r < rounds; r++) {
        const round: Record<string, number> = {};
        for (let k = 0; k < targets.length; k++) {
          const t = targets[(r + k) % targets.length]!;
          round[t.name] = size / 1e6 / (await put(t));
        }
        all.push(round);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      out.push({ mib, rounds: all, medians: Object.fromEntries(targets.map((t) => [t.name, median(all.map((x) => x[t.name]!))])) });
    } finally {
      for (const t of targets) await fetch(`${t.base}${path}`, { method: 'DELETE' }).catch(() => undefined);
      await fsp.rm(file, { force: true });
    }
  }
  return out;
}
