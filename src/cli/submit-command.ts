import type { JobView, LogChunk } from '../master';
import { CliUsageError, MasterClient } from './master-client';

export interface SubmitFlags {
  master: string;
  type: string;
  wait?: boolean;
  shell?: boolean;
  env?: string[];
  timeout?: number;
  attempts?: number;
  label?: string[];
}

/**
 * `spillway submit`: enqueue a build. Without --wait prints the job id; with --wait streams
 * the log and resolves to the build's exit code.
 */
export async function submitCommand(command: string[], flags: SubmitFlags, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  if (command.length === 0) throw new CliUsageError('nothing to run: put the command after "--", e.g. spillway submit --type b2g -- make -j8');
  const client = new MasterClient(flags.master);
  const env: Record<string, string> = {};
  for (const kv of flags.env ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliUsageError(`--env expects NAME=VALUE, got "${kv}"`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const body = {
    type: flags.type,
    ...(flags.shell ? { shell: command.join(' ') } : { argv: command }),
    ...(Object.keys(env).length ? { env } : {}),
    ...(flags.timeout ? { timeoutSec: flags.timeout } : {}),
    ...(flags.attempts ? { attempts: flags.attempts } : {}),
    ...(flags.label?.length ? { requirements: { labels: flags.label } } : {}),
  };
  const created = await client.post<{ id: string; type: string }>('/api/jobs', body);
  if (!flags.wait) {
    out.write(`${created.id}\n`);
    return 0;
  }
  err.write(`spillway: queued ${created.type} job ${created.id}\n`);
  let attempt = 0;
  let offset = 0;
  for (;;) {
    const q = `type=${encodeURIComponent(created.type)}&attempt=${attempt}&offset=${offset}&waitMs=2000`;
    const chunk = await client.get<LogChunk>(`/api/jobs/${created.id}/log?${q}`);
    if (chunk.attempt !== attempt) {
      const view = await client.get<JobView>(`/api/jobs/${created.id}?type=${encodeURIComponent(created.type)}&log=0`);
      const b = view.builds.find((x) => x.attempt === chunk.attempt);
      err.write(`spillway: attempt ${chunk.attempt} on ${b?.agent ?? '?'} (${b?.location === 'cloud' ? 'cloud' : 'on-prem'})\n`);
      attempt = chunk.attempt;
    }
    if (chunk.data) out.write(chunk.data);
    offset = chunk.nextOffset;
    if (chunk.done) break;
  }
  const view = await client.get<JobView>(`/api/jobs/${created.id}?type=${encodeURIComponent(created.type)}&log=0`);
  const code = view.exitCode ?? 1;
  const where = view.agent ? ` on ${view.agent} (${view.location === 'cloud' ? 'cloud' : 'on-prem'})` : '';
  const why = view.state === 'completed' ? 'exited 0' : (view.failedReason ?? view.state);
  err.write(`spillway: job ${view.id} ${view.state}${where}: ${why}\n`);
  return code;
}
