import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  name: string;
  selfMs: number;
  totalMs: number;
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const d = url.lastIndexOf('/dist/');
  if (d >= 0) return url.slice(d + 1);
  return url.replace(/^file:\/\//, '');
}

function label(cf: CallFrame): string {
  const fn = cf.functionName || '(anonymous)';
  return cf.url ? `${fn} ${shortUrl(cf.url)}:${cf.lineNumber + 1}` : fn;
}

/**
 * Self and inclusive time per function (by name and location) of a V8 .cpuprofile. Idle and
 * program/GC pseudo-frames are kept so the shares add up.
 */
export function summariseProfile(file: string): { rows: ProfileRow[]; sampledMs: number; idleMs: number; byPackage: ProfileRow[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const pkg = new Map<string, number>();
  let all = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    all += us;
    if (n.callFrame.functionName === '(idle)') idle += us;
    const l = label(n.callFrame);
    self.set(l, (self.get(l) ?? 0) + us);
    const u = n.callFrame.url;
    const group = !u ? n.callFrame.functionName : u.includes('node_modules/') ? u.slice(u.lastIndexOf('node_modules/') + 13).split('/').slice(0, u.includes('node_modules/@') ? 2 : 1).join('/') : u.startsWith('node:') ? 'node: internals' : u.includes('/dist/src/') ? 'spillway (dist/src)' : u;
    pkg.set(group, (pkg.get(group) ?? 0) + us);
    // Inclusive: each distinct label on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cl = label(byId.get(cur)!.callFrame);
      if (seen.has(cl)) continue;
      seen.add(cl);
      total.set(cl, (total.get(cl) ?? 0) + us);
    }
  }
  const rows = [...self.entries()].map(([name, us]) => ({ name, selfMs: us / 1000, totalMs: (total.get(name) ?? us) / 1000 }));
  rows.sort((a, b) => b.selfMs - a.selfMs);
  const byPackage = [...pkg.entries()].map(([name, us]) => ({ name, selfMs: us / 1000, totalMs: us / 1000 })).sort((a, b) => b.selfMs - a.selfMs);
  return { rows, sampledMs: all / 1000, idleMs: idle / 1000, byPackage };
}

/** The heaviest inclusive frames from our own code (what calls into the libraries). */
export function topInclusive(file: string, filter: (name: string) => boolean, n: number): ProfileRow[] {
  const { rows } = summariseProfile(file);
  return rows
    .filter((r) => filter(r.name))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, n);
}
