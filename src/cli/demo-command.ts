import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseAgentOptions, parseConfig } from '../config';
import { createLogger, startRedisServer, type RedisServerHandle } from '../lib';
import { Agent } from '../slave-agent';
import { startDaemon } from './daemon';
import { DemoNarrator } from './demo-narrator';
import { MasterClient } from './master-client';
import { onShutdownSignal } from './shutdown';

export interface DemoFlags {
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
  let redis: RedisServerHandle | undefined;
  let redisUrl = env.REDIS_URL;
  if (!redisUrl) {
    redis = await startRedisServer({ ownProcessGroup: true });
    redisUrl = redis.url;
    out.write(`spillway demo: started a private redis-server on ${redisUrl} (removed on exit; set REDIS_URL to use yours)\n`);
  }
  const token = env.SPILLWAY_AGENT_TOKEN || randomBytes(16).toString('hex');
  // Submission needs a token, as on any master with one: the demo shows the real thing.
  const submitToken = env.SPILLWAY_SUBMIT_TOKEN || randomBytes(12).toString('hex');
  const adminToken = env.SPILLWAY_ADMIN_TOKEN || randomBytes(12).toString('hex');
  // Each run gets its own keys, so a shared Redis never mixes runs.
  const run = randomBytes(3).toString('hex');
  const config = parseConfig(
    {
      redis: { keyPrefix: `spillway-demo-${run}`, queuePrefix: `bull-demo-${run}` },
      http: { host: '127.0.0.1', port: 8080 },
      agents: { listen: { host: '127.0.0.1' }, port: 8081, heartbeatSec: 1, lostAfterSec: 5 },
      jobTypes: {
        b2g: { description: 'Boot2Gecko device builds', timeoutSec: 600, overflow: { pool: 'cloud', minBacklog: 2, minOldestWaitSec: 1 } },
        linux64: { description: 'Linux desktop builds (never overflows)', timeoutSec: 600 },
      },
      pools: {
        cloud: {
          provider: 'local',
          maxInstances: 3,
          quietPeriodMin: (flags.quietSec ?? 15) / 60,
          bootTimeoutSec: 30,
          suspend: 'hibernate',
          local: { bootDelayMs: 1500 },
          // Illustrative prices, so the dashboard's cost panel shows figures.
          price: { onDemandPerHour: 0.68, spotPerHour: 0.25 },
        },
      },
      // The charts move on the demo's compressed time scale.
      dashboard: { sampleSec: 5 },
    },
    { ...env, REDIS_URL: redisUrl, SPILLWAY_AGENT_TOKEN: token, SPILLWAY_SUBMIT_TOKEN: submitToken, SPILLWAY_ADMIN_TOKEN: adminToken },
    'demo config',
  );
  const deliberate = new Map<string, string>();
  let narrator: DemoNarrator | undefined;
  const log = createLogger({ level: 'info', silent: true, sink: (e) => narrator?.logEntry(e) });
  const daemon = await startDaemon({ config, log, agentCommand: [process.execPath, resolve(__dirname, 'main.js')] });
  const addr = daemon.addresses;
  const master = daemon.master;
  narrator = new DemoNarrator({
    out,
    verbose: flags.verbose ?? false,
    deliberate,
    now: () => Date.now(),
    waiting: async () => (await Promise.all(master.jobTypes.map((t) => master.queueCounts(t)))).reduce((n, c) => n + c.waiting + c.prioritized, 0),
  });
  const narrate = narrator;
  out.write(`spillway demo: HTTP API ${addr.httpUrl}, dashboard ${addr.httpUrl}/ (admin token ${adminToken})\n`);
  out.write(`spillway demo: in another terminal: npx spillway status --master ${addr.httpUrl}\n`);
  out.write(`spillway demo: submit a build: SPILLWAY_TOKEN=${submitToken} npx spillway submit --master ${addr.httpUrl} --type linux64 --wait -- echo hello\n`);

  const agents = [
    { name: 'onprem-1', jobTypes: ['b2g', 'linux64'], executors: 2 },
    { name: 'onprem-2', jobTypes: ['linux64'], executors: 1 },
  ].map(
    (a) =>
      new Agent({
        options: parseAgentOptions({ master: addr.agentUrl, token, location: 'onprem', ...a }),
        log: createLogger({ level: 'warn', format: 'pretty' }).child({ agent: a.name }),
      }),
  );
  const welcomed = agents.map((a) => new Promise((r) => a.once('welcomed', r)));
  const running = agents.map((a) => a.start());
  await Promise.all(welcomed);
  out.write('spillway demo: on-prem agents onprem-1 (b2g,linux64 x2) and onprem-2 (linux64 x1) connected\n');
  out.write(`spillway demo: cloud pool "cloud": 3 suspended local instances; b2g overflows there when 2+ jobs wait 1s+, idle ones hibernate after ${flags.quietSec ?? 15}s\n`);
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

  const client = new MasterClient(addr.httpUrl, submitToken);
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
  await Promise.all(agents.map((a) => a.drain()));
  await Promise.allSettled(running);
  await daemon.stop();
  await redis?.stop();
  return 0;
}
