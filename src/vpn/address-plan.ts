import { addressAt, formatIp, formatNetwork, networkSize, parseCidr, type IpNetwork } from '../lib';

/** The tunnel network and who gets which address in it: the hub first, then the peers. */
export interface AddressPlan {
  network: string;
  /** The hub's address, e.g. 10.77.0.1 (the master's agents.listen.host). */
  hub: string;
  peers: string[];
}

/** More would make a config nobody can review; WireGuard itself has no such limit. */
const MAX_PEERS = 1000;

/**
 * Hands out host addresses of `cidr` in order: the hub gets the first, each peer the next.
 * IPv4 skips the network and broadcast addresses, IPv6 the subnet-router anycast address.
 */
export function planAddresses(cidr: string, peers: number): { ok: true; plan: AddressPlan } | { ok: false; problems: string[] } {
  const parsed = parseCidr(cidr);
  if (!parsed.ok) return { ok: false, problems: [`--network: ${parsed.reason}`] };
  const n: IpNetwork = parsed.network;
  if (!Number.isInteger(peers) || peers < 1 || peers > MAX_PEERS) return { ok: false, problems: [`--peers: expected 1-${MAX_PEERS}, got ${peers}`] };
  const reserved = n.family === 4 ? 2n : 1n;
  const hosts = networkSize(n) > reserved ? networkSize(n) - reserved : 0n;
  if (hosts < BigInt(peers) + 1n) {
    return { ok: false, problems: [`--peers: ${formatNetwork(n)} has room for ${hosts > 0n ? hosts - 1n : 0n} peer(s) besides the hub, not ${peers}`] };
  }
  return {
    ok: true,
    plan: {
      network: formatNetwork(n),
      hub: formatIp(addressAt(n, 1n)),
      peers: Array.from({ length: peers }, (_, i) => formatIp(addressAt(n, BigInt(i) + 2n))),
    },
  };
}
