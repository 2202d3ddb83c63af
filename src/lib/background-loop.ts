import type { Clock } from './clock';
import type { Logger } from './logger';

/**
 * One shape for background loops: run `fn` every `ms` on the injected clock until `signal`
 * aborts, never two runs at once, an error reported (`errorEvent`) and the loop carried on.
 */
export async function runEvery(
  name: string,
  ms: number,
  fn: () => Promise<void>,
  d: { clock: Clock; signal: AbortSignal; log: Logger; errorEvent: Parameters<Logger['error']>[0] },
): Promise<void> {
  while (!d.signal.aborted) {
    try {
      await d.clock.sleep(ms, d.signal);
    } catch {
      return;
    }
    try {
      await fn();
    } catch (err) {
      d.log.error(d.errorEvent, { loop: name, error: err });
    }
  }
}
