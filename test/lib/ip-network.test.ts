import assert from 'node:assert/strict';
import { addressAt, formatIp, formatNetwork, inAnyNetwork, networkSize, parseCidr, parseIp, type IpNetwork } from '../../src/lib';

const net = (s: string): IpNetwork => {
  const r = parseCidr(s);
  if (!r.ok) assert.fail(r.reason);
  return r.network;
};

describe('ip networks', () => {
  it('matches IPv4 and IPv6 addresses against networks', () => {
    const allow = [net('10.0.0.0/8'), net('192.168.1.0/24'), net('fd00::/8')];
    assert.equal(inAnyNetwork(allow, '10.1.2.3'), true);
    assert.equal(inAnyNetwork(allow, '11.0.0.1'), false);
    assert.equal(inAnyNetwork(allow, '192.168.1.255'), true);
    assert.equal(inAnyNetwork(allow, '192.168.2.1'), false);
    assert.equal(inAnyNetwork(allow, 'fd12:3456::1'), true);
    assert.equal(inAnyNetwork(allow, 'fe80::1%eth0'), false);
    assert.equal(inAnyNetwork(allow, 'not an address'), false);
    assert.equal(inAnyNetwork([net('0.0.0.0/0')], '203.0.113.9'), true);
    assert.equal(inAnyNetwork([net('0.0.0.0/0')], '::1'), false, 'an IPv4 network never covers a real IPv6 address');
  });

  it('treats IPv4-mapped IPv6 addresses (what a dual-stack socket reports) as IPv4', () => {
    assert.deepEqual(parseIp('::ffff:10.0.0.5'), parseIp('10.0.0.5'));
    assert.deepEqual(parseIp('::FFFF:0a00:0005'), parseIp('10.0.0.5'));
    assert.equal(inAnyNetwork([net('10.0.0.0/8')], '::ffff:10.9.8.7'), true);
    assert.equal(inAnyNetwork([net('127.0.0.0/8')], '::ffff:127.0.0.1'), true);
    // A mapped network in the allow-list is the IPv4 network it maps.
    assert.equal(formatNetwork(net('::ffff:10.0.0.0/104')), '10.0.0.0/8');
    assert.equal(inAnyNetwork([net('::ffff:10.0.0.0/104')], '10.200.0.1'), true);
  });

  it('refuses malformed networks and host bits with a reason', () => {
    const reason = (s: string) => {
      const r = parseCidr(s);
      assert.equal(r.ok, false, s);
      return r.ok ? '' : r.reason;
    };
    assert.match(reason('10.0.0.1/8'), /host bits set; the network is 10\.0\.0\.0\/8/);
    assert.match(reason('10.0.0.0/33'), /prefix length must be 0-32/);
    assert.match(reason('10.0.0/8'), /not a CIDR network/);
    assert.match(reason('10.0.0.0/8/1'), /not a CIDR network/);
    assert.match(reason('10.0.0.0/x'), /prefix length must be a number/);
    assert.match(reason('fd00::1/8'), /host bits set; the network is fd00::\/8/);
    assert.deepEqual(net('10.1.2.3'), net('10.1.2.3/32'));
  });

  it('formats addresses and walks a network', () => {
    const n = net('10.77.0.0/24');
    assert.equal(networkSize(n), 256n);
    assert.equal(formatIp(addressAt(n, 1n)), '10.77.0.1');
    assert.equal(formatIp(addressAt(n, 254n)), '10.77.0.254');
    assert.throws(() => addressAt(n, 256n), RangeError);
    assert.equal(formatIp(addressAt(net('fd00:77::/64'), 2n)), 'fd00:77::2');
    assert.equal(formatIp(parseIp('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
    assert.equal(formatIp(parseIp('2001:db8::')!), '2001:db8::');
  });
});
