import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { freePort } from '../../src/lib';
import type { BuildRecord, LogChunk } from '../../src/master';
import { farmConfigRaw, spawnCli, TOKEN, writeConfigFile, type CliProcess } from './farm';

/** A farm of real processes whose master can be SIGKILLed and started again on the same ports and Redis. */
export async function restartableFarm(procs: CliProcess[], o: { lostAfterSec: number; jobTypes?: Record<string, unknown> }) {
  const httpPort = await freePort();
  const agentPort = await freePort();
  const raw = farmConfigRaw({ log: { level: 'info', format: 'json' }, ...(o.jobTypes && { jobTypes: o.jobTypes }) });
  Object.assign(raw.http as object, { port: httpPort });
  Object.assign(raw.agents as object, { port: agentPort, lostAfterSec: o.lostAfterSec });
  // Longer than the outage, so the restarted master takes the running build back.
  Object.assign(raw.builds as object, { lockMs: 20_000 });
  const file = writeConfigFile(raw);
  const redis = raw.redis as { url: string; queuePrefix: string };
  const base = `http://127.0.0.1:${httpPort}`;
  const startMaster = async (): Promise<CliProcess> => {
    const p = spawnCli(['master', '--config', file]);
    procs.push(p);
    await p.waitForOutput(/HTTP API/);
    return p;
  };
  const startAgent = async (name: string, extra: string[] = []): Promise<CliProcess> => {
    const a = spawnCli(['agent', '--master', `ws://127.0.0.1:${agentPort}`, '--name', name, '--job-types', 'b2g', ...extra], { SPILLWAY_AGENT_TOKEN: TOKEN });
    procs.push(a);
    await a.waitForOutput(/agent\.welcomed/);
    return a;
  };
  const queue = new Queue('b2g', { connection: { url: redis.url }, prefix: redis.queuePrefix });
  /** Long-polls the job's stored log until `until` holds for it. */
  const logUntil = async (id: string, until: (chunk: LogChunk, all: string) => boolean): Promise<string> => {
    let all = '';
    let offset = 0;
    for (;;) {
      const res = await fetch(`${base}/api/jobs/${id}/log?type=b2g&attempt=1&offset=${offset}&waitMs=2000`).catch(() => undefined);
      if (!res?.ok) continue;
      const chunk = (await res.json()) as LogChunk;
      all += chunk.data;
      offset = chunk.nextOffset;
      if (until(chunk, all)) return all;
    }
  };
  const fullLog = async (id: string): Promise<string> => ((await (await fetch(`${base}/api/jobs/${id}/log?type=b2g&attempt=1&offset=0`)).json()) as LogChunk).data;
  const record = async (id: string): Promise<BuildRecord | undefined> => {
    const { builds } = (await (await fetch(`${base}/api/builds?limit=100`)).json()) as { builds: BuildRecord[] };
    return builds.find((b) => b.id === id);
  };
  const removeJob = async (type: string, id: string): Promise<void> => {
    const q = new Queue(type, { connection: { url: redis.url }, prefix: redis.queuePrefix });
    await q.remove(id);
    await q.close();
  };
  return { startMaster, startAgent, queue, logUntil, fullLog, record, removeJob, httpUrl: base };
}

/** A world-writable dir the build (run as nobody when the agent is root) sees the test's gate files in. */
export function gateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-gates-'));
  chmodSync(dir, 0o777);
  return dir;
}

