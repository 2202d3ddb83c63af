import { systemClock, type Clock } from '../lib';
import type { Retried } from '../master';
import { followJob } from './job-follow';
import { MasterClient, orUnreachable } from './master-client';
import { DEFAULT_WAIT_TIMEOUT_SEC } from './submit-command';

export interface RetryFlags {
  master: string;
  /** Submit or admin token (--token / SPILLWAY_TOKEN). */
  token?: string;
  wait?: boolean;
  /** Seconds the master may be unreachable while waiting. @defaultValue 600 */
  waitTimeout?: number;
  type?: string;
}

/**
 * `spillway retry ID`: submits a finished (or cancelled) job again, same payload, new id,
 * linked to the old one. Prints the new id; with --wait follows it like `submit --wait` and
 * exits as that does. A job retried before is not retried twice: its retry is the answer.
 */
export function retryCommand(id: string, flags: RetryFlags, out: NodeJS.WritableStream, err: NodeJS.WritableStream, clock: Clock = systemClock): Promise<number> {
  return orUnreachable(err, async () => {
    const client = new MasterClient(flags.master, flags.token);
    const query = flags.type ? `?type=${encodeURIComponent(flags.type)}` : '';
    const r = await client.post<Retried>(`/api/jobs/${encodeURIComponent(id)}/retry${query}`, {});
    if (!r.created) err.write(`spillway: job ${id} was retried before, as ${r.id}; not queued again (retry ${r.id} for another run)\n`);
    if (!flags.wait) {
      out.write(`${r.id}\n`);
      return 0;
    }
    if (r.created) err.write(`spillway: queued ${r.type} job ${r.id}, a retry of ${id}\n`);
    const end = await followJob(client, r, out, err, { clock, waitTimeoutMs: (flags.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_SEC) * 1000 });
    return end.code;
  });
}
