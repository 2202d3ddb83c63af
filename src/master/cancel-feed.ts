import type { Redis } from 'ioredis';
import type { Logger } from '../lib';
import { cancelChannel, parseAnnouncement, type CancelAnnouncement } from './cancel-store';

export interface CancelFeedDeps {
  /** A connection of its own: once subscribed it can do nothing else. */
  subscriber: Redis;
  keyPrefix: string;
  log: Logger;
  onAnnouncement(a: CancelAnnouncement): void;
  /** Subscribed again after the connection dropped: announcements made meanwhile were lost. */
  onResubscribed(): void;
}

/**
 * The cancel announcements of the farm (`<keyPrefix>:cancels`), for the master that holds the
 * job. After a reconnect it subscribes itself, and reports it only once the subscription is in
 * force: from then on no announcement is missed, and what was missed before is in the stored
 * requests, which the caller then checks.
 */
export class CancelFeed {
  private readonly channel: string;
  private started = false;

  constructor(private readonly d: CancelFeedDeps) {
    this.channel = cancelChannel(d.keyPrefix);
  }

  async start(): Promise<void> {
    const sub = this.d.subscriber;
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const a = parseAnnouncement(message);
      if (a) this.d.onAnnouncement(a);
    });
    sub.on('ready', () => {
      if (!this.started) return;
      sub.subscribe(this.channel).then(
        () => this.d.onResubscribed(),
        (err: unknown) => this.d.log.error('redis.error', { op: 'cancels.subscribe', error: err }),
      );
    });
    await sub.subscribe(this.channel);
    this.started = true;
  }
}
