/**
 * Scale benchmark: how fast a backlog over an overflow threshold becomes a start call, how
 * fast a woken instance runs the job that woke it (phase 1+2, bench/scale-wake.ts), and whether
 * two masters ever start the same instance twice (phase 3, bench/scale-masters.ts). This file
 * runs the phases and prints the report; the knobs are in bench/scale-knobs.ts.
 *
 * A private redis-server is started; everything is stopped at the end; the run is bounded
 * (BENCH_BUDGET_MS, default 170 s; the wake phase stops taking samples at BENCH_WAKE_BUDGET_MS).
 * BENCH_DEBUG=1 prints the log of the first samples that started more than one instance.
 *
 *   npm run bench:scale                 # or: node dist/bench/scale.js
 *   BENCH_SAMPLES=50 BENCH_BOOT_DELAY_MS=50 BENCH_ROUNDS=5 node dist/bench/scale.js
 */
import { startRedisServer, type RedisServerHandle } from '../src/lib';
import { f1, machineInfo, machineLine, ms, once, printTable, runBench, say, statsOf, statsRow, type Stats, type TableRow } from './harness';
import { killChildren } from './procs';
import { mmRound, mmRoundNoLock, type MmRound } from './scale-masters';
import { BOOT_DELAY_MS, MM_DEMAND, MM_INSTANCES, MM_KICKS, MM_START_DELAY_MS, QUIET_PERIOD_MS, REAP_INTERVAL_MS, ROUNDS, RUN_BUDGET_MS, SAMPLES, WARMUP } from './scale-knobs';
import { wakePhase } from './scale-wake';

const TARGET = { wakeP99Ms: 250, startsPerInstance: 1 };

// ---------------------------------------------------------------------------------------------
// Everything this run started, so any exit path can stop it.

let redis: RedisServerHandle | undefined;
const closers: Array<() => Promise<unknown>> = [];

