import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { diffieHellman, createPrivateKey, createPublicKey } from 'node:crypto';
import { generateKeyPair, generatePresharedKey, publicKeyOf } from '../../src/vpn';

const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

// RFC 7748, section 6.1 (Curve25519 Diffie-Hellman).
const ALICE = { priv: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', pub: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a' };
const BOB = { priv: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb', pub: 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f' };
const SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

function wgAvailable(): boolean {
  try {
    execFileSync('wg', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('WireGuard keys', () => {
  it('derives the public keys of the RFC 7748 test vector', () => {
    assert.equal(publicKeyOf(b64(ALICE.priv)), b64(ALICE.pub));
    assert.equal(publicKeyOf(b64(BOB.priv)), b64(BOB.pub));
    // And the two derive the vector's shared secret, so the import is X25519 proper.
    const pkcs8 = (hex: string) => createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(hex, 'hex')]), format: 'der', type: 'pkcs8' });
    assert.equal(diffieHellman({ privateKey: pkcs8(ALICE.priv), publicKey: createPublicKey(pkcs8(BOB.priv)) }).toString('hex'), SHARED);
  });

  it('makes 32-byte base64 keys, the private one clamped as wg genkey does', () => {
    const fixed = (n: number) => Buffer.alloc(n, 0xff);
    const k = generateKeyPair(fixed);
    const raw = Buffer.from(k.privateKey, 'base64');
    assert.equal(raw.length, 32);
    assert.equal(raw[0]! & 7, 0);
    assert.equal(raw[31]! & 0x80, 0);
    assert.equal(raw[31]! & 0x40, 0x40);
    assert.equal(Buffer.from(k.publicKey, 'base64').length, 32);
    assert.match(k.privateKey, /^[A-Za-z0-9+/]{43}=$/);
    assert.notEqual(generateKeyPair().privateKey, generateKeyPair().privateKey);
    assert.equal(Buffer.from(generatePresharedKey(), 'base64').length, 32);
    assert.throws(() => publicKeyOf('c2hvcnQ='), /32 bytes/);
  });

  it('agrees with `wg pubkey` when wireguard-tools is installed', function () {
    if (!wgAvailable()) {
      console.log('      skipped: `wg` not found (apt-get install wireguard-tools)');
      return this.skip();
    }
    for (let i = 0; i < 3; i++) {
      const k = generateKeyPair();
      assert.equal(execFileSync('wg', ['pubkey'], { input: `${k.privateKey}\n` }).toString().trim(), k.publicKey);
    }
    // A key made by wg itself is one we read the same way.
    const theirs = execFileSync('wg', ['genkey']).toString().trim();
    assert.equal(publicKeyOf(theirs), execFileSync('wg', ['pubkey'], { input: `${theirs}\n` }).toString().trim());
  });
});
