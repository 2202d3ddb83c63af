import { strict as assert } from 'node:assert';
import { parse as parseYaml } from 'yaml';
import { publicKeyOf, type HubCommandRunner } from '../../src/vpn';
import { FakeEc2 } from '../fakes/fake-ec2';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { waitUntil } from '../helpers/wait-until';

const HUB_PUBLIC = publicKeyOf(Buffer.alloc(32, 9).toString('base64'));

describe('spillway master with a growing VPN pool: a backlog launches an instance with its own peer (composition root wiring)', () => {
  let farm: TestFarm;
  let ec2: FakeEc2;
  const hubCalls: string[][] = [];
  const run: HubCommandRunner = async (argv) => {
    hubCalls.push([...argv]);
    return { exitCode: 0, stderr: '' };
  };

  before(async () => {
    ec2 = new FakeEc2(() => Date.now(), 'middleware');
    farm = await new TestFarm(
      farmConfigRaw({
        jobTypes: { b2g: { overflow: { pool: 'vpn' } } },
        pools: {
          vpn: {
            provider: 'ec2',
            maxInstances: 2,
            executorsPerInstance: 3,
            agentTokens: ['vpn-pool-token-0123456789'],
            ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a'] },
            vpn: {
              network: '10.77.0.0/24',
              peerNetwork: '10.77.0.64/26',
              hubEndpoint: 'vpn.example.com:51820',
              hubPublicKey: HUB_PUBLIC,
              hubAddPeer: ['ssh', 'hub', 'wg', 'set', 'wg-spillway', 'peer', '{publicKey}', 'allowed-ips', '{allowedIps}'],
              hubRemovePeer: ['ssh', 'hub', 'wg', 'set', 'wg-spillway', 'peer', '{publicKey}', 'remove'],
            },
          },
        },
      }),
      { ec2Client: () => ec2.client, runHubCommand: run },
    ).start();
  });
  after(async () => {
    await farm.stop();
    ec2.restore();
  });

  it('renders the shipped cloud-init for the peer, with the pool token, job types and executors, and runs the configured hub command', async () => {
    await farm.submit({ type: 'b2g', argv: ['true'] });
    await waitUntil(() => ec2.created().length === 1, { what: 'a launch', timeoutMs: 10_000 });
    const run = ec2.callsOf('RunInstances').find((c) => c.error === undefined)!;
    const userData = Buffer.from(run.input.UserData as string, 'base64').toString('utf8');
    const files = (parseYaml(userData) as { write_files: Array<{ path: string; content: string }> }).write_files;
    const wg = files.find((f) => f.path === '/etc/wireguard/wg-spillway.conf')!.content;
    assert.match(wg, /^Address = 10\.77\.0\.64\/32$/m, 'the first address of peerNetwork');
    const privateKey = /^PrivateKey = (\S+)$/m.exec(wg)![1]!;
    assert.equal(files.find((f) => f.path === '/etc/spillway/agent-token')!.content.trim(), 'vpn-pool-token-0123456789');
    // The agent unit on-prem agents run, with this instance's part in the file it reads.
    const unit = files.find((f) => f.path === '/etc/systemd/system/spillway-agent.service')!.content;
    assert.match(unit, /--master \$\{SPILLWAY_AGENT_MASTER\} /);
    const env = files.find((f) => f.path === '/etc/spillway/agent.env')!.content;
    assert.match(env, /^SPILLWAY_AGENT_MASTER=ws:\/\/10\.77\.0\.1:8081$/m);
    assert.match(env, /^SPILLWAY_AGENT_JOB_TYPES=b2g$/m);
    assert.match(env, /^SPILLWAY_AGENT_EXECUTORS=3$/m);
    assert.deepEqual(hubCalls, [['ssh', 'hub', 'wg', 'set', 'wg-spillway', 'peer', publicKeyOf(privateKey), 'allowed-ips', '10.77.0.64/32']]);
    const pools = await farm.api<{ pools: Array<{ name: string; launchError: string | null }> }>('/api/pools');
    assert.equal(pools.pools.find((p) => p.name === 'vpn')!.launchError, null);
    assert.ok(!farm.logs.entries.some((e) => JSON.stringify(e).includes(privateKey)), 'the private key is in no log line');
  });
});
