import { systemClock, type Clock } from '../lib';
import type { JobView } from '../master';
import { followJob } from './job-follow';
import { MasterClient, orUnreachable } from './master-client';
import { DEFAULT_WAIT_TIMEOUT_SEC } from './submit-command';

export interface LogsFlags {
  master: string;
  /** Any role's token once the master has read tokens (--token / SPILLWAY_TOKEN). */
  token?: string;
  follow?: boolean;
  /** An earlier attempt's log; the latest by default. */
  attempt?: number;
  /** Seconds the master may be unreachable while following. @defaultValue 600 */
  waitTimeout?: number;
  type?: string;
}

/**
 * `spillway logs ID`: the job's log as stored (the latest attempt's, raw), on stdout. With
 * --follow: the live log until the job finishes, every new attempt announced on stderr, and
 * the exit code `submit --wait` would give.
 */
export function logsCommand(id: string, flags: LogsFlags, out: NodeJS.WritableStream, err: NodeJS.WritableStream, clock: Clock = systemClock): Promise<number> {
  return orUnreachable(err, async () => {
    const client = new MasterClient(flags.master, flags.token);
    const typed = flags.type ? `type=${encodeURIComponent(flags.type)}` : '';
    const path = `/api/jobs/${encodeURIComponent(id)}`;
    if (!flags.follow) {
      const q = [typed, flags.attempt === undefined ? '' : `attempt=${flags.attempt}`].filter(Boolean).join('&');
      out.write(await client.getText(`${path}/log.txt${q ? `?${q}` : ''}`));
      return 0;
    }
    const view = await client.get<JobView>(`${path}?log=0${typed ? `&${typed}` : ''}`);
    const end = await followJob(client, { id: view.id, type: view.type }, out, err, { clock, waitTimeoutMs: (flags.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_SEC) * 1000 });
    return end.code;
  });
}
