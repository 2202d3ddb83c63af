import { z } from 'zod';
import { buildResultSchema } from './build-result';
import { jobPayloadSchema } from './job-payload';

/** Bumped when a frame changes incompatibly; the master refuses other versions. */
export const PROTOCOL_VERSION = 1;

/** Close codes the master uses, so an agent (and a human reading its log) knows why. */
export const CloseCode = {
  /** Token wrong or missing: the agent must not retry with the same token. */
  unauthorized: 4401,
  /** The token is valid but not for what the agent claims (a pool token on an on-prem agent, foreign job types). */
  forbidden: 4403,
  /** Too many registration attempts from this address; retry later. */
  rateLimited: 4430,
  /** The first frame was not a valid hello, or came too late. */
  badHello: 4400,
  /** Another live connection already uses this agent name. */
  duplicateName: 4409,
  /** Heartbeats stopped; the master declared the agent lost. */
  lost: 4408,
  /** Protocol version mismatch. */
  version: 4426,
  /** Too many rejected frames. */
  tooManyErrors: 4429,
  /** The master is shutting down; reconnect later. */
  goingAway: 1001,
} as const;

/** A job the agent holds: the queue, the BullMQ id, and the lock token the master gave it. */
const heldJob = z.object({ queue: z.string().min(1), jobId: z.string().min(1), lockToken: z.string().min(1) }).strict();
export type HeldJob = z.output<typeof heldJob>;

const finishedFrame = heldJob.extend({ type: z.literal('finished'), result: buildResultSchema }).strict();

/**
 * The agent will not run a job it was just assigned (draining, disk full, no free executor: it
 * may have changed since the master chose it). The master puts the job back to be placed
 * again; without this frame the job would sit assigned to an agent that never runs it.
 */
const declinedFrame = heldJob.extend({ type: z.literal('declined'), reason: z.string().max(500) }).strict();

/**
 * Why a cloud instance is going away: EC2's two-minute spot interruption warning, or its
 * earlier rebalance recommendation (elevated risk of interruption).
 */
const noticeSchema = z.enum(['spot-interruption', 'rebalance']);
export type Notice = z.output<typeof noticeSchema>;

/**
 * The agent read a notice from its instance's metadata (IMDS): the master stops dispatching to
 * it at once. `action` and `at` are IMDS's instance-action (terminate, stop, hibernate) and the
 * time it takes effect (ms since the epoch), for spot interruptions; `at` is the notice time
 * for rebalance recommendations.
 */
const noticeFrame = z
  .object({
    type: z.literal('notice'),
    notice: noticeSchema,
    action: z.enum(['terminate', 'stop', 'hibernate']).optional(),
    at: z.number().int().nonnegative().optional(),
  })
  .strict();

/**
 * The agent's free space on its work or cache filesystem crossed its headroom: below it
 * (`full`) the master sends it no builds, until a frame with `full: false`.
 */
const diskFrame = z
  .object({
    type: z.literal('disk'),
    full: z.boolean(),
    /** The filesystem that is short (or the work dir's, when none is). */
    path: z.string().max(4096),
    freeMb: z.number().nonnegative(),
    minFreeMb: z.number().nonnegative(),
  })
  .strict();

const agentFrameSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('hello'),
      protocol: z.number().int(),
      token: z.string(),
      name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
      location: z.enum(['onprem', 'cloud']),
      jobTypes: z.array(z.string().min(1)).min(1),
      executors: z.number().int().positive().max(1024),
      os: z.string().min(1),
      arch: z.string().min(1),
      cpus: z.number().int().positive(),
      memoryMb: z.number().int().positive(),
      labels: z.array(z.string().min(1)),
      instanceId: z.string().min(1).optional(),
      version: z.string(),
      /** Builds still running from before a reconnect. */
      running: z.array(heldJob),
      /** Builds that finished while the master was unreachable, not yet acknowledged. */
      finished: z.array(finishedFrame),
      draining: z.boolean(),
      /** Too little free disk to take builds (see the `disk` frame); absent from older agents. */
      diskFull: z.boolean().optional(),
      /**
       * This agent numbers its log output (`offset`), resends what the master did not confirm,
       * and resends the `finished` frame of a build in `finished` that the master reattaches.
       */
      logOffsets: z.boolean().optional(),
    })
    .strict(),
  z.object({ type: z.literal('heartbeat'), running: z.array(z.string()) }).strict(),
  heldJob.extend({ type: z.literal('started'), startedAt: z.number() }).strict(),
  z
    .object({
      type: z.literal('log'),
      queue: z.string().min(1),
      jobId: z.string().min(1),
      stream: z.enum(['stdout', 'stderr']),
      data: z.string(),
      /** Where `data` starts in the build's output, in UTF-8 bytes; output the master already stored is skipped. */
      offset: z.number().int().nonnegative().optional(),
    })
    .strict(),
  finishedFrame,
  z.object({ type: z.literal('draining') }).strict(),
  declinedFrame,
  noticeFrame,
  diskFrame,
]);

const masterFrameSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('welcome'),
      agentId: z.string(),
      heartbeatMs: z.number().int().positive(),
      /**
       * Running builds the master took back; the agent cancels any others it reported. For an
       * agent that sent `logOffsets`, also finished builds the master holds again: the agent
       * resends their unconfirmed output, then their `finished` frame.
       */
      reattached: z.array(z.object({ queue: z.string(), jobId: z.string() }).strict()),
      /** The master keeps this much of a build's log; output past it need not be kept for resending. */
      logMaxBytes: z.number().int().positive().optional(),
    })
    .strict(),
  heldJob
    .extend({
      type: z.literal('assign'),
      attempt: z.number().int().positive(),
      payload: jobPayloadSchema,
      /** Resolved from the payload or the job type's default. */
      timeoutSec: z.number().int().positive(),
      /** The job type's disk limit (MiB) when the payload names none; the agent's own default applies otherwise. */
      diskMb: z.number().int().positive().optional(),
    })
    .strict(),
  /**
   * Kill the build (its process group: SIGTERM, then SIGKILL after the agent's grace). With
   * `report` (a user cancelled it; the master still holds the job) the agent keeps the
   * executor until the build's processes are gone and then sends its `finished` frame; without
   * (the master no longer holds the job: its lock was lost, it was not taken back) the agent
   * forgets the build at once.
   */
  z.object({ type: z.literal('cancel'), queue: z.string(), jobId: z.string(), reason: z.string(), report: z.boolean().optional() }).strict(),
  /** The master recorded this finished build; the agent may forget it. */
  z.object({ type: z.literal('ack'), queue: z.string(), jobId: z.string() }).strict(),
  /** The master stored the build's output up to `offset` (bytes): the agent need not resend it. */
  z.object({ type: z.literal('log-ack'), queue: z.string(), jobId: z.string(), offset: z.number().int().nonnegative() }).strict(),
  z.object({ type: z.literal('drain') }).strict(),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }).strict(),
]);

export type AgentFrame = z.output<typeof agentFrameSchema>;
export type MasterFrame = z.output<typeof masterFrameSchema>;
export type HelloFrame = Extract<AgentFrame, { type: 'hello' }>;
export type FinishedFrame = Extract<AgentFrame, { type: 'finished' }>;
export type NoticeFrame = Extract<AgentFrame, { type: 'notice' }>;
export type DiskFrame = Extract<AgentFrame, { type: 'disk' }>;
export type DeclinedFrame = Extract<AgentFrame, { type: 'declined' }>;
export type AssignFrame = Extract<MasterFrame, { type: 'assign' }>;

export type FrameParse<T> = { ok: true; frame: T } | { ok: false; reason: string };

function parseWith<T>(schema: z.ZodType<T>, text: string): FrameParse<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed JSON' };
  }
  const r = schema.safeParse(json);
  if (r.success) return { ok: true, frame: r.data };
  const first = r.error.issues[0];
  const where = first && first.path.length ? `${first.path.join('.')}: ` : '';
  // Only a string type is named: String() of a hostile object (a "toString" that is not a
  // function) throws, and a huge one would be copied into every log line and error frame.
  const type = json && typeof json === 'object' && 'type' in json ? (json as { type: unknown }).type : undefined;
  const known = typeof type === 'string' && type.length <= 64 ? type : undefined;
  return { ok: false, reason: `invalid ${known ? `"${known}" ` : ''}frame: ${where}${first?.message ?? 'schema mismatch'}` };
}

export const parseAgentFrame = (text: string): FrameParse<AgentFrame> => parseWith(agentFrameSchema, text);
export const parseMasterFrame = (text: string): FrameParse<MasterFrame> => parseWith(masterFrameSchema, text);
