import { SpillwayError } from '../lib';
import { CloseCode, PROTOCOL_VERSION } from '../protocol';

/**
 * The master refused this agent for a reason retrying cannot fix (wrong token, protocol
 * version): the agent stops and the CLI exits non-zero.
 */
export class AgentRejectedError extends SpillwayError {
  readonly code = 'SPILLWAY_E_AGENT_REJECTED';
  readonly disposition = 'fatal';
  constructor(
    readonly closeCode: number,
    readonly reason: string,
  ) {
    super(`the master refused this agent (close code ${closeCode}${reason ? `: ${reason}` : ''})`);
  }
}

/** Close codes that end the agent instead of a reconnect, with what the operator should do. */
const FATAL_CLOSES: ReadonlyMap<number, string> = new Map([
  [CloseCode.unauthorized, 'check the agent token'],
  [CloseCode.forbidden, "a pool's token admits only cloud agents serving that pool's job types"],
  [CloseCode.duplicateName, 'another live agent already uses this name at the master; give each agent its own --name'],
  [CloseCode.version, `this agent speaks protocol ${PROTOCOL_VERSION}; upgrade the agent or the master`],
]);

/** The hint for a close that retrying cannot fix; undefined for one worth a reconnect. */
export const fatalCloseHint = (code: number): string | undefined => FATAL_CLOSES.get(code);
