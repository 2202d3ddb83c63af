import { NotFoundError, type BackoffPolicy, type Clock } from '../lib';
import type { BuildRecord, JobView, LogChunk } from '../master';
import type { MasterClient } from './master-client';
import { ContactLost, MasterContact } from './master-contact';
import { WaitExit, waitExitOf, type WaitEnd } from './wait-exit';

/** How long one log request waits on the master for new output. */
const LONG_POLL_MS = 2000;

export interface FollowOptions {
  clock: Clock;
  /** How long the master may stay unreachable (restarting, say) before following gives up. */
  waitTimeoutMs: number;
  /** @defaultValue `{ baseMs: 250, maxMs: 5000 }` */
  backoff?: BackoffPolicy;
}

/** How following ended; `view` is the job as the API last showed it, when it did. */
export interface FollowEnd extends WaitEnd {
  view?: JobView;
}

/**
 * Streams a job's log (latest attempt, announcing each new one and why the previous one
 * ended) until it is done, then prints one summary line. A master that goes away meanwhile is
 * waited for up to `waitTimeoutMs` and followed on from the same offset: the log is printed
 * once, without gaps.
 */
export async function followJob(
  client: MasterClient,
  job: { id: string; type: string },
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  o: FollowOptions,
): Promise<FollowEnd> {
  const master = new MasterContact(client, { ...o, err, requestTimeoutMs: LONG_POLL_MS + 15_000 });
  const type = encodeURIComponent(job.type);
  const viewOf = () => master.get<JobView>(`/api/jobs/${job.id}?type=${type}&log=0`);
  let attempt = 0;
  let offset = 0;
  try {
    for (;;) {
      const chunk = await master.get<LogChunk>(`/api/jobs/${job.id}/log?type=${type}&attempt=${attempt}&offset=${offset}&waitMs=${LONG_POLL_MS}`);
      if (chunk.attempt !== attempt) {
        const view = await viewOf();
        const ended = view.builds.find((x) => x.attempt === attempt);
        const why = ended && endedWithout(ended);
        if (why) err.write(`spillway: ${why}; retrying\n`);
        const b = view.builds.find((x) => x.attempt === chunk.attempt);
        err.write(`spillway: attempt ${chunk.attempt} on ${b?.agent ?? '?'} (${b?.location === 'cloud' ? 'cloud' : 'on-prem'})\n`);
        attempt = chunk.attempt;
      }
      if (chunk.data) out.write(chunk.data);
      offset = chunk.nextOffset;
      if (chunk.done) break;
    }
    const view = await viewOf();
    const last = view.builds[view.builds.length - 1];
    const why = last && endedWithout(last);
    if (why) err.write(`spillway: ${why}\n`);
    const end = waitExitOf(view);
    const where = view.agent ? ` on ${view.agent} (${view.location === 'cloud' ? 'cloud' : 'on-prem'})` : '';
    err.write(`spillway: job ${view.id} ${view.state}${where}: ${end.reason}\n`);
    return { ...end, view };
  } catch (e) {
    if (e instanceof ContactLost) {
      err.write(`spillway: ${e.message}; job ${job.id} may still run (see spillway status)\n`);
      return { code: WaitExit.contactLost, reason: e.message };
    }
    if (e instanceof NotFoundError) {
      const reason = `job ${job.id} no longer exists: cancelled or removed from its queue`;
      err.write(`spillway: ${reason}\n`);
      return { code: WaitExit.cancelled, reason };
    }
    throw e;
  }
}

/** Why an attempt ended without a result of its own ("attempt 1 lost with agent build-2"), if it did. */
function endedWithout(b: BuildRecord): string | undefined {
  if (b.result === 'lost') return `attempt ${b.attempt} lost with agent ${b.agent}`;
  if (b.result === 'preempted') return `attempt ${b.attempt} preempted on agent ${b.agent} (its machine is going away)`;
  if (b.result === 'cancelled') return `attempt ${b.attempt} cancelled on agent ${b.agent}`;
  return undefined;
}
