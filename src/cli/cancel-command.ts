import type { Cancelled } from '../master';
import { MasterClient, orUnreachable } from './master-client';

export interface CancelFlags {
  master: string;
  /** Submit or admin token (--token / SPILLWAY_TOKEN). */
  token?: string;
  reason?: string;
  /** The job type, for raw BullMQ ids that more than one queue uses. */
  type?: string;
}

/**
 * `spillway cancel ID`: a waiting job never runs; a running build is killed on its agent
 * (SIGTERM, then SIGKILL after the agent's grace). Exit 0 once cancelled (or accepted while
 * its master is away), 2 for a job that is unknown or finished, 75 when the master cannot be
 * reached.
 */
export function cancelCommand(id: string, flags: CancelFlags, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  return orUnreachable(err, async () => {
    const client = new MasterClient(flags.master, flags.token);
    const query = flags.type ? `?type=${encodeURIComponent(flags.type)}` : '';
    const c = await client.post<Cancelled>(`/api/jobs/${encodeURIComponent(id)}/cancel${query}`, flags.reason ? { reason: flags.reason } : {});
    if (c.state === 'cancelled') out.write(`${c.id} cancelled (was ${c.was})\n`);
    else err.write(`spillway: job ${c.id} (${c.was}) is being cancelled: its master has not confirmed yet; it will not run again\n`);
    return 0;
  });
}
