import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { vpnFiles, withAgentUnit, writeVpnFiles, TOKEN_PLACEHOLDER } from '../vpn';

export interface VpnInitFlags {
  out: string;
  network: string;
  hubEndpoint: string;
  peers: number;
  agentPort: number;
  jobTypes: string;
  executors: number;
  force?: boolean;
}

/** The package's root: the cloud-init template is its vpn/ folder's, the agent unit its deploy/ folder's. */
const PACKAGE_ROOT = resolve(__dirname, '../../..');

/** The user-data template with the agent unit on-prem agents run put in (see withAgentUnit). */
export function userDataTemplate(root = PACKAGE_ROOT): string {
  return withAgentUnit(readFileSync(resolve(root, 'vpn/cloud-init.yaml'), 'utf8'), readFileSync(resolve(root, 'deploy/spillway-agent.service'), 'utf8'));
}

/** `spillway vpn init`: WireGuard hub and peer configs plus per-peer EC2 user-data. */
export function vpnInitCommand(flags: VpnInitFlags, env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): number {
  const template = userDataTemplate();
  const token = env.SPILLWAY_AGENT_TOKEN || undefined;
  const { plan, files } = vpnFiles(
    {
      network: flags.network,
      hubEndpoint: flags.hubEndpoint,
      peers: flags.peers,
      agentPort: flags.agentPort,
      jobTypes: flags.jobTypes.split(',').map((t) => t.trim()).filter(Boolean),
      executors: flags.executors,
      ...(token && { agentToken: token }),
    },
    template,
  );
  const written = writeVpnFiles(flags.out, files, { force: flags.force });
  out.write(
    [
      `spillway vpn init: wrote ${written.length} files to ${flags.out} (keys are 0600)`,
      `  hub ${plan.hub} on ${plan.network}: install hub/wg-spillway.conf as /etc/wireguard/wg-spillway.conf, then systemctl enable --now wg-quick@wg-spillway`,
      `  peers ${plan.peers[0]}${plan.peers.length > 1 ? ` .. ${plan.peers[plan.peers.length - 1]}` : ''}: peers/<peer>.conf, and peers/<peer>.user-data.yaml as each instance's EC2 user-data`,
      ...(token ? [] : [`  no SPILLWAY_AGENT_TOKEN in the environment: replace ${TOKEN_PLACEHOLDER} in the user-data with the pool's agent token`]),
      '',
      'In the master config:',
      'agents:',
      '  listen:',
      `    host: ${plan.hub}`,
      `  port: ${flags.agentPort}`,
      `  allow: [${plan.network}]`,
      '',
    ].join('\n'),
  );
  return 0;
}
