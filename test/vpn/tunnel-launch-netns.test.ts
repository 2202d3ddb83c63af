import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { createLogger } from '../../src/lib';
import { Ec2Provider } from '../../src/provisioner';
import { generateKeyPair, hubConfig, LaunchPeers, runHubCommand } from '../../src/vpn';
import { FakeEc2 } from '../fakes/fake-ec2';
import { userDataTemplate } from '../../src/cli/vpn-command';
import { CLI } from '../helpers/farm';
import { NetnsLab, whyNoNetns } from '../helpers/netns';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

const TOKEN = 'netns-launch-token-0123';
const AGENT_PORT = 8081;

/**
 * One peer a VPN pool launches, end to end: the hub starts with no peers; a launch through the
 * EC2 provider (EC2 faked at the SDK's middleware) adds the new peer to the real hub with the
 * configured `wg set` command; the user-data sent with RunInstances is all the "instance" gets:
 * its WireGuard config brings up the tunnel and its agent settings connect the agent through
 * it. Terminating the instance takes the peer off the hub.
 */
describe('a launched VPN peer through a real WireGuard tunnel (network namespaces)', function () {
  this.timeout(25_000);
  const id = randomBytes(3).toString('hex');
  const ns = { hub: `swlh-${id}`, cloud: `swlc-${id}` };
  const wg = { hub: `swlwh${id}`, cloud: `swlwc${id}` };
  const lab = new NetnsLab();
  const closers: Array<() => Promise<unknown>> = [];
  const inNs = lab.inNs.bind(lab);

  before(function () {
    const reason = whyNoNetns();
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
  });

  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await lab.tearDown();
  });

  it('adds the launched peer to the hub, and the user-data alone brings the agent up through the tunnel; terminate removes it', async () => {
    lab.setUp('spillway-netns-launch-', Object.values(ns));
    lab.link(ns.hub, `swlv${id}`, '192.0.2.1/24', ns.cloud, `swlx${id}`, '192.0.2.2/24');

    const hubKeys = generateKeyPair();
    await lab.tunnel(ns.hub, wg.hub, hubConfig({ address: '10.77.0.1', prefix: 24, listenPort: 51820, keys: hubKeys, peers: [] }), '10.77.0.1/24');
    assert.equal(inNs(ns.hub, 'wg', 'show', wg.hub, 'peers').trim(), '', 'the hub starts without peers');

    const master = await lab.startMaster(ns.hub, CLI, { host: '10.77.0.1', port: AGENT_PORT, token: TOKEN, allow: ['10.77.0.0/24'] });

    // The provider side, as a master with a VPN pool runs it: leases in Redis, the real hub command.
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    closers.push(() => redis.quit());
    const log = createLogger({ silent: true });
    const peers = new LaunchPeers({
      pool: 'vpn-builders',
      vpn: {
        network: '10.77.0.0/24',
        hubEndpoint: '192.0.2.1:51820',
        hubPublicKey: hubKeys.publicKey,
        agentPort: AGENT_PORT,
        hubAddPeer: ['ip', 'netns', 'exec', ns.hub, 'wg', 'set', wg.hub, 'peer', '{publicKey}', 'allowed-ips', '{allowedIps}'],
        hubRemovePeer: ['ip', 'netns', 'exec', ns.hub, 'wg', 'set', wg.hub, 'peer', '{publicKey}', 'remove'],
        hubCommandTimeoutMs: 10_000,
      },
      userDataTemplate: userDataTemplate(),
      agentToken: TOKEN,
      jobTypes: ['b2g'],
      executors: 1,
      redis,
      keyPrefix: uniquePrefix('netns-launch'),
      run: runHubCommand,
      clock: { now: () => Date.now() },
      log,
    });
    const ec2 = new FakeEc2(() => Date.now(), 'middleware');
    const provider = new Ec2Provider({
      pool: 'vpn-builders',
      config: { region: 'eu-west-1', launchTemplate: { name: 'builder', version: '$Latest' }, subnetIds: ['subnet-a'], instanceTypes: [], spot: false, spotFallbackToOnDemand: true, tags: {} },
      client: ec2.client,
      clock: { now: () => Date.now(), sleep: async () => {} },
      log,
      peers,
    });
    const signal = new AbortController().signal;
    const [instance] = await provider.launch({ count: 1, clientToken: `spillway-netns-${id}` }, signal);
    const hubPeers = inNs(ns.hub, 'wg', 'show', wg.hub, 'allowed-ips');
    assert.match(hubPeers, /^\S+\t10\.77\.0\.2\/32$/m, `the hub has the launched peer: ${hubPeers}`);

    // The "instance": nothing but the user-data RunInstances carried.
    const userData = Buffer.from(ec2.callsOf('RunInstances')[0]!.input.UserData as string, 'base64').toString('utf8');
    const files = (parseYaml(userData) as { write_files: Array<{ path: string; content: string }> }).write_files;
    const file = (path: string) => files.find((f) => f.path === path)!.content;
    const wgConf = file('/etc/wireguard/wg-spillway.conf');
    const address = /^Address = (\S+)$/m.exec(wgConf)![1]!;
    await lab.tunnel(ns.cloud, wg.cloud, wgConf, address);
    lab.ip('-n', ns.cloud, 'route', 'add', /^AllowedIPs = (\S+)$/m.exec(wgConf)![1]!, 'dev', wg.cloud);
    const env = file('/etc/spillway/agent.env');
    const masterUrl = /^SPILLWAY_AGENT_MASTER=(\S+)$/m.exec(env)![1]!;
    const jobTypes = /^SPILLWAY_AGENT_JOB_TYPES=(\S+)$/m.exec(env)![1]!;
    const agent = lab.start(ns.cloud, [
      process.execPath, CLI, 'agent', '--master', masterUrl, '--name', instance!.id, '--location', 'cloud',
      '--job-types', jobTypes, '--token', file('/etc/spillway/agent-token').trim(), '--isolation', 'off',
    ]);
    const registered = JSON.parse((await master.waitFor(/\{[^\n]*"event":"agent\.registered"[^\n]*\}/))[0]) as { agent: string; address: string };
    assert.equal(registered.agent, instance!.id);
    assert.equal(registered.address, '10.77.0.2', 'the agent came through the tunnel from its leased address');
    await agent.waitFor(/"event":"agent\.welcomed"/);
    await agent.stop();

    await provider.terminate([instance!.id], signal);
    assert.equal(inNs(ns.hub, 'wg', 'show', wg.hub, 'peers').trim(), '', 'terminating the instance took its peer off the hub');
  });
});
