import { SpillwayError } from '../lib';

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
