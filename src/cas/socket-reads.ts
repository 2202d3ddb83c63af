import type http from 'node:http';
import type { Socket } from 'node:net';

/**
 * Stops a socket's reads at its handle, now. `socket.pause()` alone only stops 'data' events:
 * the stream goes on reading ahead into its buffer, and node:http, which reads a socket it
 * serves straight from the handle (`parser.consume`), then shares the socket with those stale
 * reads (bench:cache: 1 MiB GETs on connections the raw hit path had handed over were several
 * times slower in the cache workers). After this, the socket reads again only when its next
 * owner resumes it. False when the handle cannot be stopped (no handle, or one that is not a
 * stream); the caller must then not move the socket to another process.
 */
export function stopReads(socket: Socket): boolean {
  socket.pause();
  // node:net has no public way to stop reading at the handle; this is what pause() itself does
  // for sockets created with `onread`, and what node:http's own pause listener does.
  const handle = handleOf(socket);
  if (!handle?.readStop) return false;
  if (handle.reading === false) return true;
  handle.reading = false;
  return handle.readStop() === 0;
}

/** A server's own `connection` listeners, taken off it so a path in front can decide first. */
export type ConnectionListeners = ReadonlyArray<(socket: Socket) => void>;

/** Removes and returns `server`'s `connection` listeners (node:http's, and whatever else was there). */
export function takeConnectionListeners(server: http.Server): ConnectionListeners {
  const listeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  return listeners;
}

/**
 * Gives `socket` to `listeners` (a server's own connection handling), with `rest`, what was
 * read of it and not consumed, put back in front: its reads are stopped first, so the new owner
 * is the only reader from here on and sees every byte once, in order.
 */
export function passSocket(server: http.Server, listeners: ConnectionListeners, socket: Socket, rest: Buffer): void {
  stopReads(socket);
  if (rest.length > 0) socket.unshift(rest);
  for (const listener of listeners) listener.call(server, socket);
  socket.resume();
  // A stream whose read was pending when the handle stopped never asks again (it waits for that
  // read), so resume() alone would leave the socket deaf; node:http restarts its own on
  // 'resume', any other owner would not. Bytes put back above still come first: they flow on
  // the next tick, before the handle's next read can be delivered.
  const handle = handleOf(socket);
  if (handle?.readStart && handle.reading === false && !socket.destroyed) {
    handle.reading = true;
    handle.readStart();
  }
}

type ReadHandle = { reading?: boolean; readStop?: () => number; readStart?: () => number };

function handleOf(socket: Socket): ReadHandle | null | undefined {
  return (socket as unknown as { _handle?: ReadHandle | null })._handle;
}
