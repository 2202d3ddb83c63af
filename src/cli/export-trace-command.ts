import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { formatTrace, parseDuration, type TraceJob } from '../simulator';
import { CliUsageError, MasterClient } from './master-client';

export interface ExportTraceFlags {
  master: string;
  token?: string;
  /** How far back: `7d`, `12h`. */
  since: string;
  out?: string;
}

/** The API's largest page. */
const PAGE = 1000;

/** What of GET /api/builds the trace is made of: checked, since it comes from another process. */
const buildsPage = z.object({
  builds: z.array(
    z.object({
      type: z.string().min(1).max(200),
      state: z.string(),
      queuedAt: z.number().finite(),
      dispatchedAt: z.number().finite(),
      durationMs: z.number().finite().nonnegative().nullable(),
    }),
  ),
  next: z.string().max(400).nullable(),
});

/**
 * `spillway export-trace`: the master's recent builds (GET /api/builds, newest first, page by
 * page with its `before` cursor) as a trace `spillway simulate` replays: each finished build is
 * a job of its type arriving when it was queued and lasting as long as it ran. Requirements are
 * not in build records, so the trace has none.
 */
export async function exportTraceCommand(
  flags: ExportTraceFlags,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  o: { now?: number; pageSize?: number } = {},
): Promise<number> {
  const now = o.now ?? Date.now();
  const pageSize = o.pageSize ?? PAGE;
  const span = parseDuration(flags.since);
  if (span === undefined) throw new CliUsageError(`--since must be a duration such as 7d or 12h, got "${flags.since}"`);
  const cutoff = now - span;
  const client = new MasterClient(flags.master, flags.token);
  const jobs: TraceJob[] = [];
  let before: string | null = null;
  let pages = 0;
  for (;;) {
    const answer = buildsPage.safeParse(await client.get<unknown>(`/api/builds?limit=${pageSize}${before ? `&before=${encodeURIComponent(before)}` : ''}`));
    if (!answer.success) throw new Error(`${flags.master}/api/builds did not answer a page of builds: ${answer.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const page = answer.data;
    pages++;
    let older = false;
    for (const b of page.builds) {
      if (b.dispatchedAt < cutoff) older = true;
      if (b.queuedAt < cutoff || b.state !== 'finished' || b.durationMs === null) continue;
      // A build that ended within the same millisecond still took an executor.
      jobs.push({ at: b.queuedAt, type: b.type, durationMs: Math.max(1, b.durationMs) });
    }
    if (older || !page.next) break;
    // A cursor that does not move would page forever.
    if (page.next === before) throw new Error(`${flags.master}/api/builds gave the same cursor twice (${page.next}); stopping`);
    before = page.next;
  }
  jobs.sort((a, b) => a.at - b.at);
  const text = formatTrace(jobs);
  if (flags.out) writeFileSync(flags.out, text);
  else out.write(text);
  err.write(`spillway export-trace: ${jobs.length} build(s) since ${new Date(cutoff).toISOString()} from ${pages} page(s)${flags.out ? ` written to ${flags.out}` : ''}\n`);
  return 0;
}
