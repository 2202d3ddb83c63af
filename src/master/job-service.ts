import { randomUUID } from 'node:crypto';
import { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Config } from '../config';
import { BadRequestError, ConflictError, NotFoundError, type Clock } from '../lib';
import { buildResultSchema, checkJobPayload, exitCodeOf, type JobPayload } from '../protocol';
import type { BuildRecord, BuildStore } from './build-store';
import { CancelStore, isCancelReason } from './cancel-store';
import type { Dispatcher } from './dispatcher';
import { JobLinkStore } from './job-links';
import type { JobTypeQueue } from './job-type-queue';
import { SubmissionKeys, submissionDigest, type SubmissionEntry } from './submission-keys';

/** Letters, digits, "." "_" "-", up to 128; never all digits (BullMQ keeps those for its own ids). */
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The submission's own fields of a `POST /api/jobs` body, beside the job payload. */
export const submitOptionsSchema = z.object({
  type: z.string({ error: '"type" is required' }).min(1),
  attempts: z.number().int().positive().max(100).optional(),
  /** BullMQ priority: 1 is the highest; jobs without one go first. */
  priority: z.number().int().min(1).max(2_097_152).optional(),
  /** Client-chosen id: submitting it again returns the job it made instead of a second build. */
  jobId: z
    .string({ error: '"jobId" must be a string' })
    .regex(JOB_ID, '"jobId" is 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit')
    .refine((id) => !/^\d+$/.test(id), '"jobId" must not be all digits')
    .optional(),
});

/** What `POST /api/jobs` did: `created` false when the job id was submitted before. */
export interface Submitted {
  id: string;
  type: string;
  created: boolean;
  /** The job's state; `removed` when it finished and left its queue (builds.keep). */
  state: string;
}

/** What `GET /api/jobs/:id` answers. */
export interface JobView {
  id: string;
  type: string;
  state: string;
  done: boolean;
  attempts: number;
  attemptsMade: number;
  queuedAt: number;
  failedReason: string | null;
  /** The build's exit code once done (128+n for a signal, 124 timeout); 1 for a job that never ran. */
  exitCode: number | null;
  agent: string | null;
  location: string | null;
  instanceId: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  builds: BuildRecord[];
  /** While not done: why no connected agent can run it ("no agent offers label gpu"); null if one can. */
  unrunnable: string | null;
  /** BullMQ priority (1 is the highest); null for none. */
  priority: number | null;
  /** Who cancelled it ("submit token 3f9a1c2e"), once it ended cancelled; else null. */
  cancelledBy: string | null;
  /** The reason given with the cancel, if any. */
  cancelReason: string | null;
  /** The job this one retries (`POST /api/jobs/:id/retry`). */
  retryOf: string | null;
  /** The job that retries this one. */
  retriedAs: string | null;
  log?: string;
}

export interface LogChunk {
  attempt: number;
  offset: number;
  nextOffset: number;
  data: string;
  /**
   * When the pieces of `data` arrived: [byte offset in the whole log, ms] ascending, starting
   * with the mark that covers `offset` (which may lie before it).
   */
  marks: Array<[number, number]>;
  done: boolean;
  state: string;
}

const DONE = new Set(['completed', 'failed']);

/** Submitting and looking up jobs, behind the HTTP API and the CLI. */
export class JobService {
  constructor(
    private readonly d: {
      config: Config;
      queues: ReadonlyMap<string, JobTypeQueue>;
      builds: BuildStore;
      /** Where client-chosen job ids are remembered (the API's connection). */
      redis: Redis;
      dispatcher: Dispatcher;
      clock: Clock;
    },
  ) {
    const stores = { redis: d.redis, keyPrefix: d.config.redis.keyPrefix };
    this.keys = new SubmissionKeys(stores);
    this.cancels = new CancelStore(stores);
    this.links = new JobLinkStore(stores);
  }

  private readonly keys: SubmissionKeys;
  private readonly cancels: CancelStore;
  private readonly links: JobLinkStore;

