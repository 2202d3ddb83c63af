import { z } from 'zod';
import { TraceError } from '../lib';
import { jobPayloadSchema, type Requirements } from '../protocol';
import { parseDuration } from './duration';

/** One job arrival of a load trace. */
export interface TraceJob {
  /** Arrival, ms since the epoch. */
  at: number;
  type: string;
  durationMs: number;
  requirements?: Requirements;
}

/** Where a trace whose times are offsets in seconds starts: a Monday, so warm windows read naturally. */
export const TRACE_EPOCH = Date.UTC(2026, 0, 5);

const requirementsSchema = jobPayloadSchema.shape.requirements;

/** A time is an ISO 8601 timestamp or seconds since the start of the trace. */
const timeSchema = z.union([z.number().min(0), z.string().min(1)]).transform((v, ctx) => {
  if (typeof v === 'number') return TRACE_EPOCH + v * 1000;
  if (/^\d+(\.\d+)?$/.test(v)) return TRACE_EPOCH + Number(v) * 1000;
  const ms = /^\d{4}-\d\d-\d\dT/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(ms)) ctx.addIssue({ code: 'custom', message: `"${v}" is neither an ISO 8601 time nor seconds since the start` });
  return ms;
});

/** A duration is seconds (a number) or a number with a unit: `90s`, `12m`. */
const durationSchema = z.union([z.number(), z.string().min(1)]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v * 1000 : /^-?\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : parseDuration(v);
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) ctx.addIssue({ code: 'custom', message: `must be a positive duration, got ${JSON.stringify(v)}` });
  return ms ?? 0;
});

const rowSchema = z
  .object({
    time: timeSchema,
    type: z.string().min(1),
    duration: durationSchema,
    requirements: requirementsSchema,
  })
  .strict();

const CSV_COLUMNS = ['time', 'type', 'duration', 'os', 'arch', 'pool', 'cpus', 'memoryMb', 'labels'] as const;
type CsvColumn = (typeof CSV_COLUMNS)[number];

/** Most problems listed before giving up: a wholly wrong file should not print a million lines. */
const MAX_PROBLEMS = 20;

/**
 * Parses a load trace: CSV with a header (`time,type,duration` and optionally `os`, `arch`,
 * `pool`, `cpus`, `memoryMb`, `labels` separated by `;`) or JSON lines (`{"time", "type",
 * "duration", "requirements"}`). Blank lines and `#` comments are skipped. Every problem is
 * reported with its line; job types must be among `knownTypes` and times must not go back.
 */
export function parseTrace(text: string, source: string, knownTypes: ReadonlySet<string>): TraceJob[] {
  const lines = text.split(/\r?\n/);
  const problems: string[] = [];
  const jobs: TraceJob[] = [];
  const first = lines.findIndex((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (first < 0) throw new TraceError(source, ['no jobs: the trace is empty']);
  const json = lines[first]!.trimStart().startsWith('{');
  let header: CsvColumn[] = [];
  if (!json) {
    const names = splitCsv(lines[first]!).map((h) => h.trim());
    const unknown = names.filter((n) => !(CSV_COLUMNS as readonly string[]).includes(n));
    const missing = (['time', 'type', 'duration'] as const).filter((c) => !names.includes(c));
    if (unknown.length || missing.length) {
      throw new TraceError(source, [
        `line ${first + 1}: expected a header naming time,type,duration (and optionally ${CSV_COLUMNS.slice(3).join(',')})` +
          (missing.length ? `; missing ${missing.join(',')}` : '') +
          (unknown.length ? `; unknown ${unknown.join(',')}` : ''),
      ]);
    }
    header = names as CsvColumn[];
  }
  let lastAt = -Infinity;
  for (let i = json ? first : first + 1; i < lines.length && problems.length < MAX_PROBLEMS; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const where = `line ${i + 1}`;
    let raw: unknown;
    if (json) {
      try {
        raw = JSON.parse(line);
      } catch (err) {
        problems.push(`${where}: not JSON (${(err as Error).message})`);
        continue;
      }
    } else {
      const cells = splitCsv(line);
      if (cells.length !== header.length) {
        problems.push(`${where}: ${cells.length} field(s), the header has ${header.length}`);
        continue;
      }
      raw = csvRow(header, cells);
    }
    const r = rowSchema.safeParse(raw);
    if (!r.success) {
      problems.push(...r.error.issues.map((iss) => `${where}: ${iss.path.join('.') || 'row'}: ${iss.message}`));
      continue;
    }
    const row = r.data;
    if (!knownTypes.has(row.type)) {
      problems.push(`${where}: unknown job type "${row.type}" (the config has ${[...knownTypes].join(', ')})`);
      continue;
    }
    if (row.time < lastAt) {
      problems.push(`${where}: time ${new Date(row.time).toISOString()} is before the line above it; sort the trace by time`);
      continue;
    }
    lastAt = row.time;
    jobs.push({ at: row.time, type: row.type, durationMs: row.duration, ...(row.requirements && { requirements: row.requirements }) });
  }
  if (problems.length) throw new TraceError(source, problems.length >= MAX_PROBLEMS ? [...problems, '(more problems not shown)'] : problems);
  if (jobs.length === 0) throw new TraceError(source, ['no jobs: the trace has only a header']);
  return jobs;
}

function csvRow(header: readonly CsvColumn[], cells: readonly string[]): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  const req: Record<string, unknown> = {};
  header.forEach((col, k) => {
    const v = cells[k]!.trim();
    if (col === 'time' || col === 'type' || col === 'duration') row[col] = v;
    else if (v === '') return;
    else if (col === 'labels') req.labels = v.split(';').map((l) => l.trim()).filter(Boolean);
    else if (col === 'cpus' || col === 'memoryMb') req[col] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    else req[col] = v;
  });
  if (Object.keys(req).length) row.requirements = req;
  return row;
}

/** One CSV record: commas separate, double quotes may enclose a field ("" is a quote). */
function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(cur), (cur = '');
    else cur += c;
  }
  out.push(cur);
  return out;
}

/** A trace as CSV (what `spillway export-trace` writes). */
export function formatTrace(jobs: readonly TraceJob[]): string {
  const rows = jobs.map((j) => {
    const r = j.requirements ?? {};
    return [new Date(j.at).toISOString(), j.type, (j.durationMs / 1000).toFixed(3), r.os ?? '', r.arch ?? '', r.pool ?? '', r.cpus ?? '', r.memoryMb ?? '', (r.labels ?? []).join(';')].join(',');
  });
  return `${CSV_COLUMNS.join(',')}\n${rows.join('\n')}\n`;
}
