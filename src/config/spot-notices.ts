import { z } from 'zod';

/**
 * An SQS queue that EventBridge fills with EC2's events for spillway's instances (spot
 * interruption warnings, rebalance recommendations, state changes).
 */
export const spotNoticesSchema = z
  .object({
    /** e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/spillway-ec2-events */
    queueUrl: z.url({ error: 'expected the queue URL' }),
    /** @defaultValue the pool's EC2 region, else the region in the queue URL */
    region: z.string().min(1).optional(),
    /** A VPC interface endpoint for SQS reached over the VPN (no internet route). */
    endpoint: z.url().optional(),
  })
  .strict();

/** Preempted builds per job type that turn a spot pool's launches for that type on-demand. */
export const spotFallbackSchema = z
  .object({
    /** Preemptions of one job type in the window after which its launches go on-demand; 0 = never. @defaultValue 3 */
    fallbackAfterPreemptions: z.number({ error: 'expected an integer >= 0' }).int().min(0).default(3),
    /** The window preemptions are counted in. @defaultValue 60 */
    windowMin: z.number({ error: 'expected a positive number' }).positive().default(60),
  })
  .strict();

export type SpotNoticesConfig = z.output<typeof spotNoticesSchema>;

/** One queue to consume and the pools whose instances its events may concern (all pools: `undefined`). */
export interface NoticeQueue {
  queueUrl: string;
  region: string;
  endpoint: string | undefined;
  pools: readonly string[] | undefined;
}

/** sqs.<region>.amazonaws.com[.cn], or the legacy <region>.queue.amazonaws.com. */
const REGION_IN_URL = /^https:\/\/(?:sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?)\//;

/** The region a queue URL names, if it is an AWS one. */
export function regionOfQueueUrl(queueUrl: string): string | undefined {
  const m = REGION_IN_URL.exec(queueUrl);
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * The distinct queues to consume: the global one (every pool) and each pool's own, with their
 * regions resolved. A queue named twice is consumed once, for the union of its pools.
 */
export function noticeQueues(config: {
  spotNotices?: SpotNoticesConfig | undefined;
  pools: Readonly<Record<string, { spotNotices?: SpotNoticesConfig | undefined; ec2?: { region: string } | undefined }>>;
}): NoticeQueue[] {
  const byUrl = new Map<string, NoticeQueue>();
  const add = (n: SpotNoticesConfig, pool: string | undefined, poolRegion: string | undefined) => {
    const region = n.region ?? poolRegion ?? regionOfQueueUrl(n.queueUrl);
    if (!region) return;
    const seen = byUrl.get(n.queueUrl);
    if (!seen) {
      byUrl.set(n.queueUrl, { queueUrl: n.queueUrl, region, endpoint: n.endpoint, pools: pool === undefined ? undefined : [pool] });
    } else if (seen.pools !== undefined) {
      seen.pools = pool === undefined ? undefined : [...seen.pools, pool];
    }
  };
  if (config.spotNotices) add(config.spotNotices, undefined, undefined);
  for (const [name, p] of Object.entries(config.pools)) if (p.spotNotices) add(p.spotNotices, name, p.ec2?.region);
  return [...byUrl.values()];
}
