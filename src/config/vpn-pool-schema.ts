import { z } from 'zod';
import { formatNetwork, inAnyNetwork, parseCidr } from '../lib';

/** Placeholders an operator's hub command may use; anything else is a config error. */
export const HUB_COMMAND_PLACEHOLDERS = ['publicKey', 'address', 'allowedIps', 'pool', 'instanceId'] as const;

const hubCommand = (what: string) =>
  z
    .array(z.string().min(1))
    .min(1, `the ${what} command's argv, e.g. ["wg", "set", "wg-spillway", ...]`)
    .superRefine((argv, ctx) => {
      argv.forEach((arg, i) => {
        for (const [, name] of arg.matchAll(/\{(\w*)\}/g)) {
          if (!(HUB_COMMAND_PLACEHOLDERS as readonly string[]).includes(name!)) {
            ctx.addIssue({ code: 'custom', path: [i], message: `unknown placeholder {${name}} (known: ${HUB_COMMAND_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})` });
          }
        }
      });
    });

const cidr = z.string().superRefine((s, ctx) => {
  const r = parseCidr(s);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

/**
 * A VPN-only EC2 pool that grows: each launch gets its own WireGuard key pair and an address
 * of `peerNetwork`, carried in that instance's user-data, and the peer is added to the hub
 * (and removed when the instance is terminated) by the operator's commands.
 */
export const vpnPoolSchema = z
  .object({
    /** The tunnel network, e.g. 10.77.0.0/24: what peers route through the tunnel. */
    network: cidr,
    /**
     * The addresses launched instances get, inside `network`. @defaultValue every host address
     * of `network` after the hub's (the first)
     */
    peerNetwork: cidr.optional(),
    /** Where peers reach the hub, HOST:PORT. */
    hubEndpoint: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):\d{1,5}$/, 'expected HOST:PORT, e.g. vpn.example.com:51820'),
    /** The hub's WireGuard public key (base64, as `wg pubkey` prints it). */
    hubPublicKey: z.string().regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, 'expected a WireGuard public key (44 characters of base64)'),
    /** The master's agent listener port on the hub address. @defaultValue 8081 */
    agentPort: z.number().int().min(1).max(65535).default(8081),
    /** The cloud-init template rendered per instance. @defaultValue the vpn/cloud-init.yaml spillway ships */
    userDataTemplate: z.string().min(1).optional(),
    /** Adds a launched peer to the hub, e.g. ["wg", "set", "wg-spillway", "peer", "{publicKey}", "allowed-ips", "{allowedIps}"]. */
    hubAddPeer: hubCommand('hubAddPeer'),
    /** Removes it again, e.g. ["wg", "set", "wg-spillway", "peer", "{publicKey}", "remove"]. */
    hubRemovePeer: hubCommand('hubRemovePeer'),
    /** How long a hub command may run. @defaultValue 15000 */
    hubCommandTimeoutMs: z.number().int().positive().default(15_000),
  })
  .strict()
  .superRefine((v, ctx) => {
    const net = parseCidr(v.network);
    const peers = v.peerNetwork ? parseCidr(v.peerNetwork) : undefined;
    if (net.ok && peers?.ok && !(peers.network.prefix >= net.network.prefix && inAnyNetwork([net.network], formatNetwork(peers.network).split('/')[0]!))) {
      ctx.addIssue({ code: 'custom', path: ['peerNetwork'], message: `must lie inside network ${v.network}` });
    }
  });

export type VpnPoolConfig = z.output<typeof vpnPoolSchema>;
