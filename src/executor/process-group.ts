import { systemClock, type Clock } from '../lib';
import { readdirSync, readFileSync } from 'node:fs';

/** Sends `signal` to every process in the group; false once the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  // ESRCH is the common answer (the group is already gone) and arrives as an exception;
  // without a stack trace it costs a fraction as much, which shows at hundreds of builds/s.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Whether any process of the group still runs. Zombies don't count: they hold no resources
 * and run no code, and where PID 1 does not reap orphans (minimal containers, microVMs) they
 * stay group members indefinitely.
 */
export function groupHasLiveMembers(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // The command name may contain spaces and parentheses; the fields after its last ')' don't.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/** Resolves once no process of the group runs any more, or after `maxMs` (on `clock`) regardless. */
export async function groupGone(pgid: number, maxMs: number, clock: Clock = systemClock): Promise<void> {
  const deadline = clock.now() + maxMs;
  while (groupHasLiveMembers(pgid) && clock.now() < deadline) await clock.sleep(10);
}