  async submit(body: unknown): Promise<Submitted> {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('expected a JSON object');
    const { type, attempts, priority, jobId, ...payload } = body as Record<string, unknown>;
    const opts = submitOptionsSchema.safeParse({ type, attempts, priority, jobId });
    if (!opts.success) {
      throw new BadRequestError(opts.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    }
    const q = this.queueOf(opts.data.type);
    const check = checkJobPayload(payload, q.type);
    if (!check.ok) throw new BadRequestError(check.reason);
    const jobAttempts = opts.data.attempts ?? this.d.config.jobTypes[q.type]!.attempts;
    const ours: SubmissionEntry = { type: q.type, digest: submissionDigest(q.type, check.payload, jobAttempts, opts.data.priority) };
    const chosen = opts.data.jobId;
    if (chosen !== undefined) {
      const prior = await this.prior(chosen);
      if (prior) return this.repeated(chosen, prior.entry, ours, prior.job);
    }
    const id = chosen ?? randomUUID();
    await this.add(q, id, check.payload, jobAttempts, opts.data.priority);
    if (chosen === undefined) return { id, type: q.type, created: true, state: 'waiting' };
    // BullMQ dedupes on the id, so a concurrent submission of it may have added its job first:
    // the stored job decides what the id stands for, and our add was then a no-op.
    const stored = await Job.fromId(q.apiQueue, id);
    const held = await this.keys.remember(id, stored ? entryOf(q.type, stored) : ours);
    if (held.taken && held.entry.digest === ours.digest) return { id, type: q.type, created: true, state: 'waiting' };
    return this.repeated(id, held.entry, ours, stored);
  }

  /**
   * Adds a job whose id the caller has just made unique (a remote action's `ra-<uuid>`
   * operation name, see remote-execution): one add to its queue. `submit`'s bookkeeping of
   * client-chosen ids (looked up before the add, remembered after it) can never match such an
   * id and costs Redis round trips while the action waits for its agent.
   * @throws BadRequestError for an unknown type, a malformed id or a payload the job schema refuses
   */
  async submitFresh(type: string, jobId: string, payload: JobPayload): Promise<void> {
    const q = this.queueOf(type);
    if (!JOB_ID.test(jobId) || /^\d+$/.test(jobId)) throw new BadRequestError(`job id "${jobId.slice(0, 40)}" is not a valid job id`);
    const check = checkJobPayload(payload, q.type);
    if (!check.ok) throw new BadRequestError(check.reason);
    await this.add(q, jobId, check.payload, this.d.config.jobTypes[q.type]!.attempts);
  }

  private queueOf(type: string): JobTypeQueue {
    const q = this.d.queues.get(type);
    if (!q) throw new BadRequestError(`unknown job type "${type}" (known: ${[...this.d.queues.keys()].join(', ')})`);
    return q;
  }

  /** The one BullMQ add of a submission: finished jobs are kept as long as their build records. */
  private async add(q: JobTypeQueue, jobId: string, payload: JobPayload, attempts: number, priority?: number): Promise<void> {
    await q.apiQueue.add('build', payload, {
      jobId,
      attempts,
      priority,
      removeOnComplete: { count: this.d.config.builds.keep },
      removeOnFail: { count: this.d.config.builds.keep },
    });
  }

  /** What a client-chosen id already stands for: its remembered entry, or a job of that id in any queue. */
  private async prior(id: string): Promise<{ entry: SubmissionEntry; job: Job | undefined } | undefined> {
    const [entry, found] = await Promise.all([this.keys.get(id), this.find(id).catch((err: unknown) => (err instanceof NotFoundError ? undefined : Promise.reject(err)))]);
    if (entry) return { entry, job: found?.job };
    if (found) return { entry: entryOf(found.q.type, found.job), job: found.job };
    return undefined;
  }

  private async repeated(id: string, prior: SubmissionEntry, ours: SubmissionEntry, job: Job | undefined): Promise<Submitted> {
    if (prior.type !== ours.type) {
      throw new ConflictError(`job id "${id}" was already submitted as a ${prior.type} job; repeat that request to get its job, or choose a new id`);
    }
    if (prior.digest !== ours.digest) {
      throw new ConflictError(`job id "${id}" was already submitted with a different payload; repeat that request to get its job, or choose a new id`);
    }
    return { id, type: prior.type, created: false, state: job ? await job.getState() : 'removed' };
  }

  /** Finds a job by id; ids from `submit` are unique, raw BullMQ ids may need the type. */
  async find(id: string, type?: string): Promise<{ job: Job; q: JobTypeQueue }> {
    if (type !== undefined) {
      const q = this.d.queues.get(type);
      if (!q) throw new BadRequestError(`unknown job type "${type}"`);
      const job = await Job.fromId(q.apiQueue, id);
      if (job) return { job, q };
    } else {
      for (const q of this.d.queues.values()) {
        const job = await Job.fromId(q.apiQueue, id);
        if (job) return { job, q };
      }
    }
    throw new NotFoundError(`no job ${id}${type ? ` of type ${type}` : ''}`);
  }

  async view(id: string, type?: string, withLog = true): Promise<JobView> {
    const { job, q } = await this.find(id, type);
    const [state, builds, links] = await Promise.all([job.getState(), this.d.builds.attempts(q.type, id), this.links.get(q.type, id)]);
    const last = builds[builds.length - 1];
    const done = DONE.has(state);
    const cancel = state === 'failed' && isCancelReason(job.failedReason) ? await this.cancels.get(q.type, id) : undefined;
    const view: JobView = {
      id,
      type: q.type,
      state,
      done,
      attempts: job.opts.attempts ?? 1,
      attemptsMade: job.attemptsMade,
      queuedAt: job.timestamp,
      failedReason: job.failedReason || null,
      exitCode: done ? this.exitCode(state, job, last) : null,
      agent: last?.agent ?? null,
      location: last?.location ?? null,
      instanceId: last?.instanceId ?? null,
      startedAt: last?.startedAt ?? null,
      finishedAt: last?.finishedAt ?? null,
      builds,
      unrunnable: done || state === 'active' ? null : this.d.dispatcher.unrunnableReason(q.type, job.data),
      priority: job.opts.priority || null,
      cancelledBy: cancel?.by ?? null,
      cancelReason: cancel?.reason ?? null,
      retryOf: links.retryOf,
      retriedAs: links.retriedAs,
    };
    if (withLog) view.log = last ? await this.d.builds.readLog(q.type, id, last.attempt) : '';
    return view;
  }

  private exitCode(state: string, job: Job, last: BuildRecord | undefined): number {
    if (state === 'completed') {
      const r = buildResultSchema.safeParse(stripOutcome(job.returnvalue));
      return r.success ? exitCodeOf(r.data) : 0;
    }
    if (last && last.result !== 'lost' && last.result !== 'cancelled' && last.result !== 'preempted') {
      if (last.exitCode !== null) return last.exitCode;
      if (last.result === 'timeout') return 124;
    }
    return 1;
  }

  /** One attempt's whole log as stored (the latest by default), for download. */
  async logText(id: string, type: string | undefined, attempt?: number): Promise<{ id: string; type: string; attempt: number; text: string }> {
    const { q } = await this.find(id, type);
    const builds = await this.d.builds.attempts(q.type, id);
    const which = attempt ?? builds[builds.length - 1]?.attempt;
    if (attempt !== undefined && !builds.some((b) => b.attempt === attempt)) throw new NotFoundError(`job ${id} has no attempt ${attempt}`);
    return { id, type: q.type, attempt: which ?? 0, text: which === undefined ? '' : await this.d.builds.readLog(q.type, id, which) };
  }

  /**
   * The log of the job's latest attempt from `offset` on. With `waitMs`, an empty answer is
   * held back until output arrives, the job settles or a new attempt starts (long poll).
   */
  async logChunk(id: string, type: string | undefined, attempt: number, offset: number, waitMs: number): Promise<LogChunk> {
    const { job, q } = await this.find(id, type);
    const read = async (): Promise<LogChunk> => {
      const state = await job.getState();
      const builds = await this.d.builds.attempts(q.type, id);
      const latest = builds[builds.length - 1]?.attempt ?? 0;
      const from = latest === attempt ? offset : 0;
      const text = latest ? await this.d.builds.readLog(q.type, id, latest) : '';
      const bytes = Buffer.from(text);
      const data = bytes.subarray(Math.min(from, bytes.length)).toString();
      const all = latest ? await this.d.builds.logMarks(q.type, id, latest) : [];
      let first = 0;
      while (first + 1 < all.length && all[first + 1]!.offset <= from) first++;
      const marks = all.slice(first).filter((m) => m.offset < bytes.length).map((m): [number, number] => [m.offset, m.at]);
      return { attempt: latest, offset: from, nextOffset: bytes.length, data, marks, done: DONE.has(state), state };
    };
    const first = await read();
    if (first.data || first.done || first.attempt !== attempt || waitMs <= 0) return first;
    await this.nextEvent(q.type, id, waitMs);
    return read();
  }

  private nextEvent(queue: string, id: string, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const ac = new AbortController();
      const done = () => {
        ac.abort();
        this.d.dispatcher.off('build-log', onLog);
        this.d.dispatcher.off('job-settled', onSettled);
        this.d.dispatcher.off('build-finished', onFinished);
        resolve();
      };
      const onLog = (q: string, j: string) => q === queue && j === id && done();
      const onSettled = (q: string, j: string) => q === queue && j === id && done();
      const onFinished = (r: BuildRecord) => r.type === queue && r.id === id && done();
      this.d.dispatcher.on('build-log', onLog);
      this.d.dispatcher.on('job-settled', onSettled);
      this.d.dispatcher.on('build-finished', onFinished);
      this.d.clock.sleep(waitMs, ac.signal).then(done, () => undefined);
    });
  }
}

function entryOf(type: string, job: Job): SubmissionEntry {
  return { type, digest: submissionDigest(type, job.data, job.opts.attempts ?? 1, job.opts.priority) };
}

function stripOutcome(v: unknown): unknown {
  if (!v || typeof v !== 'object') return v;
  const { outcome: _o, ...rest } = v as Record<string, unknown>;
  return rest;
}
