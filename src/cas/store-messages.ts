import { z } from 'zod';

/**
 * The messages between the process that owns the disk store's index (the master) and a cache
 * worker that serves HTTP from the same files (see {@link StoreHost} and {@link RemoteStore}).
 * Both ends are spillway, but the messages cross a process boundary, so each end validates
 * what it receives.
 */
const hash = z.string().regex(/^[0-9a-f]{64}$/);
const digest = z.object({ hash, size: z.number().int().min(0) });

export const storeRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('lookup'), hash }),
  z.object({ op: z.literal('corrupt'), expected: digest, actual: z.object({ hash: z.string().max(80), size: z.number().int().min(0) }) }),
  z.object({ op: z.literal('missing'), hash }),
  z.object({ op: z.literal('reserve'), size: z.number().int().min(0), hash: z.string().max(80) }),
  z.object({ op: z.literal('commit'), tmp: z.string().min(1).max(4096), digest, reservation: z.number().int().min(0) }),
  z.object({ op: z.literal('has'), digest }),
  z.object({ op: z.literal('sizeOf'), hash }),
  z.object({ op: z.literal('findMissing'), digests: z.array(digest).max(100_000) }),
  z.object({ op: z.literal('delete'), hash }),
]);
export type StoreRequest = z.infer<typeof storeRequest>;

/** Worker to owner: a call awaiting its reply, or a notice that needs none. */
export const toOwner = z.discriminatedUnion('t', [
  z.object({ t: z.literal('call'), id: z.number().int().min(0), req: storeRequest }),
  z.object({ t: z.literal('touch'), hashes: z.array(hash).max(1_000_000) }),
  z.object({ t: z.literal('verified'), hash }),
  z.object({ t: z.literal('release'), bytes: z.number().int().min(0) }),
]);
export type ToOwner = z.infer<typeof toOwner>;

/** Owner to worker: a reply, or blobs that left the store (a worker's memory tier drops them). */
export const toWorker = z.union([
  z.object({ t: z.literal('reply'), id: z.number().int().min(0), ok: z.literal(true), value: z.unknown() }),
  z.object({ t: z.literal('reply'), id: z.number().int().min(0), ok: z.literal(false), code: z.string(), message: z.string() }),
  z.object({ t: z.literal('gone'), hashes: z.array(hash) }),
]);
export type ToWorker = z.infer<typeof toWorker>;

/** One end of the IPC channel, as child_process gives it (`send` / `on('message')`). */
export interface StoreChannel<Out> {
  send(message: Out): void;
  onMessage(listener: (message: unknown) => void): void;
}