// Closers run one at a time, newest first (the reverse of the order things were started in).
const cleanup = once(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await redis?.stop().catch(() => undefined);
});

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const t0 = Date.now();
  const machine = machineInfo();
  say(`machine: nproc=${machine.nproc} node=${machine.node} load=${machine.load}`);
  redis = await startRedisServer();
  const prefix = `scale-${process.pid}`;

  say(`wake phase: ${WARMUP} + ${SAMPLES} samples, boot delay ${BOOT_DELAY_MS} ms, one job per sample, real agent processes`);
  const wake = await wakePhase(redis.url, `${prefix}-wake`, closers);
  const S = wake.samples;
  const W = statsOf(S, ['toWakeLog', 'toStartCall', 'wakeToStarted', 'wakeToBooted', 'bootedToRegistered', 'registeredToDispatched', 'dispatchedToStarted', 'lastBuildEndToDrain']);
  say(`wake phase: backlog->wake p50 ${W.toWakeLog.p50} ms p99 ${W.toWakeLog.p99} ms; wake->started p50 ${W.wakeToStarted.p50} ms p99 ${W.wakeToStarted.p99} ms`);

  say(`two masters: ${ROUNDS} rounds, ${MM_INSTANCES} suspended instances, backlog ${MM_DEMAND}, ${MM_KICKS} kicks each, start call ${MM_START_DELAY_MS} ms`);
  const rounds: MmRound[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await mmRound(redis.url, `${prefix}-mm${i}`));
  say(`two masters: max start calls per instance ${Math.max(...rounds.map((r) => r.maxPer))}`);
  say(`two scalers without the pool lock: ${ROUNDS} rounds`);
  const open: MmRound[] = [];
  for (let i = 0; i < ROUNDS; i++) open.push(await mmRoundNoLock(redis.url, `${prefix}-open${i}`));

  await cleanup();

  // ---- report
  console.log('');
  console.log('spillway scale benchmark');
  console.log(machineLine(machine));
  console.log(
    `wake phase: in-process master, local pool of ${wake.instances} (pre-created, stopped), boot delay ${BOOT_DELAY_MS} ms, agents = real CLI processes, quiet period ${QUIET_PERIOD_MS / 1000} s, reap interval ${REAP_INTERVAL_MS / 1000} s, suspend=terminate (every sample a cold boot); ${S.length} samples after ${WARMUP} warm-up, worst cycle ${f1(wake.cycleMs / 1000)} s`,
  );
  console.log('');
  console.log(`backlog -> wake -> first job started (${S.length} samples, ms):`);
  const row = (name: string, s: Stats) => console.log(statsRow(name, s, 42, { min: true, meanFmt: f1 }));
  row('enqueue -> instance.waking logged', W.toWakeLog);
  row('enqueue -> provider.start called', W.toStartCall);
  row('instance.waking -> job started (total)', W.wakeToStarted);
  row('  waking -> agent process spawned', W.wakeToBooted);
  row('  spawned -> agent connected (hello)', W.bootedToRegistered);
  row('  connected -> job dispatched', W.registeredToDispatched);
  row('  dispatched -> job started (agent)', W.dispatchedToStarted);
  row('quiet period from the last build end', W.lastBuildEndToDrain);
  const extraWakes = S.filter((s) => s.woken !== 1).length;
  const maxWoken = Math.max(0, ...S.map((s) => s.woken));
  const elsewhere = S.filter((s) => !s.ranOnWoken).length;
  const hist = new Map<number, number>();
  for (const x of S) hist.set(x.woken, (hist.get(x.woken) ?? 0) + 1);
  console.log(
    `  instances started (woken or launched) per one-job backlog: ${[...hist].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}: ${v} samples`).join(', ')}; the job ran on the first woken instance in ${S.length - elsewhere}/${S.length}`,
  );
  const n = wake.notes;
  console.log(
    `  builds: ${n.jobs} jobs, ${n.dispatches} dispatches, ${n.retriedBuilds} recorded with attempt > 1 (jobs had attempts: 1), ${n.givenBack} taken and given back unrun (${n.givenBackNoAgent} while no agent was connected); agents that said hello after their instance was suspended: ${n.helloAfterRetire.length}${n.helloAfterRetire.length ? ` (e.g. ${n.helloAfterRetire.slice(0, 3).join(', ')})` : ''}`,
  );
  for (const l of n.lost.slice(0, 3)) console.log(`    ${l}`);
  if (wake.errors.length) {
    console.log('  problems:');
    for (const e of wake.errors.slice(0, 10)) console.log(`    ${e}`);
  }
  console.log('');
  console.log(`two masters (${ROUNDS} rounds; ${MM_INSTANCES} suspended instances, backlog ${MM_DEMAND}, ${MM_KICKS} concurrent kicks per master, provider.start takes ${MM_START_DELAY_MS} ms):`);
  const mmLine = (label: string, rs: MmRound[]) => {
    console.log(`  ${label}`);
    rs.forEach((r, i) =>
      console.log(
        `    round ${i + 1}: start calls ${r.total} for ${r.instancesStarted} instances (max ${r.maxPer} per instance), ${r.booting} booting, ${r.launches} launches, ${r.ms} ms${r.errors.length ? `; errors: ${r.errors.slice(0, 2).join(' | ')}` : ''}`,
      ),
    );
  };
  mmLine('Provisioner x2 (pool lock + claim):', rounds);
  mmLine('PoolScaler x2, pool lock open to all (claim alone):', open);
  console.log('');

  const maxPer = Math.max(...rounds.map((r) => r.maxPer));
  const totals = rounds.map((r) => r.total);
  const wanted = Math.min(MM_DEMAND, MM_INSTANCES);
  const maxPerOpen = Math.max(...open.map((r) => r.maxPer));
  const openTotals = open.map((r) => r.total);
  const haveWake = S.length > 0;
  const rows: TableRow[] = [
    ['backlog over threshold -> wake call p50', ms(W.toWakeLog.p50), '-', undefined],
    ['backlog over threshold -> wake call p99', ms(W.toWakeLog.p99), `<= ${TARGET.wakeP99Ms} ms`, haveWake ? W.toWakeLog.p99 <= TARGET.wakeP99Ms : false],
    ['backlog -> provider.start called p99', ms(W.toStartCall.p99), '-', undefined],
    [`wake -> first job started p50 (boot delay ${BOOT_DELAY_MS} ms)`, ms(W.wakeToStarted.p50), '-', undefined],
    [`wake -> first job started p99 (boot delay ${BOOT_DELAY_MS} ms)`, ms(W.wakeToStarted.p99), '-', undefined],
    ['  of which agent spawn -> connected p50', ms(W.bootedToRegistered.p50), '-', undefined],
    [
      'quiet period measured from the last build end (min-max)',
      `${ms(W.lastBuildEndToDrain.min)}-${ms(W.lastBuildEndToDrain.max)}`,
      `${QUIET_PERIOD_MS}-${QUIET_PERIOD_MS + REAP_INTERVAL_MS} ms`,
      haveWake ? W.lastBuildEndToDrain.min >= QUIET_PERIOD_MS && W.lastBuildEndToDrain.max <= QUIET_PERIOD_MS + REAP_INTERVAL_MS : false,
    ],
    ['instances started per one-job backlog (max)', `${maxWoken} (${extraWakes}/${S.length} samples > 1)`, '= 1', haveWake ? maxWoken === 1 : false],
    ['wake samples taken / failed', `${S.length} / ${wake.errors.length}`, `${SAMPLES} / 0`, S.length === SAMPLES && wake.errors.length === 0],
    ['2 masters: max start calls per instance', String(maxPer), `= ${TARGET.startsPerInstance}`, maxPer === TARGET.startsPerInstance],
    ['2 masters: start calls per round (instances)', `${Math.min(...totals)}-${Math.max(...totals)} (${wanted})`, `= ${wanted}`, totals.every((t) => t === wanted)],
    ['no pool lock: max start calls per instance', String(maxPerOpen), `= ${TARGET.startsPerInstance}`, maxPerOpen === TARGET.startsPerInstance],
    ['no pool lock: start calls per round', `${Math.min(...openTotals)}-${Math.max(...openTotals)}`, '-', undefined],
  ];
  printTable(rows);
  console.log(`nproc ${machine.nproc}, node ${machine.node}; bench took ${f1((Date.now() - t0) / 1000)} s`);
  return wake.errors.length > 0 || !haveWake ? 1 : 0;
}

runBench(main, {
  budgetMs: RUN_BUDGET_MS,
  cleanup,
  // The agents were spawned by the LocalProvider, which holds their handles: kill by parentage.
  kill: killChildren,
  afterAbort: killChildren,
});
