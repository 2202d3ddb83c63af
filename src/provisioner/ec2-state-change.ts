import type { SuspendOutcome } from './provider';

/**
 * An entry of StopInstances' `StoppingInstances` or TerminateInstances' `TerminatingInstances`,
 * as far as spillway reads it (the SDK's `InstanceStateChange` fits it).
 */
export interface StateChange {
  InstanceId?: string | undefined;
  CurrentState?: { Name?: string | undefined } | undefined;
  PreviousState?: { Name?: string | undefined } | undefined;
}

/**
 * What EC2 says it did to each instance, from the state changes it answered `action` with
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceStateChange.html). An
 * instance it did not list was not acted on; one that was already stopped was not hibernated
 * by this call, whatever it was asked. `why` explains an outcome that differs from the mode the
 * caller asked for (a fallback the caller already made).
 */
export function suspendOutcomes(
  ids: readonly string[],
  changes: readonly StateChange[] | undefined,
  asked: 'hibernated' | 'stopped' | 'terminated',
  action: string,
  why: string | null,
): SuspendOutcome[] {
  const byId = new Map((changes ?? []).map((c) => [c.InstanceId, c]));
  return ids.map((id): SuspendOutcome => {
    const c = byId.get(id);
    const now = c?.CurrentState?.Name;
    const before = c?.PreviousState?.Name;
    if (!now) return { id, did: 'failed', reason: `${action} reported no state change for ${id}` };
    if (now === 'shutting-down' || now === 'terminated') return { id, did: 'terminated', reason: asked === 'terminated' ? why : `EC2 reports ${now} after ${action}` };
    if (asked === 'terminated' || (now !== 'stopping' && now !== 'stopped')) return { id, did: 'failed', reason: `EC2 reports ${now} after ${action}` };
    if (before === 'stopping' || before === 'stopped') return { id, did: 'stopped', reason: `already ${before} (not hibernated by this call)` };
    return { id, did: asked, reason: why };
  });
}
