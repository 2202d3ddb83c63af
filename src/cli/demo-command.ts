import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseAgentOptions, parseConfig } from '../config';
import { createLogger, startRedisServer, type LogEntry, type RedisServerHandle } from '../lib';
import type { BuildRecord } from '../master';
import { Agent } from '../slave-agent';
import { startDaemon } from './daemon';
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
}

const SAMPLES: Record<string, (n: number) => string> = {
  b2g: (n) => `echo "b2g: building gaia profile #${n}"; sleep 0.${3 + (n % 5)}; echo "b2g: flashed image ok"`,
  linux64: (n) =>
    n % 7 === 6
      ? `echo "linux64: compiling"; sleep 0.2; echo "error: test_sandbox failed" >&2; exit 3`
      : `echo "linux64: make -j4 (build #${n})"; sleep 0.${2 + (n % 4)}; echo "linux64: 1342 tests passed"`,
};
const BURST = (n: number) => `echo "b2g: full device build #${n}"; sleep 2.${n % 5}; echo "b2g: done"`;

/** Provisioner events a newcomer should see, as one friendly line each. */
const NARRATION: Partial<Record<string, (e: LogEntry) => string>> = {
  'instance.waking': (e) => `  cloud: waking ${(e.instanceIds as string[]).join(', ')} (${String(e.reason)})`,
  'instance.launching': (e) => `  cloud: launching ${String(e.count)} new instance(s)`,
  'instance.registered': (e) => `  cloud: ${String(e.instanceId)} is up, its agent registered`,
  'instance.draining': (e) => `  cloud: draining ${String(e.instanceId)} (${String(e.reason)})`,
  'instance.suspended': (e) => `  cloud: ${String(e.instanceId)} suspended (${String(e.mode)})`,
  'instance.boot-timeout': (e) => `  cloud: ${String(e.instanceId)} failed to boot (${String(e.reason)})`,
};

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
    redis = await startRedisServer();
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
  const log = createLogger({
    level: 'info',
    silent: true,
    sink: (e) => {
      if (e.level === 'error' || e.level === 'warn') out.write(`  ${e.level}: ${e.event} ${JSON.stringify(e)}\n`);
      const line = NARRATION[e.event]?.(e);
      if (line) out.write(line + '\n');
    },
  });
  const daemon = await startDaemon({ config, log, agentCommand: [process.execPath, resolve(__dirname, 'main.js')] });
  const addr = daemon.addresses;
  out.write(`spillway demo: HTTP API ${addr.httpUrl}, dashboard ${addr.httpUrl}/ (admin token ${adminToken}; try also: spillway status --master ${addr.httpUrl})\n`);
  out.write(`spillway demo: submit token ${submitToken}: SPILLWAY_TOKEN=${submitToken} spillway submit --master ${addr.httpUrl} --type linux64 -- make\n`);

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
  out.write('spillway demo: a trickle of jobs, and a burst of b2g jobs now and then; Ctrl-C stops\n');

  let finished = 0;
  let failed = 0;
  const enough = new Promise<void>((resolveEnough) => {
    daemon.master.on('build-finished', (b) => {
      out.write(formatBuild(b) + '\n');
      finished++;
      if (b.result !== 'success') failed++;
      if (flags.jobs !== undefined && finished >= flags.jobs) resolveEnough();
    });
  });

  const client = new MasterClient(addr.httpUrl, submitToken);
  const total = flags.jobs;
  let n = 0;
  const types = Object.keys(SAMPLES);
  const submit = (type: string, shell: string) => {
    if (total !== undefined && n >= total) return;
    n++;
    client.post('/api/jobs', { type, shell }).catch((err: Error) => out.write(`spillway demo: submit failed: ${err.message}\n`));
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
  out.write(`spillway demo: ${finished} build(s) finished, ${failed} not successful; stopping\n`);
  await Promise.all(agents.map((a) => a.drain()));
  await Promise.allSettled(running);
  await daemon.stop();
  await redis?.stop();
  return 0;
}

function formatBuild(b: BuildRecord): string {
  const mark = b.result === 'success' ? 'ok  ' : 'FAIL';
  const where = b.location === 'cloud' ? `CLOUD ${b.instanceId ?? ''}`.trim() : 'on-prem';
  const wait = b.waitMs === null ? '-' : `${b.waitMs}ms`;
  const ran = b.durationMs === null ? '-' : `${b.durationMs}ms`;
  const result = b.result === 'success' ? 'exited 0' : (b.reason ?? b.result ?? '');
  return `  ${mark} ${b.type.padEnd(8)} ${b.id.slice(0, 8)}  ${b.agent.padEnd(14)} ${where.padEnd(21)} waited ${wait.padStart(6)}  ran ${ran.padStart(6)}  ${result}`;
}
