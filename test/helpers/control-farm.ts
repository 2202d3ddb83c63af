import { readFileSync } from 'node:fs';
import { freePort, processAlive } from '../../src/lib';
import type { JobView, LogChunk } from '../../src/master';
import { farmConfigRaw, spawnCli, TOKEN, writeConfigFile, type CliProcess } from './farm';
import { waitUntil } from './wait-until';

export const READ = 'read-token-0123456789';
export const SUBMIT = 'submit-token-0123456789';

export interface ControlMaster {
  proc: CliProcess;
  http: string;
  ws: string;
}

/**
 * A farm of real processes for job control: masters (one by default; more share Redis and
 * prefixes, like a farm with two masters) with read and submit tokens, agents started with
 * `spillway agent`, and small API helpers that call with the submit token.
 */
export async function controlFarm(procs: CliProcess[], o: { masters?: number; jobTypes?: Record<string, unknown> } = {}) {
  const raw = farmConfigRaw({
    log: { level: 'info', format: 'json' },
    ...(o.jobTypes && { jobTypes: o.jobTypes }),
  });
  Object.assign(raw.http as object, { tokens: { read: [READ], submit: [SUBMIT] } });
  const masters: ControlMaster[] = [];
  for (let i = 0; i < (o.masters ?? 1); i++) {
    const [httpPort, agentPort] = [await freePort(), await freePort()];
    const file = writeConfigFile({ ...raw, http: { ...(raw.http as object), port: httpPort }, agents: { ...(raw.agents as object), port: agentPort } });
    const proc = spawnCli(['master', '--config', file]);
    procs.push(proc);
    masters.push({ proc, http: `http://127.0.0.1:${httpPort}`, ws: `ws://127.0.0.1:${agentPort}` });
  }
  await Promise.all(masters.map((m) => m.proc.waitForOutput(/HTTP API/)));
  const base = masters[0]!.http;

  const startAgent = async (name: string, extra: string[] = [], master = masters[0]!): Promise<CliProcess> => {
    const a = spawnCli(['agent', '--master', master.ws, '--name', name, '--job-types', 'b2g', ...extra], { SPILLWAY_AGENT_TOKEN: TOKEN });
    procs.push(a);
    await a.waitForOutput(/agent\.welcomed/);
    return a;
  };
  const call = async <T>(method: string, path: string, body?: unknown, token = SUBMIT, at = base): Promise<{ status: number; body: T }> => {
    const res = await fetch(at + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const submit = async (body: Record<string, unknown>, at = base): Promise<string> => {
    const a = await call<{ id: string }>('POST', '/api/jobs', { type: 'b2g', ...body }, SUBMIT, at);
    if (a.status !== 201) throw new Error(`submit: ${a.status} ${JSON.stringify(a.body)}`);
    return a.body.id;
  };
  const view = async (id: string, at = base): Promise<JobView> => (await call<JobView>('GET', `/api/jobs/${id}?log=0`, undefined, READ, at)).body;
  /** Long-polls the job's latest log until it matches (the build runs in another process: there is no event to await here). */
  const logUntil = async (id: string, re: RegExp): Promise<RegExpExecArray> => {
    let all = '';
    let attempt = 0;
    let offset = 0;
    for (;;) {
      const c = (await call<LogChunk>('GET', `/api/jobs/${id}/log?attempt=${attempt}&offset=${offset}&waitMs=2000`, undefined, READ)).body;
      if (c.attempt !== attempt) all = '';
      all += c.data;
      [attempt, offset] = [c.attempt, c.nextOffset];
      const m = re.exec(all);
      if (m) return m;
      if (c.done) throw new Error(`job ${id} ended before its log matched ${re}: ${JSON.stringify(all)}`);
    }
  };
  /** Until the job's latest build record is finished (its agent reported, or was given up on). */
  const recorded = async (id: string, at = base): Promise<JobView> => {
    let v: JobView | undefined;
    await waitUntil(async () => ((v = await view(id, at)), v.builds.length > 0 && v.builds.every((b) => b.state === 'finished')), { timeoutMs: 20_000, what: `job ${id}'s build record finished` });
    return v!;
  };
  const redis = raw.redis as { url: string; queuePrefix: string };
  return { masters, base, redis, startAgent, call, submit, view, logUntil, recorded };
}

/** Whether the process runs (a zombie waiting for its reaper does not: it runs no code and holds nothing). */
export function running(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
