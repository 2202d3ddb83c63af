import type { Redis } from 'ioredis';
import type { RepeatLog } from '../lib';
import type { InstanceState } from './instance';

/** The message published on `changesChannel(pool)` after every change (`state: null` once removed). */
export interface InstanceChange {
  id: string;
  state: InstanceState | null;
  version: number;
}

/** `undefined`: anything may have changed (the subscriber reconnected and may have missed messages). */
export type ChangeListener = (id: string | undefined) => void;

/**
 * One lazily created SUBSCRIBE connection per store, shared by all waiters; a channel is
 * subscribed while anyone listens on it.
 */
export class ChangeHub {
  private sub: Redis | undefined;
  private readonly channels = new Map<string, { listeners: Set<ChangeListener>; subscribed: Promise<unknown> }>();

  constructor(
    private readonly connect: () => Redis,
    /** The subscriber repeats its error on every reconnect attempt during an outage. */
    private readonly log: RepeatLog | undefined,
  ) {}

  async on(channel: string, listener: ChangeListener): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: this.connection().subscribe(channel) };
      this.channels.set(channel, entry);
    }
    entry.listeners.add(listener);
    await entry.subscribed;
  }

  off(channel: string, listener: ChangeListener): void {
    const entry = this.channels.get(channel);
    if (!entry?.listeners.delete(listener) || entry.listeners.size > 0) return;
    this.channels.delete(channel);
    this.sub?.unsubscribe(channel).catch(() => undefined);
  }

  async close(): Promise<void> {
    const sub = this.sub;
    this.sub = undefined;
    this.channels.clear();
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }

  private connection(): Redis {
    if (this.sub) return this.sub;
    const sub = this.connect();
    let connectedBefore = false;
    sub.on('message', (channel: string, message: string) => {
      const id = changedId(message);
      for (const listener of this.channels.get(channel)?.listeners ?? []) listener(id);
    });
    // ioredis resubscribes after a reconnect, but messages sent while it was down are lost.
    sub.on('ready', () => {
      if (connectedBefore) for (const entry of this.channels.values()) for (const listener of entry.listeners) listener(undefined);
      connectedBefore = true;
      this.log?.flush();
    });
    sub.on('error', (err: Error) => this.log?.warn('instance.changes-error', err.message, { err }));
    this.sub = sub;
    return sub;
  }
}

function changedId(message: string): string | undefined {
  try {
    const change = JSON.parse(message) as Partial<InstanceChange>;
    return typeof change.id === 'string' ? change.id : undefined;
  } catch {
    return undefined;
  }
}
