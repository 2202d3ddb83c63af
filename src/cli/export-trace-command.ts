import { writeFileSync } from 'node:fs';
import type { BuildPage } from '../master';
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
    const page: BuildPage = await client.get<BuildPage>(`/api/builds?limit=${pageSize}${before ? `&before=${encodeURIComponent(before)}` : ''}`);
    pages++;
    let older = false;
    for (const b of page.builds) {
      if (b.dispatchedAt < cutoff) older = true;
      if (b.queuedAt < cutoff || b.state !== 'finished' || b.durationMs === null) continue;
      // A build that ended within the same millisecond still took an executor.
      jobs.push({ at: b.queuedAt, type: b.type, durationMs: Math.max(1, b.durationMs) });
    }
    if (older || !page.next) break;
    before = page.next;
  }
  jobs.sort((a, b) => a.at - b.at);
  const text = formatTrace(jobs);
  if (flags.out) writeFileSync(flags.out, text);
  else out.write(text);
  err.write(`spillway export-trace: ${jobs.length} build(s) since ${new Date(cutoff).toISOString()} from ${pages} page(s)${flags.out ? ` written to ${flags.out}` : ''}\n`);
  return 0;
}
