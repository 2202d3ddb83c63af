import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config';
import { poolAddresses, renderHubCommand } from '../../src/vpn';
import { configProblems } from '../helpers/config-problems';

const HUB_KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

function withVpn(vpn: Record<string, unknown>, pool: Record<string, unknown> = {}) {
  return {
    agents: { token: 'agent-token-0123456789' },
    jobTypes: { b2g: { overflow: { pool: 'vpn' } } },
    pools: {
      vpn: {
        provider: 'ec2',
        maxInstances: 4,
        ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a'] },
        vpn: {
          network: '10.77.0.0/24',
          hubEndpoint: 'vpn.example.com:51820',
          hubPublicKey: HUB_KEY,
          hubAddPeer: ['wg', 'set', 'wg0', 'peer', '{publicKey}', 'allowed-ips', '{allowedIps}'],
          hubRemovePeer: ['wg', 'set', 'wg0', 'peer', '{publicKey}', 'remove'],
          ...vpn,
        },
        ...pool,
      },
    },
  };
}

describe('vpn: a growing pool\'s config and hub commands', () => {
  it('accepts the documented section and fills the defaults', () => {
    const c = parseConfig(withVpn({}), {});
    assert.equal(c.pools.vpn!.vpn!.agentPort, 8081);
    assert.equal(c.pools.vpn!.vpn!.hubCommandTimeoutMs, 15_000);
  });

  it('reports every problem at once: unknown placeholders, a shell string, a bad key, a range outside the network, a local pool', () => {
    const problems = configProblems(() =>
      parseConfig(
        withVpn(
          {
            hubAddPeer: ['sh -c "wg set wg0 peer {publicKey} allowed-ips {ip}"'],
            hubRemovePeer: [],
            hubPublicKey: 'not-a-key',
            peerNetwork: '10.78.0.0/28',
          },
          { provider: 'local', ec2: undefined },
        ),
        {},
      ),
    ).join('\n');
    assert.match(problems, /pools\.vpn\.vpn\.hubAddPeer\.0: unknown placeholder \{ip\}/);
    assert.match(problems, /pools\.vpn\.vpn\.hubRemovePeer: the hubRemovePeer command's argv/);
    assert.match(problems, /pools\.vpn\.vpn\.hubPublicKey: expected a WireGuard public key/);
    assert.match(problems, /pools\.vpn\.vpn\.peerNetwork: must lie inside network 10\.77\.0\.0\/24/);
    assert.match(problems, /pools\.vpn\.vpn: only for provider "ec2"/);
  });

  it('fills each argument on its own: a hostile value never becomes another argument', () => {
    const argv = renderHubCommand(['wg', 'set', 'wg0', 'peer', '{publicKey}', 'allowed-ips', '{allowedIps}'], {
      publicKey: 'k; rm -rf / --',
      address: '10.77.0.2',
      allowedIps: '10.77.0.2/32 $(reboot)',
      pool: 'p',
      instanceId: '',
    });
    assert.deepEqual(argv, ['wg', 'set', 'wg0', 'peer', 'k; rm -rf / --', 'allowed-ips', '10.77.0.2/32 $(reboot)']);
  });

  it('plans addresses after the hub, inside the peer range, without the broadcast address', () => {
    assert.deepEqual(poolAddresses('10.77.0.0/29').peers, ['10.77.0.2', '10.77.0.3', '10.77.0.4', '10.77.0.5', '10.77.0.6']);
    assert.deepEqual(poolAddresses('10.77.0.0/24', '10.77.0.252/30'), { hub: '10.77.0.1', peers: ['10.77.0.252', '10.77.0.253', '10.77.0.254'] });
    assert.deepEqual(poolAddresses('10.77.0.0/24', '10.77.0.0/31').peers, [], 'network address and hub only');
    assert.deepEqual(poolAddresses('fd00:77::/126').peers, ['fd00:77::2', 'fd00:77::3']);
  });
});
