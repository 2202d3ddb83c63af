import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

/** An address as a number, so networks are compared with arithmetic instead of strings. */
export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

/** A network in CIDR notation, normalized: host bits of `base` are zero. */
export interface IpNetwork {
  family: IpFamily;
  base: bigint;
  prefix: number;
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

/**
 * Parses an IPv4 or IPv6 address; a zone (`fe80::1%eth0`) is dropped. IPv4-mapped IPv6
 * addresses (`::ffff:10.0.0.5`, what a dual-stack socket reports for an IPv4 peer) come back
 * as the IPv4 address, so one allow-list entry covers both spellings.
 */
export function parseIp(text: string): IpAddress | undefined {
  const s = text.replace(/%.*$/, '');
  if (isIPv4(s)) return { family: 4, value: v4(s) };
  if (!isIPv6(s)) return undefined;
  const value = v6(s);
  return value >> 32n === 0xffffn ? { family: 4, value: value & 0xffffffffn } : { family: 6, value };
}

/**
 * Parses `a.b.c.d/n` or `x::/n` (a bare address is a /32 or /128). Host bits must be zero:
 * `10.0.0.1/8` is more likely a typo than a network, so it is refused with the reason.
 * An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes the IPv4 network it maps.
 */
export function parseCidr(text: string): { ok: true; network: IpNetwork } | { ok: false; reason: string } {
  const [addr = '', len, ...extra] = text.trim().split('/');
  if (extra.length > 0) return { ok: false, reason: `"${text}" is not a CIDR network (like 10.77.0.0/24 or fd00::/8)` };
  const s = addr.replace(/%.*$/, '');
  const family: IpFamily | undefined = isIPv4(s) ? 4 : isIPv6(s) ? 6 : undefined;
  if (!family) return { ok: false, reason: `"${text}" is not a CIDR network (like 10.77.0.0/24 or fd00::/8)` };
  const bits = BITS[family];
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return { ok: false, reason: `"${text}": the prefix length must be a number 0-${bits}` };
  let prefix = len === undefined ? bits : Number(len);
  if (prefix > bits) return { ok: false, reason: `"${text}": the prefix length must be 0-${bits}` };
  let base = family === 4 ? v4(s) : v6(s);
  if (base & hostMask(bits, prefix)) return { ok: false, reason: `"${text}" has host bits set; the network is ${format(family, base & ~hostMask(bits, prefix))}/${prefix}` };
  if (family === 6 && prefix >= 96 && base >> 32n === 0xffffn) return { ok: true, network: { family: 4, base: base & 0xffffffffn, prefix: prefix - 96 } };
  return { ok: true, network: { family, base, prefix } };
}

function networkContains(n: IpNetwork, a: IpAddress): boolean {
  if (n.family !== a.family) return false;
  return (a.value & ~hostMask(BITS[n.family], n.prefix)) === n.base;
}

/** How many addresses the network spans (2^host bits). */
export function networkSize(n: IpNetwork): bigint {
  return 1n << BigInt(BITS[n.family] - n.prefix);
}

/** The address `offset` places into the network, e.g. offset 1 of 10.77.0.0/24 is 10.77.0.1. */
export function addressAt(n: IpNetwork, offset: bigint): IpAddress {
  if (offset < 0n || offset >= networkSize(n)) throw new RangeError(`offset ${offset} is outside ${formatNetwork(n)}`);
  return { family: n.family, value: n.base + offset };
}

export function formatIp(a: IpAddress): string {
  return format(a.family, a.value);
}

export function formatNetwork(n: IpNetwork): string {
  return `${format(n.family, n.base)}/${n.prefix}`;
}

function hostMask(bits: number, prefix: number): bigint {
  return (1n << BigInt(bits - prefix)) - 1n;
}

function v4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6(s: string): bigint {
  let text = s;
  // An embedded IPv4 tail (::ffff:10.0.0.5) is two 16-bit groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const n = v4(tail[1]!);
    text = `${text.slice(0, tail.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (g: string) => (g === '' ? [] : g.split(':'));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function format(family: IpFamily, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((sh) => String((value >> sh) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - i * 16)) & 0xffffn));
  // RFC 5952: the longest run (of at least two) zero groups becomes "::".
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i >= 2) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}

/** True for an address inside any of `networks`; an unparseable address is never inside. */
export function inAnyNetwork(networks: readonly IpNetwork[], address: string): boolean {
  const a = parseIp(address);
  return a !== undefined && networks.some((n) => networkContains(n, a));
}

/** The host part of a URL for a listen address: a wildcard is reached on loopback; IPv6 goes in brackets. */
export function urlHost(address: string): string {
  if (address === '0.0.0.0' || address === '::') return '127.0.0.1';
  return address.includes(':') ? `[${address}]` : address;
}
