import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAgentOptions, parseConfig } from '../config';
import { createLogger, startRedisServer, type LogEntry, type RedisServerHandle } from '../lib';
import type { Master } from '../master';
import { Agent } from '../slave-agent';
import { startDaemon, type Daemon, type DaemonAddresses } from './daemon';

/** The job type REAPI actions become in `spillway demo --remote`, and the one allowed to overflow there. */
export const REMOTE_JOB_TYPE = 'remote';

export interface DemoFarmOptions {
  /** With the gRPC port, a CAS and the `remote` job type (overflowing to the cloud pool) for REAPI actions. */
  remote: boolean;
  /** The cloud pool's quiet period, in seconds. */
  quietSec: number;
  env: NodeJS.ProcessEnv;
  out: NodeJS.WritableStream;
  /** Every log entry of the master (the logger itself is silent). */
  onLog: (e: LogEntry) => void;
  /** Lines printed after the farm's addresses, before the agents connect: what to try in another terminal. */
  hints: (farm: Pick<DemoFarm, 'addr' | 'submitToken' | 'casToken'>) => string[];
}

/** What a demo mode drives: the running farm and the tokens it printed. */
export interface DemoFarm {
  master: Master;
  addr: DaemonAddresses;
  /** A run id: keys, queue names and job ids of this run start with it. */
  run: string;
  submitToken: string;
  adminToken: string;
  /** The cache's read-write token (remote mode), which Bazel and the built-in client present. */
  casToken: string;
  /** A temp dir of this run, removed by stop(). */
  dir: string;
  /** Executors of the on-prem agents (all of them serve remote actions in remote mode). */
  onpremExecutors: number;
  /** Drains the on-prem agents, stops the master (and the cloud pool's agents), then the private Redis. */
  stop(): Promise<void>;
}

/** The on-prem agents: b2g and linux64 as in the plain demo, and remote actions on both in remote mode. */
const ONPREM = [
  { name: 'onprem-1', jobTypes: ['b2g', 'linux64'], executors: 2 },
  { name: 'onprem-2', jobTypes: ['linux64'], executors: 1 },
];

/**
 * The embedded farm of `spillway demo`: a private redis-server unless REDIS_URL is set, a
 * master, two on-prem agents and a local cloud pool of three suspended instances (real agent
 * processes once woken) that only chosen job types may overflow into: b2g, and in remote mode
 * the job type of REAPI actions too.
 */
export async function startDemoFarm(o: DemoFarmOptions): Promise<DemoFarm> {
  const { env, out } = o;
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
  const casToken = env.SPILLWAY_CAS_TOKEN || randomBytes(16).toString('hex');
  // Each run gets its own keys, so a shared Redis never mixes runs.
  const run = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'spillway-demo-'));
  const overflow = { pool: 'cloud', minBacklog: 2, minOldestWaitSec: 1 };
  const config = parseConfig(
    {
      redis: { keyPrefix: `spillway-demo-${run}`, queuePrefix: `bull-demo-${run}` },
      http: { host: '127.0.0.1', port: 8080 },
      agents: { listen: { host: '127.0.0.1' }, port: 8081, heartbeatSec: 1, lostAfterSec: 5 },
      jobTypes: {
        b2g: { description: 'Boot2Gecko device builds', timeoutSec: 600, overflow },
        linux64: { description: 'Linux desktop builds (never overflows)', timeoutSec: 600 },
        ...(o.remote && { [REMOTE_JOB_TYPE]: { description: 'REAPI actions (Bazel --remote_executor)', timeoutSec: 600, overflow } }),
      },
      pools: {
        cloud: {
          provider: 'local',
          maxInstances: 3,
          quietPeriodMin: o.quietSec / 60,
          bootTimeoutSec: 30,
          suspend: 'hibernate',
          local: { bootDelayMs: 1500 },
          // Illustrative prices, so the dashboard's cost panel shows figures.
          price: { onDemandPerHour: 0.68, spotPerHour: 0.25 },
        },
      },
      // The plain demo has no cache: its sample load is shell jobs.
      ...(o.remote && {
        cas: { dir: join(dir, 'cas'), prefix: '/cache', tokens: [casToken], maxSizeMb: 512 },
        grpc: { host: '127.0.0.1', port: 8980 },
        remoteExecution: { defaultJobType: REMOTE_JOB_TYPE },
      }),
      // The charts move on the demo's compressed time scale.
      dashboard: { sampleSec: 5 },
    },
    { ...env, REDIS_URL: redisUrl, SPILLWAY_AGENT_TOKEN: token, SPILLWAY_SUBMIT_TOKEN: submitToken, SPILLWAY_ADMIN_TOKEN: adminToken, SPILLWAY_CAS_TOKEN: casToken },
    'demo config',
  );
  const log = createLogger({ level: 'info', silent: true, sink: o.onLog });
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ config, log, agentCommand: [process.execPath, resolve(__dirname, 'main.js')] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    await redis?.stop();
    throw err;
  }
  const addr = daemon.addresses;
  out.write(`spillway demo: HTTP API ${addr.httpUrl}, dashboard ${addr.httpUrl}/ (admin token ${adminToken})\n`);
  out.write(`spillway demo: in another terminal: npx spillway status --master ${addr.httpUrl}\n`);
  for (const line of o.hints({ addr, submitToken, casToken })) out.write(`spillway demo: ${line}\n`);
  const agents = ONPREM.map(
    (a) =>
      new Agent({
        options: parseAgentOptions({
          master: addr.agentUrl,
          token,
          location: 'onprem',
          ...a,
          ...(o.remote && { jobTypes: [...a.jobTypes, REMOTE_JOB_TYPE], casUrl: `${addr.httpUrl}/cache`, casToken, cacheDir: join(dir, `cache-${a.name}`) }),
        }),
        log: createLogger({ level: 'warn', format: 'pretty' }).child({ agent: a.name }),
      }),
  );
  const welcomed = agents.map((a) => new Promise((r) => a.once('welcomed', r)));
  const running = agents.map((a) => a.start());
  await Promise.all(welcomed);
  const served = (a: (typeof ONPREM)[number]) => `${a.name} (${[...a.jobTypes, ...(o.remote ? [REMOTE_JOB_TYPE] : [])].join(',')} x${a.executors})`;
  out.write(`spillway demo: on-prem agents ${ONPREM.map(served).join(' and ')} connected\n`);
  const overflowing = o.remote ? `b2g and ${REMOTE_JOB_TYPE} overflow` : 'b2g overflows';
  out.write(`spillway demo: cloud pool "cloud": 3 suspended local instances; ${overflowing} there when 2+ jobs wait 1s+, idle ones hibernate after ${o.quietSec}s\n`);
  return {
    master: daemon.master,
    addr,
    run,
    submitToken,
    adminToken,
    casToken,
    dir,
    onpremExecutors: ONPREM.reduce((n, a) => n + a.executors, 0),
    async stop() {
      await Promise.all(agents.map((a) => a.drain()));
      await Promise.allSettled(running);
      await daemon.stop();
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
