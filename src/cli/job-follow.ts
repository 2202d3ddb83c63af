import type { JobView, LogChunk } from '../master';
import type { MasterClient } from './master-client';

/**
 * Streams a job's log (latest attempt, announcing each new one) until it is done, then prints
 * one summary line and returns the job as the API shows it.
 */
export async function followJob(
  client: MasterClient,
  job: { id: string; type: string },
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<JobView> {
  const type = encodeURIComponent(job.type);
  let attempt = 0;
  let offset = 0;
  for (;;) {
    const chunk = await client.get<LogChunk>(`/api/jobs/${job.id}/log?type=${type}&attempt=${attempt}&offset=${offset}&waitMs=2000`);
    if (chunk.attempt !== attempt) {
      const view = await client.get<JobView>(`/api/jobs/${job.id}?type=${type}&log=0`);
      const b = view.builds.find((x) => x.attempt === chunk.attempt);
      err.write(`spillway: attempt ${chunk.attempt} on ${b?.agent ?? '?'} (${b?.location === 'cloud' ? 'cloud' : 'on-prem'})\n`);
      attempt = chunk.attempt;
    }
    if (chunk.data) out.write(chunk.data);
    offset = chunk.nextOffset;
    if (chunk.done) break;
  }
  const view = await client.get<JobView>(`/api/jobs/${job.id}?type=${type}&log=0`);
  const where = view.agent ? ` on ${view.agent} (${view.location === 'cloud' ? 'cloud' : 'on-prem'})` : '';
  const why = view.state === 'completed' ? 'exited 0' : (view.failedReason ?? view.state);
  err.write(`spillway: job ${view.id} ${view.state}${where}: ${why}\n`);
  return view;
}
