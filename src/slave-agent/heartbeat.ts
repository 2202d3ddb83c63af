import { BackgroundLoop, type Clock, type Logger } from '../lib';
import type { MasterConnection } from './master-connection';

/**
 * Sends a heartbeat (with the jobs still running) every `heartbeatMs` until the connection
 * closes, and drops a connection the master has gone silent on. Resolves once it has stopped.
 */
export async function heartbeat(conn: MasterConnection, heartbeatMs: number, d: { clock: Clock; log: Logger; running: () => string[] }): Promise<void> {
  if (conn.signal.aborted) return;
  const loop = new BackgroundLoop({
    name: 'heartbeat',
    everyMs: heartbeatMs,
    run: async () => {
      // A VPN that silently drops packets leaves the socket open forever; our pings get a
      // pong from any live master, so silence this long means the path is gone.
      const silentMs = d.clock.now() - conn.lastHeard;
      if (silentMs > 3 * heartbeatMs) {
        d.log.warn('agent.master-silent', { silentMs });
        conn.terminate();
        return 'done';
      }
      conn.send({ type: 'heartbeat', running: d.running() });
      conn.ping();
      return undefined;
    },
    clock: d.clock,
    log: d.log,
    errorEvent: 'agent.heartbeat-failed',
  });
  const closed = new Promise<void>((resolve) => conn.signal.addEventListener('abort', () => resolve(loop.stop()), { once: true }));
  loop.start();
  await closed;
}
