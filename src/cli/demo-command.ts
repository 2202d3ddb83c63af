import { randomBytes } from 'node:crypto';
import { parseAgentOptions, parseConfig } from '../config';
import { createLogger, startRedisServer, type RedisServerHandle } from '../lib';
import { Master, type BuildRecord } from '../master';
import { Agent } from '../slave-agent';
import { MasterClient } from './master-client';
import { onShutdownSignal } from './shutdown';

export interface DemoFlags {
  /** Stop after this many builds have finished. */
  jobs?: number;
  /** Milliseconds between sample job submissions. */
  interval?: number;
}

const SAMPLES: Record<string, (n: number) => string> = {
  b2g: (n) => `echo "b2g: building gaia profile #${n}"; sleep 0.${3 + (n % 5)}; echo "b2g: flashed image ok"`,
  linux64: (n) =>
    n % 7 === 6
      ? `echo "linux64: compiling"; sleep 0.2; echo "error: test_sandbox failed" >&2; exit 3`
      : `echo "linux64: make -j4 (build #${n})"; sleep 0.${2 + (n % 4)}; echo "linux64: 1342 tests passed"`,
};

/**
 * `spillway demo`: the embedded local farm. A master, two on-prem agents and a trickle of
 * sample jobs of two job types; each build is printed as it finishes. Uses REDIS_URL when
 * set, otherwise starts a private redis-server for the duration of the demo.
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
  const config = parseConfig(
    {
      redis: { keyPrefix: 'spillway-demo', queuePrefix: 'bull-demo' },
      http: { host: '127.0.0.1', port: 8080 },
      agents: { host: '127.0.0.1', port: 8081, heartbeatSec: 2, lostAfterSec: 10 },
      jobTypes: {
        b2g: { description: 'Boot2Gecko device builds', timeoutSec: 600 },
        linux64: { description: 'Linux desktop builds', timeoutSec: 600 },
      },
      log: { level: 'warn', format: 'pretty' },
    },
    { ...env, REDIS_URL: redisUrl, SPILLWAY_AGENT_TOKEN: token },
    'demo config',
  );
  const log = createLogger({ level: 'warn', format: 'pretty' });
  const master = new Master({ config, log });
  const addr = await master.start();
  out.write(`spillway demo: HTTP API ${addr.httpUrl}  (try: spillway status --master ${addr.httpUrl})\n`);

  const agents = [
    { name: 'onprem-1', jobTypes: ['b2g', 'linux64'], executors: 2 },
    { name: 'onprem-2', jobTypes: ['linux64'], executors: 1 },
  ].map(
    (a) =>
      new Agent({
        options: parseAgentOptions({ master: addr.agentUrl, token, location: 'onprem', ...a }),
        log: log.child({ agent: a.name }),
      }),
  );
  const welcomed = agents.map((a) => new Promise((resolve) => a.once('welcomed', resolve)));
  const running = agents.map((a) => a.start());
  await Promise.all(welcomed);
  out.write('spillway demo: agents onprem-1 (b2g,linux64 x2) and onprem-2 (linux64 x1) connected; sample jobs follow, Ctrl-C stops\n');

  let finished = 0;
  let failed = 0;
  const enough = new Promise<void>((resolve) => {
    master.dispatcher.on('build-finished', (b) => {
      out.write(formatBuild(b) + '\n');
      finished++;
      if (b.result !== 'success') failed++;
      if (flags.jobs !== undefined && finished >= flags.jobs) resolve();
    });
  });

  const client = new MasterClient(addr.httpUrl);
  let n = 0;
  const types = Object.keys(SAMPLES);
  const submit = async () => {
    const type = types[n % types.length]!;
    await client.post('/api/jobs', { type, shell: SAMPLES[type]!(n) });
    n++;
  };
  const total = flags.jobs;
  const timer = setInterval(() => {
    if (total !== undefined && n >= total) return clearInterval(timer);
    submit().catch((err: Error) => out.write(`spillway demo: submit failed: ${err.message}\n`));
  }, flags.interval ?? 400);

  await Promise.race([enough, onShutdownSignal()]);
  clearInterval(timer);
  out.write(`spillway demo: ${finished} build(s) finished, ${failed} not successful; stopping\n`);
  await Promise.all(agents.map((a) => a.drain()));
  await Promise.allSettled(running);
  await master.stop();
  await redis?.stop();
  return 0;
}

function formatBuild(b: BuildRecord): string {
  const mark = b.result === 'success' ? 'ok  ' : 'FAIL';
  const where = b.location === 'cloud' ? `cloud ${b.instanceId ?? ''}`.trim() : 'on-prem';
  const wait = b.waitMs === null ? '-' : `${b.waitMs}ms`;
  const ran = b.durationMs === null ? '-' : `${b.durationMs}ms`;
  const result = b.result === 'success' ? 'exited 0' : (b.reason ?? b.result ?? '');
  return `  ${mark} ${b.type.padEnd(8)} ${b.id.slice(0, 8)}  ${b.agent.padEnd(9)} ${where.padEnd(8)} waited ${wait.padStart(6)}  ran ${ran.padStart(6)}  ${result}`;
}
