import { z } from 'zod';
import { ConfigError } from '../lib';
import { planAddresses, type AddressPlan } from './address-plan';
import { renderUserData } from './user-data';
import { hubConfig, peerConfig, type HubPeer } from './wireguard-config';
import { generateKeyPair, generatePresharedKey, type RandomBytes } from './wireguard-key';

/** A file `spillway vpn init` writes, relative to its output directory. */
export interface VpnFile {
  path: string;
  content: string;
  /** 0600 for anything holding a private or preshared key. */
  mode: number;
}

const vpnInitSchema = z
  .object({
    /** The tunnel network, e.g. 10.77.0.0/24; the hub takes its first host address. */
    network: z.string().min(1),
    /** Where peers reach the hub, host:port (the port is also the hub's ListenPort). */
    hubEndpoint: z
      .string()
      .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):\d{1,5}$/, 'expected HOST:PORT, e.g. vpn.example.com:51820'),
    peers: z.number({ error: 'expected a positive integer' }).int().positive(),
    /** The master's agent listener port on the hub address. @defaultValue 8081 */
    agentPort: z.number({ error: 'expected a port number' }).int().min(1).max(65535).default(8081),
    /** Job types the instances' agents serve (their user-data). */
    jobTypes: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'not a valid job type name')).min(1),
    executors: z.number().int().positive().default(1),
    /** The pool's agent token for the user-data; without it the user-data carries a placeholder. */
    agentToken: z.string().min(8, 'must be at least 8 characters').optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    const port = Number(/:(\d+)$/.exec(o.hubEndpoint)?.[1]);
    if (port < 1 || port > 65535) ctx.addIssue({ code: 'custom', path: ['hubEndpoint'], message: 'the port must be 1-65535' });
  });

export type VpnInitOptions = z.input<typeof vpnInitSchema>;

export const TOKEN_PLACEHOLDER = 'REPLACE-WITH-THE-POOL-AGENT-TOKEN';

/**
 * Everything `spillway vpn init` writes: the hub's config, and per peer a wg-quick config and
 * an EC2 user-data (cloud-init) that brings the tunnel up and runs the agent. Pure: the keys
 * come from `random`, the template is passed in; nothing is written here.
 */
export function vpnFiles(raw: VpnInitOptions, userDataTemplate: string, random?: RandomBytes): { plan: AddressPlan; files: VpnFile[] } {
  const parsed = vpnInitSchema.safeParse(raw);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `--${flag(String(i.path[0] ?? ''))}: ${i.message}`);
  const planned = planAddresses(raw.network, raw.peers);
  if (!planned.ok && !problems.some((p) => p.startsWith('--network') || p.startsWith('--peers'))) problems.push(...planned.problems);
  if (!parsed.success || !planned.ok || problems.length > 0) throw new ConfigError('vpn init', problems);
  const o = parsed.data;
  const { plan } = planned;
  const hub = generateKeyPair(random);
  const prefix = Number(plan.network.split('/')[1]);
  const masterUrl = `ws://${plan.hub.includes(':') ? `[${plan.hub}]` : plan.hub}:${o.agentPort}`;
  const files: VpnFile[] = [];
  const hubPeers: HubPeer[] = [];
  plan.peers.forEach((address, i) => {
    const name = `peer-${String(i + 1).padStart(plan.peers.length >= 100 ? 3 : 2, '0')}`;
    const keys = generateKeyPair(random);
    const presharedKey = generatePresharedKey(random);
    hubPeers.push({ name, address, publicKey: keys.publicKey, presharedKey });
    const wg = peerConfig({ name, address, keys, presharedKey, hubPublicKey: hub.publicKey, hubEndpoint: o.hubEndpoint, network: plan.network });
    files.push({ path: `peers/${name}.conf`, content: wg, mode: 0o600 });
    const userData = renderUserData(userDataTemplate, {
      peerName: name,
      wireguardConfig: wg,
      masterUrl,
      agentToken: o.agentToken ?? TOKEN_PLACEHOLDER,
      jobTypes: o.jobTypes.join(','),
      executors: String(o.executors),
    });
    files.push({ path: `peers/${name}.user-data.yaml`, content: userData, mode: 0o600 });
  });
  const listenPort = Number(/:(\d+)$/.exec(o.hubEndpoint)![1]);
  files.unshift({ path: 'hub/wg-spillway.conf', content: hubConfig({ address: plan.hub, prefix, listenPort, keys: hub, peers: hubPeers }), mode: 0o600 });
  return { plan, files };
}

function flag(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
