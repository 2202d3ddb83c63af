/**
 * Issue 13's figures, each side by side with nginx in one run: a real `spillway master` (its own
 * redis-server, its cache in this run's temp dir) against nginx WebDAV with 2 workers (the
 * server ccache's docs recommend, bench/cas-nginx.ts), the same clients and the same blobs for
 * both, rounds rotating which server goes first, the median of BENCH_ROUNDS:
 *
 *   1. 4 KiB GET hits/s, 32 connections (wrk), with three anchors in the same rounds: a bare
 *      node:http server answering a constant 4 KiB buffer in 1 process and in 2 (node:cluster),
 *      and a bare node:net server writing a prebuilt response in 2, the Node ceilings on this
 *      machine with and without node:http (bench/cache-anchor.ts).
 *   2. 1 MiB and 256 MiB PUT and GET MB/s, one bare node:http client (PUT streams a file; GET
 *      discards the body, no hashing); spillway verifies every PUT's hash as always.
 *   3. 8 clients x 16 x 1 MiB, all at once, each PUTting its blobs then GETting them: MB/s of all
 *      bytes moved (bench/cache-mix.ts).
 *   4. Bazel, a cached build of 200 genrules after `bazel clean`, wall seconds
 *      (bench/cache-bazel.ts); skipped with a message when bazel is not on PATH.
 *   5. The master's peak RSS (VmHWM, and its children's) over the whole run, nginx's next to it.
 *
 *   npm run bench:cache                      # or: node dist/bench/cache-vs-nginx.js
 *   BENCH_QUICK=1 npm run bench:cache        # does it work: 1 round, 2 s wrk, 1 MiB only, 20 genrules
 *   BENCH_ROUNDS=5 BENCH_WRK_SEC=5 BENCH_MEMORY_MB=64 BENCH_BAZEL_RULES=200 BENCH_SIZES_MIB=1,256 ...
 *   BENCH_CAS_YAML='{workers: 2, listen: {port: 0}}' ...   # merged into the master's `cas` section
 *   BENCH_FIGURES=1 ...                      # only these of figures 1-4 (5 always)
 *   BENCH_BASELINE_CAS_YAML='{rawHits: false}' ... # figures 1-3 also against a second master
 *                                            # (`spillway-before`) with this merged over BENCH_CAS_YAML
 *   BENCH_BASELINE_CLI=/work/base/dist/src/cli/main.js ... # spillway-before runs that build's CLI
 *                                            # (another commit's code; BENCH_BASELINE_CAS_YAML may be '{}')
 *
 * With `cas.listen.port` in the merged section the bench writes a free port there and targets
 * it instead of the HTTP API's port. Everything started is stopped on every way out (budget
 * BENCH_BUDGET_MS, signals, errors) and the temp dir removed (BENCH_KEEP=1 keeps it).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../src/lib/redis-server';
import { bazelBench, haveBazel } from './cache-bazel';
import { casOverrides, deepMerge, rssSampler, startMaster, type MasterRun, type RssPeak } from './cache-master';
import { mixSideBySide, type MixFigure } from './cache-mix';
import { higherIsBetter, printReport, printRounds, type ReportRow } from './cache-report';
import { haveNginxAndWrk, hitsSideBySide, killWrk, putsSideBySide, startNginx, type PutSideBySide, type Rates, type SideBySide, type Target } from './cas-nginx';
import { f1, f2, intEnv, machineInfo, machineLine, once, runBench, say } from './harness';
import { killChildren, poll, spawnLogged, stopChild, type LoggedChild } from './procs';

const MiB = 1024 * 1024;
const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = QUICK ? 1 : intEnv('BENCH_ROUNDS', 5);
const WRK = {
  count: 256,
  bytes: 4096,
  rounds: ROUNDS,
  seconds: QUICK ? 2 : intEnv('BENCH_WRK_SEC', 5),
  connections: 32,
  threads: 2,
};
const SIZES_MIB = (process.env.BENCH_SIZES_MIB ?? (QUICK ? '1' : '1,256'))
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
/** A 1 MiB round moves this much per server, so it is not one request's jitter. */
const MIN_BYTES_PER_ROUND = 64 * MiB;
const MIX = { clients: 8, perClient: 16, bytes: MiB, rounds: ROUNDS };
const BAZEL_RULES = QUICK ? 20 : intEnv('BENCH_BAZEL_RULES', 200);
const MEMORY_MB = intEnv('BENCH_MEMORY_MB', 64, true);
const BUDGET_MS = intEnv('BENCH_BUDGET_MS', QUICK ? 400_000 : 1_800_000);
const FIGURES = new Set((process.env.BENCH_FIGURES ?? '1,2,3,4').split(',').map(Number));
/** Issue 13: figures 1-3 at least this share of nginx's; Bazel no slower. */
const TARGET = 0.8;

