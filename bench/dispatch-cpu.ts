/**
 * CPU accounting for the dispatch benchmark: who spent how much CPU during a phase (master,
 * agents, the builds they ran, redis-server, this process, everyone else on the machine), read
 * from /proc before and after, and the per-phase breakdown printed in the report.
 */
import { f1, f2 } from './harness';
import { machineCpu, procCpu } from './procs';

/** The processes whose CPU is accounted; pids are read at snapshot time (agents restart). */
export interface Accounted {
  master: number | undefined;
  agents: Array<number | undefined>;
  redis: number | undefined;
}

export interface CpuSnapshot {
  at: number;
  master: number;
  masterSys: number;
  agents: number;
  agentsSys: number;
  builds: number;
  redis: number;
  bench: number;
  benchSys: number;
  /** `true` processes the ceiling's Worker spawned in this process. */
  benchChildren: number;
  machineBusy: number;
}

export function cpuSnapshot(p: Accounted): CpuSnapshot {
  const u = process.cpuUsage();
  let ag = 0;
  let agSys = 0;
  let builds = 0;
  for (const pid of p.agents) {
    const c = procCpu(pid);
    ag += c?.self ?? 0;
    agSys += c?.sys ?? 0;
    builds += c?.children ?? 0;
  }
  const m = procCpu(p.master);
  const me = procCpu(process.pid);
  return {
    at: performance.now(),
    master: m?.self ?? 0,
    masterSys: m?.sys ?? 0,
    agents: ag,
    agentsSys: agSys,
    builds,
    redis: procCpu(p.redis)?.self ?? 0,
    bench: (u.user + u.system) / 1000,
    benchSys: u.system / 1000,
    benchChildren: me?.children ?? 0,
    machineBusy: machineCpu().busyMs,
  };
}

export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot) {
  const wall = b.at - a.at;
  const d = {
    wallMs: wall,
    master: b.master - a.master,
    masterSys: b.masterSys - a.masterSys,
    agents: b.agents - a.agents,
    agentsSys: b.agentsSys - a.agentsSys,
    // The ceiling's `true` children are this process's, not an agent's.
    builds: b.builds - a.builds + (b.benchChildren - a.benchChildren),
    redis: b.redis - a.redis,
    bench: b.bench - a.bench,
    benchSys: b.benchSys - a.benchSys,
    machineBusy: b.machineBusy - a.machineBusy,
  };
  return { ...d, others: d.machineBusy - d.master - d.agents - d.builds - d.redis - d.bench };
}

export type CpuDelta = ReturnType<typeof cpuDelta>;

export function printCpu(label: string, c: CpuDelta, builds: number): void {
  const per = (ms: number, sys?: number) =>
    `${f1(ms).padStart(7)} ms  ${f2(ms / builds)} ms/build${sys === undefined ? '' : ` (sys ${f2(sys / builds)})`}  ${f1((100 * ms) / c.wallMs)}% of a core`;
  console.log(`  CPU during ${label} (wall ${f1(c.wallMs)} ms, ${builds} builds):`);
  if (c.master > 0) console.log(`    master          ${per(c.master, c.masterSys)}`);
  if (c.agents > 0) console.log(`    agents (node)   ${per(c.agents, c.agentsSys)}`);
  console.log(`    builds (true)   ${per(c.builds)}`);
  console.log(`    redis-server    ${per(c.redis)}`);
  console.log(`    bench process   ${per(c.bench, c.benchSys)}`);
  console.log(`    everything else ${per(c.others)}  <- other users of this machine`);
}
