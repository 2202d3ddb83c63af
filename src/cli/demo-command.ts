import { startDemoFarm } from './demo-farm';
import { DemoNarrator } from './demo-narrator';
import { demoRemote, type DemoRemoteFlags } from './demo-remote';
import { MasterClient } from './master-client';
import { onShutdownSignal } from './shutdown';

export interface DemoFlags extends DemoRemoteFlags {
  /** `spillway demo --remote`: a burst of REAPI actions instead of the sample load (see demoRemote). */
  remote?: boolean;
  /** Stop after this many builds have finished. */
  jobs?: number;
  /** Milliseconds between trickle jobs. */
  interval?: number;
  /** Seconds between bursts of b2g jobs (the first comes after 3 s). */
  burstEvery?: number;
  /** Jobs per burst. */
  burstSize?: number;
  /** The cloud pool's quiet period, in seconds (compressed from the real default of 60 minutes). */
  quietSec?: number;
  /** A line for every build instead of a summary every few seconds. */
  verbose?: boolean;
  /** Seconds between summary lines. @defaultValue 5 */
  summaryEvery?: number;
}

/** Why the sample load's failures fail: a newcomer should not think the farm broke. */
const DELIBERATE_FAILURE = 'sample load exits 3';

const SAMPLES: Record<string, (n: number) => string> = {
  b2g: (n) => `echo "b2g: building gaia profile #${n}"; sleep 0.${3 + (n % 5)}; echo "b2g: flashed image ok"`,
  linux64: (n) =>
    failsOnPurpose(n)
      ? `echo "linux64: compiling"; sleep 0.2; echo "error: test_sandbox failed (deliberate: the demo's sample load fails every 4th linux64 build)" >&2; exit 3`
      : `echo "linux64: make -j4 (build #${n})"; sleep 0.${2 + (n % 4)}; echo "linux64: 1342 tests passed"`,
};
/** Every 4th linux64 job of the trickle (they take the odd numbers). */
const failsOnPurpose = (n: number) => n % 8 === 7;
const BURST = (n: number) => `echo "b2g: full device build #${n}"; sleep 2.${n % 5}; echo "b2g: done"`;

/**
 * `spillway demo`: the embedded local farm. A master, two on-prem agents, a local cloud pool of
 * three suspended instances (real agent processes) that only b2g may overflow into, a trickle
 * of b2g and linux64 jobs and a burst of b2g jobs every so often. Builds and the pool's wake /
 * suspend are printed as they happen, on a compressed time scale. Uses REDIS_URL when set,
 * otherwise starts a private redis-server for the duration of the demo.
 */
export async function demoCommand(flags: DemoFlags, env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  if (flags.remote) return demoRemote(flags, env, out);
  const deliberate = new Map<string, string>();
  let narrator: DemoNarrator | undefined;
  const farm = await startDemoFarm({
    remote: false,
    quietSec: flags.quietSec ?? 15,
    env,
    out,
    onLog: (e) => narrator?.logEntry(e),
    hints: ({ addr, submitToken }) => [`submit a build: SPILLWAY_TOKEN=${submitToken} npx spillway submit --master ${addr.httpUrl} --type linux64 --wait -- echo hello`],
  });
  const { master, addr, run } = farm;
  narrator = new DemoNarrator({
    out,
    verbose: flags.verbose ?? false,
    deliberate,
    now: () => Date.now(),
    waiting: async () => (await Promise.all(master.jobTypes.map((t) => master.queueCounts(t)))).reduce((n, c) => n + c.waiting + c.prioritized, 0),
  });
  const narrate = narrator;
  const every = flags.summaryEvery ?? 5;
  out.write(
    flags.verbose
      ? 'spillway demo: a trickle of jobs, and a burst of b2g jobs now and then; every build is printed; Ctrl-C stops\n'
      : `spillway demo: a trickle of jobs, and a burst of b2g jobs now and then; a summary every ${every}s and every cloud event (--verbose: every build); Ctrl-C stops\n`,
  );

  const enough = new Promise<void>((resolveEnough) => {
    master.on('build-finished', (b) => {
      narrate.build(b);
      if (flags.jobs !== undefined && narrate.finished >= flags.jobs) resolveEnough();
    });
  });
  const summaries = setInterval(() => void narrate.summary(), every * 1000);

  const client = new MasterClient(addr.httpUrl, farm.submitToken);
  const total = flags.jobs;
  let n = 0;
  const types = Object.keys(SAMPLES);
  const submit = (type: string, shell: string) => {
    if (total !== undefined && n >= total) return;
    // Ids chosen here, so a deliberate failure is known as one before its build can end.
    const jobId = `${run}-${n}`;
    if (type === 'linux64' && failsOnPurpose(n)) deliberate.set(jobId, DELIBERATE_FAILURE);
    n++;
    client.post('/api/jobs', { type, shell, jobId }).catch((err: Error) => out.write(`spillway demo: submit failed: ${err.message}\n`));
  };
  const trickle = setInterval(() => submit(types[n % types.length]!, SAMPLES[types[n % types.length]!]!(n)), flags.interval ?? 700);
  const burst = () => {
    const size = flags.burstSize ?? 8;
    out.write(`spillway demo: burst of ${size} b2g jobs\n`);
    for (let i = 0; i < size; i++) submit('b2g', BURST(n));
  };
  const firstBurst = setTimeout(burst, 3000);
  const bursts = setInterval(burst, (flags.burstEvery ?? 45) * 1000);

  await Promise.race([enough, onShutdownSignal()]);
  clearInterval(trickle);
  clearInterval(bursts);
  clearTimeout(firstBurst);
  clearInterval(summaries);
  await narrate.summary(true);
  out.write(narrate.closing() + '\n');
  await farm.stop();
  return 0;
}
