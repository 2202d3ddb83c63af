import { z } from 'zod';
import type { AgentOptions } from '../config';
import { BackgroundLoop, type Clock, type LoopNext, type Logger } from '../lib';
import type { NoticeFrame } from '../protocol';
import { ImdsClient, isEc2InstanceId } from './imds';

/*
 * What IMDS shows on a spot instance (both paths answer 404 until there is something to say):
 *   /latest/meta-data/spot/instance-action                {"action": "terminate"|"stop"|"hibernate", "time": "2017-09-18T08:22:00Z"}
 *     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
 *   /latest/meta-data/events/recommendations/rebalance    {"noticeTime": "2020-10-27T08:22:00Z"}
 *     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/rebalance-recommendations.html
 */
const INSTANCE_ACTION_PATH = '/latest/meta-data/spot/instance-action';
const REBALANCE_PATH = '/latest/meta-data/events/recommendations/rebalance';

const instanceAction = z.object({ action: z.enum(['terminate', 'stop', 'hibernate']), time: z.iso.datetime({ offset: true }) });
const rebalance = z.object({ noticeTime: z.iso.datetime({ offset: true }) });

/** Dependencies of {@link NoticeWatch}. */
export interface NoticeWatchDeps {
  imds: ImdsClient;
  clock: Clock;
  log: Logger;
  /** Between looks. */
  pollMs: number;
  /** A new notice (a rebalance recommendation, then possibly the interruption itself). */
  onNotice(frame: NoticeFrame): void;
}

/**
 * Polls the instance's metadata for a spot interruption warning and a rebalance
 * recommendation. Each is reported once; after the interruption there is nothing left to learn
 * and the watch ends. IMDS failures are logged (the first one as a warning) and polling goes on.
 */
export class NoticeWatch {
  private readonly loop: BackgroundLoop;
  private seen: NoticeFrame['notice'] | undefined;
  private failing = false;

  constructor(private readonly d: NoticeWatchDeps) {
    this.loop = new BackgroundLoop({
      name: 'notice-watch',
      everyMs: d.pollMs,
      runAtStart: true,
      run: (signal) => this.look(signal),
      clock: d.clock,
      log: d.log,
      errorEvent: 'agent.notice-watch-failed',
    });
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One look at both paths: the notice not reported before, if any. Throws IMDS failures. */
  async check(signal?: AbortSignal): Promise<NoticeFrame | undefined> {
    const action = await this.d.imds.get(INSTANCE_ACTION_PATH, 'spot instance-action', signal);
    if (action !== undefined) return this.report({ type: 'notice', notice: 'spot-interruption', ...this.parse(instanceAction, action, (a) => ({ action: a.action, at: Date.parse(a.time) })) });
    if (this.seen) return undefined;
    const rec = await this.d.imds.get(REBALANCE_PATH, 'rebalance recommendation', signal);
    if (rec !== undefined) return this.report({ type: 'notice', notice: 'rebalance', ...this.parse(rebalance, rec, (r) => ({ at: Date.parse(r.noticeTime) })) });
    return undefined;
  }

  private report(frame: NoticeFrame): NoticeFrame | undefined {
    if (this.seen === frame.notice) return undefined;
    this.seen = frame.notice;
    this.d.onNotice(frame);
    return frame;
  }

  /** A document that does not parse still means a notice exists: report it without the details. */
  private parse<T, R>(schema: z.ZodType<T>, text: string, pick: (v: T) => R): R | Record<string, never> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const r = schema.safeParse(json);
    if (r.success) return pick(r.data);
    this.d.log.warn('agent.notice-watch-failed', { reason: 'unexpected notice document', body: text.slice(0, 200) });
    return {};
  }

  private async look(signal: AbortSignal): Promise<LoopNext> {
    try {
      await this.check(signal);
      this.failing = false;
    } catch (err) {
      if (signal.aborted) return 'done';
      // One warning per outage, not one every few seconds.
      if (this.failing) this.d.log.debug('agent.notice-watch-failed', { error: (err as Error).message });
      else this.d.log.warn('agent.notice-watch-failed', { error: (err as Error).message });
      this.failing = true;
    }
    return this.seen === 'spot-interruption' ? 'done' : undefined;
  }
}

/**
 * The watch for an agent on an EC2 instance (a cloud agent whose instance id is an EC2 one);
 * none elsewhere: local "cloud" instances (the local provider, the demo) have no IMDS to ask.
 */
export function noticeWatchFor(o: AgentOptions, clock: Clock, log: Logger, onNotice: (frame: NoticeFrame) => void): NoticeWatch | undefined {
  if (o.location !== 'cloud' || !isEc2InstanceId(o.instanceId)) return undefined;
  return new NoticeWatch({ imds: new ImdsClient({ baseUrl: o.imdsUrl, clock }), clock, log, pollMs: o.noticePollSec * 1000, onNotice });
}
