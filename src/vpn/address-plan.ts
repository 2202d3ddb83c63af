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

/** A grown pool's plan beyond this would be a config mistake (a /8), and HKEYS would carry it on every launch. */
const MAX_POOL_PEERS = 65_536;

/**
 * The addresses a growing VPN pool hands out: the host addresses of `peerNetwork` (default:
 * the whole `network`), minus the hub (the network's first host address) and, for IPv4, the
 * network's own network and broadcast addresses.
 */
export function poolAddresses(network: string, peerNetwork?: string): { hub: string; peers: string[] } {
  const net = parseCidr(network);
  if (!net.ok) throw new RangeError(net.reason);
  const range = peerNetwork ? parseCidr(peerNetwork) : net;
  if (!range.ok) throw new RangeError(range.reason);
  const n = net.network;
  const r = range.network;
  const hubAt = 1n;
  const last = networkSize(n) - 1n;
  const start = r.base - n.base;
  const peers: string[] = [];
  for (let off = start; off < start + networkSize(r) && peers.length < MAX_POOL_PEERS; off++) {
    if (off === 0n && (n.family === 4 || networkSize(n) > 1n)) continue;
    if (off === hubAt) continue;
    if (n.family === 4 && off === last && networkSize(n) > 2n) continue;
    peers.push(formatIp(addressAt(n, off)));
  }
  return { hub: formatIp(addressAt(n, hubAt)), peers };
}
