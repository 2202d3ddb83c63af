import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';

/** A WireGuard key pair as `wg genkey` / `wg pubkey` print them: base64 of the raw 32 bytes. */
export interface WireguardKeyPair {
  privateKey: string;
  publicKey: string;
}

/** Random bytes; injected so tests can make keys repeatable. @defaultValue crypto.randomBytes */
export type RandomBytes = (n: number) => Buffer;

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410): node imports raw keys only this way.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * A new private key, clamped as `wg genkey` clamps it (RFC 7748 section 5), and its public key.
 * Clamping changes nothing X25519 computes, but leaves the stored key byte-identical to what
 * WireGuard's own tools would have made.
 */
export function generateKeyPair(random: RandomBytes = randomBytes): WireguardKeyPair {
  const raw = Buffer.from(random(32));
  raw[0]! &= 248;
  raw[31] = (raw[31]! & 127) | 64;
  const privateKey = raw.toString('base64');
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** The public key of a base64 private key, as `wg pubkey` derives it. */
export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(privateKey, 'base64');
  if (raw.length !== 32) throw new RangeError('a WireGuard private key is 32 bytes, base64-encoded');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  // The SPKI encoding ends with the raw 32-byte public key.
  return createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
}

/** A preshared key as `wg genpsk` makes it: 32 random bytes, an extra symmetric layer per peer. */
export function generatePresharedKey(random: RandomBytes = randomBytes): string {
  return Buffer.from(random(32)).toString('base64');
}
