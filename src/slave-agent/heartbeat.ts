import type { Clock, Logger } from '../lib';
import type { MasterConnection } from './master-connection';

/**
 * Sends a heartbeat (with the jobs still running) every `heartbeatMs` until the connection
 * closes, and drops a connection the master has gone silent on.
 */
export async function heartbeat(conn: MasterConnection, heartbeatMs: number, d: { clock: Clock; log: Logger; running: () => string[] }): Promise<void> {
  try {
    for (;;) {
      await d.clock.sleep(heartbeatMs, conn.signal);
      // A VPN that silently drops packets leaves the socket open forever; our pings get a
      // pong from any live master, so silence this long means the path is gone.
      const silentMs = d.clock.now() - conn.lastHeard;
      if (silentMs > 3 * heartbeatMs) {
        d.log.warn('agent.master-silent', { silentMs });
        conn.terminate();
        return;
      }
      conn.send({ type: 'heartbeat', running: d.running() });
      conn.ping();
    }
  } catch {
    // aborted: the connection closed
  }
}
