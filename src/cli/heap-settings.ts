import { setFlagsFromString } from 'node:v8';
import type { Config } from '../config';

/** Sets V8 flags on the running process (`v8.setFlagsFromString`). */
export type SetV8Flags = (flags: string) => void;

/**
 * Applies `memory` to this process's V8 heap, at start and again on SIGHUP. V8 reads the
 * growing factor at every full collection, so a changed value holds from the next one on.
 * Only the master calls this: the flag is process-wide, and tests run many daemons in one
 * process. V8 ignores flags it does not know, so test/cli/heap-settings.test.ts checks that
 * this node still has it.
 */
export function applyHeapSettings(memory: Config['memory'], set: SetV8Flags = setFlagsFromString): string {
  const flag = `--heap-growing-percent=${memory.heapGrowingPercent}`;
  set(flag);
  return flag;
}
