import type { Redis } from 'ioredis';
import { z } from 'zod';
import { runScript } from '../lib';
import { LEASE_SWAP_SCRIPT } from './lua/lease-swap-script';

/**
 * Who holds an address: a launch (by its ClientToken) until it made its instance, then that
 * instance. Only public facts: the private key is never here.
 */
export const leaseSchema = z
  .object({
    token: z.string(),
    publicKey: z.string(),
    instanceId: z.string().nullable(),
    /** When the lease was taken, or bound to its instance (ms). */
    at: z.number(),
  })
  .strict();
export type Lease = z.infer<typeof leaseSchema>;

export interface LeaseEntry {
  address: string;
  lease: Lease;
  /** The stored text, for compare-and-swap. */
  raw: string;
}

/**
 * A VPN pool's address leases in one Redis hash (address -> lease). Taking an address is
 * HSETNX, atomic per address, so two masters allocating at once always get different ones.
 */
export class PeerLeases {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  /** The first address of `plan` nobody holds, now held by `lease`; undefined when all are taken. */
  async take(plan: readonly string[], lease: Lease): Promise<{ address: string; raw: string } | undefined> {
    const raw = JSON.stringify(lease);
    const held = new Set(await this.redis.hkeys(this.key));
    for (const address of plan) {
      if (held.has(address)) continue;
      // Another master may have taken it since HKEYS: then try the next.
      if ((await this.redis.hsetnx(this.key, address, raw)) === 1) return { address, raw };
    }
    return undefined;
  }

  async all(): Promise<LeaseEntry[]> {
    const out: LeaseEntry[] = [];
    for (const [address, raw] of Object.entries(await this.redis.hgetall(this.key))) {
      const parsed = leaseSchema.safeParse(safeJson(raw));
      // Unreadable (written by hand, or a newer version): kept, so its address is never handed out twice.
      if (parsed.success) out.push({ address, lease: parsed.data, raw });
    }
    return out;
  }

  /** Replaces the lease if it is still `expected`; `next` undefined deletes it. */
  async swap(address: string, expected: string, next: Lease | undefined): Promise<boolean> {
    const res = await runScript(this.redis, LEASE_SWAP_SCRIPT, [this.key], [address, expected, next ? JSON.stringify(next) : '']);
    return res === 1;
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