// ---------------------------------------------------------------------------------------------
// Everything this run started, so any exit path can stop it.

const work = mkdtempSync(join(tmpdir(), 'spillway-bench-cache-'));
const masterRun: MasterRun = {};
const BASELINE_YAML = process.env.BENCH_BASELINE_CAS_YAML;
const baselineRun: MasterRun = {};
let nginx: LoggedChild | undefined;
const anchors: LoggedChild[] = [];
const bazel = bazelBench(join(work, 'bazel'), BAZEL_RULES, say);

const stopAnchors = async (): Promise<void> => {
  await Promise.allSettled(anchors.splice(0).map((a) => stopChild(a, 5000)));
};

const cleanup = once(async () => {
  killWrk();
  await bazel.stop().catch(() => undefined);
  await stopAnchors();
  if (nginx) await stopChild(nginx, 5000).catch(() => undefined);
  for (const run of [masterRun, baselineRun]) {
    if (run.master) await stopChild(run.master, 10_000).catch(() => undefined);
    await run.redis?.stop().catch(() => undefined);
  }
});

function removeWork(): void {
  if (process.env.BENCH_KEEP) say(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

async function startAnchor(processes: number, kind: 'http' | 'net' = 'http'): Promise<Target> {
  const port = await freePort();
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const a = spawnLogged(`anchor-${kind}-${processes}`, process.execPath, [resolve(__dirname, 'cache-anchor.js'), String(port), String(processes), kind], join(work, `anchor-${kind}-${processes}.log`), env);
  anchors.push(a);
  const m = await poll(`the ${processes}-process anchor to listen`, 20_000, () => {
    if (a.child.exitCode !== null) throw new Error(`anchor exited (${a.child.exitCode}):\n${a.log().slice(-2000)}`);
    return /listening (http:\/\/\S+)/.exec(a.log()) ?? undefined;
  });
  const name = kind === 'net' ? `node-net-${processes}` : processes === 1 ? 'node-1' : `node-cluster-${processes}`;
  return { name, base: m[1]!, constant: true };
}

const mib = (bytes: number): string => `${f1(bytes / MiB)} MiB`;
const peakTotal = (p: RssPeak): number => p.master + [...p.children.values()].reduce((a, b) => a + b, 0);

function printHits(h: SideBySide): void {
  console.log(`figure 1, 4 KiB GET hits/s, wrk ${WRK.connections} connections, ${WRK.threads} threads, ${WRK.seconds} s per round, ${WRK.count} blobs (median of ${h.rounds.length}):`);
  const names = Object.keys(h.medians);
  for (const [i, r] of h.rounds.entries()) console.log(`  round ${i + 1}: ${names.map((n) => `${n} ${f1(r[n]!.perSec)}${r[n]!.errors ? ` (${r[n]!.errors} errors)` : ''}`).join('  ')}`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const t0 = Date.now();
  const machine = machineInfo();
  if (!haveNginxAndWrk()) throw new Error('nginx and wrk must be on PATH (apt-get install -y nginx-light wrk)');
  const filesDir = join(work, 'files');
  mkdirSync(filesDir, { recursive: true });
  say(`${QUICK ? 'QUICK mode, ' : ''}${ROUNDS} rounds; load average ${machine.load}; work dir ${work}`);

  const biggest = Math.max(...SIZES_MIB) * MiB;
  const sizes = {
    memoryMb: MEMORY_MB,
    maxSizeMb: Math.ceil((4 * biggest + MIX.clients * MIX.perClient * MIX.bytes + 512 * MiB) / MiB),
    maxBlobMb: Math.ceil((2 * biggest) / MiB),
  };
  const m = await startMaster(masterRun, work, { ...sizes, casYaml: process.env.BENCH_CAS_YAML });
  const masterRss = rssSampler(m.pid);
  let baseline: Target | undefined;
  if (BASELINE_YAML) {
    mkdirSync(join(work, 'baseline'), { recursive: true });
    const casYaml = JSON.stringify(deepMerge(casOverrides(process.env.BENCH_CAS_YAML), casOverrides(BASELINE_YAML)));
    const cli = process.env.BENCH_BASELINE_CLI;
    const b = await startMaster(baselineRun, join(work, 'baseline'), { ...sizes, casYaml, ...(cli && { cli: resolve(cli) }) });
    baseline = { name: 'spillway-before', base: b.base };
    say(`spillway-before (pid ${b.pid}) cache at ${b.base}, cas ${casYaml}${cli ? `, cli ${cli}` : ''}`);
  }
  const ng = await startNginx(join(work, 'nginx'));
  nginx = ng.proc;
  const nginxRss = rssSampler(ng.proc.child.pid!);
  say(`spillway master (pid ${m.pid}) cache at ${m.base}; nginx at ${ng.base}`);
  const servers: Target[] = [{ name: 'spillway', base: m.base }, { name: 'nginx', base: ng.base }];

  // Figures 2 and 3 print the baseline's rounds next to the others; the table compares spillway and nginx.
  const withBaseline = baseline ? [...servers, baseline] : servers;
  let hits: SideBySide | undefined;
  if (FIGURES.has(1)) {
    const hitTargets = [...servers, ...(baseline ? [baseline] : []), await startAnchor(1), await startAnchor(2), await startAnchor(2, 'net')];
    say(`figure 1: 4 KiB hits, ${hitTargets.map((t) => t.name).join(', ')}`);
    hits = await hitsSideBySide(hitTargets, work, WRK);
    await stopAnchors();
  }

  let transfers: PutSideBySide[] = [];
  if (FIGURES.has(2)) {
    say(`figure 2: ${SIZES_MIB.join(', ')} MiB PUT and GET`);
    transfers = await putsSideBySide(withBaseline, filesDir, SIZES_MIB, ROUNDS, { gets: true, minBytesPerRound: MIN_BYTES_PER_ROUND });
  }

  let mix: MixFigure | undefined;
  if (FIGURES.has(3)) {
    say(`figure 3: ${MIX.clients} clients x ${MIX.perClient} x ${mib(MIX.bytes)}`);
    mix = await mixSideBySide(withBaseline, MIX);
  }

  let build: Rates | undefined;
  let buildSkipped: string | undefined;
  if (!FIGURES.has(4)) buildSkipped = 'not measured (BENCH_FIGURES)';
  else if (!haveBazel()) buildSkipped = 'skipped: bazel is not on PATH (apt-get install -y bazel-bootstrap)';
  else {
    say(`figure 4: Bazel, ${BAZEL_RULES} genrules`);
    try {
      build = await bazel.measure(servers, ROUNDS);
    } catch (err) {
      buildSkipped = `failed: ${(err as Error).message}`;
    }
    await bazel.stop();
  }

  const masterPeak = masterRss.stop();
  const nginxPeak = nginxRss.stop();
  const masterLog = masterRun.master?.log() ?? '';
  if (baselineRun.master) await stopChild(baselineRun.master, 10_000).catch(() => undefined);
  const endLoad = loadavg().map((l) => l.toFixed(2)).join(' ');
  await cleanup();

  // ---- report
  console.log('');
  console.log('spillway build cache vs nginx WebDAV (issue 13), side by side in one run');
  console.log(machineLine(machine));
  console.log(`load average at end ${endLoad}. The machine is shared: other work ran alongside, so compare the servers within this run, not with another run's figures.`);
  console.log(`spillway: spillway master (${m.base}), cas ${JSON.stringify({ ...m.cas, dir: '<tmp>' })}; nginx: WebDAV, 2 workers (${ng.base})`);
  console.log(`${QUICK ? 'QUICK mode: ' : ''}${ROUNDS} round(s), order rotating per round${QUICK ? `, 2 s wrk, ${SIZES_MIB.join(', ')} MiB, ${BAZEL_RULES} genrules` : ''}`);
  console.log('');
  if (hits) printHits(hits);
  for (const t of transfers) {
    printRounds(`figure 2, ${t.mib} MiB PUT MB/s, bare node:http, ${Math.max(1, Math.ceil(MIN_BYTES_PER_ROUND / (t.mib * MiB)))} PUT(s) per round`, t);
    if (t.get) printRounds(`figure 2, ${t.mib} MiB GET MB/s, bare node:http, body discarded`, t.get);
  }
  if (mix) printRounds(`figure 3, ${MIX.clients} clients x ${MIX.perClient} x ${mib(MIX.bytes)} PUT then GET, MB/s of all bytes`, mix);
  for (const [name, errs] of Object.entries(mix?.errors ?? {})) {
    if (errs.length > 0) console.log(`  ${name}: ${errs.length} wrong answer(s) (their bytes not counted, warm-up round included), e.g. ${errs[0]}`);
  }
  if (build) printRounds(`figure 4, Bazel ${BAZEL_RULES} cached genrules after bazel clean, s`, build, f2);
  else console.log(`figure 4, Bazel: ${buildSkipped}`);
  console.log(`figure 5, peak RSS: master VmHWM ${mib(masterPeak.master)}, ${masterPeak.children.size} child process(es) ${mib(peakTotal(masterPeak) - masterPeak.master)}; nginx (master + workers) ${mib(peakTotal(nginxPeak))}`);
  const warnings = masterLog.split('\n').filter((l) => /"level":"(warn|error)"/.test(l));
  if (warnings.length > 0) console.log(`the master logged ${warnings.length} warnings/errors, e.g. ${warnings[0]!.slice(0, 300)}`);
  console.log('');

  const hitErrors: Record<string, number> = hits ? Object.fromEntries(Object.keys(hits.medians).map((n) => [n, hits.rounds.reduce((s, r) => s + r[n]!.errors, 0)])) : {};
  const rows: ReportRow[] = [];
  if (hits) {
    const hitRow = higherIsBetter(`4 KiB GET hits/s, ${WRK.connections} conns (wrk)`, hits, TARGET);
    if (hitErrors.spillway! > 0) rows.push({ ...hitRow, spillway: `${hitRow.spillway} (${hitErrors.spillway} errors)`, ok: false });
    else rows.push(hitRow);
    for (const a of Object.keys(hits.medians).filter((n) => n !== 'spillway' && n !== 'nginx')) {
      const v = hits.medians[a]!;
      const label = a === 'spillway-before' ? `  spillway-before, cas ${BASELINE_YAML} (in the spillway column)` : `  anchor ${a}: constant 4 KiB (in the spillway column)`;
      rows.push({ figure: label, spillway: f1(v), nginx: f1(hits.medians.nginx!), ratio: f2(v / hits.medians.nginx!), target: `spillway = ${f2(hits.medians.spillway! / v)}x of it`, ok: undefined });
    }
  }
  for (const t of transfers) {
    rows.push(higherIsBetter(`${t.mib} MiB PUT MB/s`, t, TARGET));
    if (t.get) rows.push(higherIsBetter(`${t.mib} MiB GET MB/s`, t.get, TARGET));
  }
  if (mix) {
    const mixRow = higherIsBetter(`${MIX.clients} clients x ${MIX.perClient} x 1 MiB PUT then GET, MB/s`, mix, TARGET);
    const mixErrors = mix.errors.spillway!.length;
    rows.push(mixErrors > 0 ? { ...mixRow, spillway: `${mixRow.spillway} (${mixErrors} errors)`, ok: false } : mixRow);
  }
  if (build) {
    const s = build.medians.spillway!;
    const n = build.medians.nginx!;
    rows.push({ figure: `Bazel, ${BAZEL_RULES} cached genrules after clean, s`, spillway: f2(s), nginx: f2(n), ratio: s > n ? `${f2(s / n)}x slower` : f2(s / n), target: 'no slower', ok: s <= n });
  } else {
    rows.push({ figure: 'Bazel cached build, s', spillway: '-', nginx: '-', ratio: '-', target: 'no slower', ok: buildSkipped?.startsWith('skipped') || !FIGURES.has(4) ? undefined : false });
  }
  rows.push({ figure: 'peak RSS (VmHWM, + children), MiB', spillway: f1(peakTotal(masterPeak) / MiB), nginx: f1(peakTotal(nginxPeak) / MiB), ratio: f2(peakTotal(masterPeak) / peakTotal(nginxPeak)), target: `reported (memoryCacheMb ${MEMORY_MB})`, ok: undefined });
  printReport(rows);
  console.log(`bench took ${f1((Date.now() - t0) / 1000)} s`);
  // A MISS is a figure, not a failure of the bench; wrong answers are.
  return Object.values(hitErrors).some((e) => e > 0) || Object.values(mix?.errors ?? {}).some((e) => e.length > 0) ? 1 : 0;
}

runBench(main, {
  budgetMs: BUDGET_MS,
  cleanup,
  kill: () => {
    killWrk();
    bazel.kill();
    killChildren();
  },
  afterCleanup: removeWork,
  onError: () => {
    try {
      if (masterRun.master) process.stderr.write(`--- last output of the master:\n${masterRun.master.log().slice(-2000)}\n`);
    } catch {
      // no log
    }
  },
});
