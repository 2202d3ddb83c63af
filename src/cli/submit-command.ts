import { systemClock, type Clock } from '../lib';
import { followJob } from './job-follow';
import { CliUsageError, MasterClient } from './master-client';

export interface SubmitFlags {
  master: string;
  /** Submit or admin token (--token / SPILLWAY_TOKEN). */
  token?: string;
  type: string;
  wait?: boolean;
  shell?: boolean;
  env?: string[];
  timeout?: number;
  attempts?: number;
  /** BullMQ priority: 1 is the highest; jobs without one go first. */
  priority?: number;
  label?: string[];
  /** Client-chosen job id: a retried submit with the same id never runs the build twice. */
  jobId?: string;
  /** Seconds the master may be unreachable while waiting. @defaultValue 600 */
  waitTimeout?: number;
}

/** How long `--wait` keeps trying a master that went away: long enough for a restart, and more. */
export const DEFAULT_WAIT_TIMEOUT_SEC = 600;

/**
 * `spillway submit`: enqueue a build. Without --wait prints the job id; with --wait streams
 * the log, across master restarts, and resolves to the build's exit code, or to
 * one of `WaitExit`'s codes when the build did not run to an end.
 */
export async function submitCommand(
  command: string[],
  flags: SubmitFlags,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  clock: Clock = systemClock,
): Promise<number> {
  if (command.length === 0) throw new CliUsageError('nothing to run: put the command after "--", e.g. spillway submit --type b2g -- make -j8');
  const client = new MasterClient(flags.master, flags.token);
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
    ...(flags.priority ? { priority: flags.priority } : {}),
    ...(flags.label?.length ? { requirements: { labels: flags.label } } : {}),
    ...(flags.jobId !== undefined ? { jobId: flags.jobId } : {}),
  };
  const created = await client.post<{ id: string; type: string; created: boolean; state: string }>('/api/jobs', body);
  if (created.created === false) err.write(`spillway: job ${created.id} was submitted before (${created.state}); not queued again\n`);
  if (flags.wait && created.state === 'removed') {
    // It ran (or failed) long enough ago that its queue let it go: there is nothing to follow.
    err.write(`spillway: job ${created.id} finished long ago and its result is no longer kept; use a new --job-id to run it again\n`);
    return 1;
  }
  if (!flags.wait) {
    out.write(`${created.id}\n`);
    return 0;
  }
  err.write(`spillway: queued ${created.type} job ${created.id}\n`);
  const end = await followJob(client, created, out, err, { clock, waitTimeoutMs: (flags.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_SEC) * 1000 });
  return end.code;
}
