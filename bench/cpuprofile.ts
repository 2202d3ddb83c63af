/**
 * Reading V8 .cpuprofile files (`node --cpu-prof`): self and inclusive time per function and
 * per package, and the summary the dispatch benchmark prints under BENCH_PROFILE.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { f1 } from './harness';

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

/** The .cpuprofile files `node --cpu-prof` wrote to `dir`; none when it does not exist. */
export function cpuProfilesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
}

/** Where `who` spent its CPU: by package, by function (self) and its own heaviest frames. */
export function printProfile(who: string, file: string): void {
  const p = summariseProfile(file);
  const busy = p.sampledMs - p.idleMs;
  console.log('');
  console.log(`${who} CPU profile (whole life of the process, ${f1(busy)} ms busy of ${f1(p.sampledMs)} ms sampled):`);
  console.log('  self time by package:');
  for (const r of p.byPackage.filter((r) => r.name !== '(idle)').slice(0, 12)) console.log(`    ${f1((100 * r.selfMs) / busy).padStart(5)}%  ${r.name}`);
  console.log('  top functions by self time:');
  for (const r of p.rows.filter((r) => !r.name.startsWith('(idle)')).slice(0, 25)) {
    console.log(`    ${f1((100 * r.selfMs) / busy).padStart(5)}% self ${f1((100 * r.totalMs) / busy).padStart(5)}% incl  ${r.name}`);
  }
  console.log('  heaviest spillway frames (inclusive):');
  for (const r of [...p.rows].filter((r) => r.name.includes('dist/src/')).sort((a, b) => b.totalMs - a.totalMs).slice(0, 15)) {
    console.log(`    ${f1((100 * r.totalMs) / busy).padStart(5)}% incl  ${r.name}`);
  }
}
