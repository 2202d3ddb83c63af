/**
 * Figure 3 of issue 13: `clients` concurrent clients, each PUTting its own `perClient` blobs of
 * `bytes` and then GETting them back, one request at a time over its own keep-alive socket
 * (bare node:http, no hashing on the client: the same client for every server). The figure is
 * MB/s (10^6 B/s) of all bytes moved, PUT and GET, from the first request to the last answer.
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

function send(agent: http.Agent, url: string, method: 'PUT' | 'GET' | 'DELETE', body?: Buffer): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {};
    const req = http.request(url, { method, agent, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One client's work: its blobs PUT in turn, then GET in turn; any wrong answer throws. */
async function client(agent: http.Agent, base: string, blobs: Array<{ path: string; data: Buffer }>): Promise<void> {
  for (const b of blobs) {
    const r = await send(agent, `${base}${b.path}`, 'PUT', b.data);
    if (r.status >= 300) throw new Error(`PUT ${base}${b.path}: HTTP ${r.status}`);
  }
  for (const b of blobs) {
    const r = await send(agent, `${base}${b.path}`, 'GET');
    if (r.status !== 200 || r.bytes !== b.data.length) throw new Error(`GET ${base}${b.path}: HTTP ${r.status}, ${r.bytes} of ${b.data.length} bytes`);
  }
}

export async function mixSideBySide(targets: Target[], o: MixOptions): Promise<Rates> {
  const sets = Array.from({ length: o.clients }, () =>
    Array.from({ length: o.perClient }, () => {
      const data = randomBytes(o.bytes);
      return { path: `/cas/${createHash('sha256').update(data).digest('hex')}`, data };
    }),
  );
  const moved = 2 * o.clients * o.perClient * o.bytes;
  const agents: http.Agent[] = [];
  const once = async (t: Target): Promise<number> => {
    const cleaner = new http.Agent({ keepAlive: true, maxSockets: 8 });
    agents.push(cleaner);
    await Promise.all(sets.flat().map((b) => send(cleaner, `${t.base}${b.path}`, 'DELETE')));
    const own = sets.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    agents.push(...own);
    const t0 = performance.now();
    await Promise.all(sets.map((blobs, i) => client(own[i]!, t.base, blobs)));
    return moved / 1e6 / ((performance.now() - t0) / 1000);
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
    return { rounds, medians: Object.fromEntries(targets.map((t) => [t.name, median(rounds.map((x) => x[t.name]!))])) };
  } finally {
    for (const a of agents) a.destroy();
  }
}
