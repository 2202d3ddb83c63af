/**
 * Figure 3 of issue 13: `clients` concurrent clients, each PUTting its own `perClient` blobs of
 * `bytes` and then GETting them back, one request at a time over its own keep-alive socket
 * (bare node:http, no hashing on the client: the same client for every server). The figure is
 * MB/s (10^6 B/s) of all bytes moved, PUT and GET, from the first request to the last answer;
 * wrong answers are counted and reported, and their bytes left out.
 * Rounds rotate the order of the targets; before each, every blob is DELETEd (untimed), so each
 * PUT really stores it.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { median, type Rates, type Target } from './cas-nginx';

export interface MixOptions {
  clients: number;
  perClient: number;
  bytes: number;
  rounds: number;
}

/** One request; the answer's status, its body's length, and the start of the body of an error. */
function send(agent: http.Agent, url: string, method: 'PUT' | 'GET' | 'DELETE', body?: Buffer): Promise<{ status: number; bytes: number; error: string }> {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {};
    const req = http.request(url, { method, agent, headers }, (res) => {
      let bytes = 0;
      let error = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if ((res.statusCode ?? 0) >= 300 && error.length < 300) error += c.toString('utf8', 0, 300);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, error }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One client's work: its blobs PUT in turn, then GET in turn. A wrong answer (an error status,
 * a short body) is recorded in `errors` and its bytes do not count as moved; the client goes on.
 * Resolves the bytes moved correctly.
 */
async function client(agent: http.Agent, base: string, blobs: Array<{ path: string; data: Buffer }>, errors: string[]): Promise<number> {
  let moved = 0;
  for (const b of blobs) {
    const r = await send(agent, `${base}${b.path}`, 'PUT', b.data);
    if (r.status >= 300) errors.push(`PUT ${b.path}: HTTP ${r.status} ${r.error}`);
    else moved += b.data.length;
  }
  for (const b of blobs) {
    const r = await send(agent, `${base}${b.path}`, 'GET');
    if (r.status !== 200 || r.bytes !== b.data.length) errors.push(`GET ${b.path}: HTTP ${r.status}, ${r.bytes} of ${b.data.length} bytes ${r.error}`);
    else moved += b.data.length;
  }
  return moved;
}

/** Per target, the MB/s of each round and their median, and every wrong answer it gave. */
export interface MixFigure extends Rates {
  errors: Record<string, string[]>;
}

export async function mixSideBySide(targets: Target[], o: MixOptions): Promise<MixFigure> {
  const sets = Array.from({ length: o.clients }, () =>
    Array.from({ length: o.perClient }, () => {
      const data = randomBytes(o.bytes);
      return { path: `/cas/${createHash('sha256').update(data).digest('hex')}`, data };
    }),
  );
  const agents: http.Agent[] = [];
  const errors: Record<string, string[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  const once = async (t: Target): Promise<number> => {
    const cleaner = new http.Agent({ keepAlive: true, maxSockets: 8 });
    agents.push(cleaner);
    await Promise.all(sets.flat().map((b) => send(cleaner, `${t.base}${b.path}`, 'DELETE')));
    const own = sets.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    agents.push(...own);
    const t0 = performance.now();
    const moved = await Promise.all(sets.map((blobs, i) => client(own[i]!, t.base, blobs, errors[t.name]!)));
    return moved.reduce((x, y) => x + y, 0) / 1e6 / ((performance.now() - t0) / 1000);
  };
  try {
    for (const t of targets) await once(t); // unmeasured: JIT, page cache, connections
    const rounds: Array<Record<string, number>> = [];
    for (let r = 0; r < o.rounds; r++) {
      const round: Record<string, number> = {};
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(r + k) % targets.length]!;
        round[t.name] = await once(t);
      }
      rounds.push(round);
    }
    return { rounds, errors, medians: Object.fromEntries(targets.map((t) => [t.name, median(rounds.map((x) => x[t.name]!))])) };
  } finally {
    for (const a of agents) a.destroy();
  }
}
