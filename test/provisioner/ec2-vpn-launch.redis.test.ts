import assert from 'node:assert/strict';
import { userDataTemplate } from '../../src/cli/vpn-command';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from '../../src/config';
import { createLogger, type LogEntry } from '../../src/lib';
import { Ec2Provider, InstanceStore, Provisioner, ProviderError, RuleBook } from '../../src/provisioner';
import { LaunchPeers, publicKeyOf, type HubCommandRunner } from '../../src/vpn';
import { FakeBacklog } from '../fakes/fake-backlog';
import { FakeClock } from '../fakes/fake-clock';
import { FakeEc2 } from '../fakes/fake-ec2';
import { FakeFleet } from '../fakes/fake-fleet';
import { rejection } from '../helpers/rejection';
import { waitUntil } from '../helpers/wait-until';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

const POOL = 'vpn-builders';
const TEMPLATE = userDataTemplate();
const HUB_PUBLIC = publicKeyOf(Buffer.alloc(32, 7).toString('base64'));
const ADD = ['wg', 'set', 'wg-spillway', 'peer', '{publicKey}', 'allowed-ips', '{allowedIps}'];
const REMOVE = ['wg', 'set', 'wg-spillway', 'peer', '{publicKey}', 'remove'];
const signal = new AbortController().signal;

function poolConfig(prefix: string, over: { peerNetwork?: string; maxInstances?: number } = {}): Config {
  return configSchema.parse({
    redis: { url: redisUrl(), keyPrefix: prefix },
    agents: { token: 'agent-token-0123456789' },
    jobTypes: { b2g: { overflow: { pool: POOL } } },
    pools: {
      [POOL]: {
        provider: 'ec2',
        maxInstances: over.maxInstances ?? 8,
        agentTokens: ['pool-token-0123456789abcdef'],
        ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a'] },
        vpn: {
          network: '10.77.0.0/24',
          ...(over.peerNetwork && { peerNetwork: over.peerNetwork }),
          hubEndpoint: 'vpn.example.com:51820',
          hubPublicKey: HUB_PUBLIC,
          hubAddPeer: ADD,
          hubRemovePeer: REMOVE,
        },
      },
    },
  });
}

/** A hub whose commands are recorded; `failing` makes them exit 1. */
class RecordingHub {
  readonly calls: string[][] = [];
  failing = false;
  readonly run: HubCommandRunner = async (argv) => {
    this.calls.push([...argv]);
    return this.failing ? { exitCode: 1, stderr: 'Unable to modify interface: Operation not permitted' } : { exitCode: 0, stderr: '' };
  };
  added(): string[][] {
    return this.calls.filter((c) => c[c.length - 1] !== 'remove');
  }
  removed(): string[][] {
    return this.calls.filter((c) => c[c.length - 1] === 'remove');
  }
}

/** The wg-quick config inside a launch's user-data, parsed as cloud-init would write it. */
function peerOf(userDataBase64: unknown): { address: string; privateKey: string; hubKey: string; masterUrl: string; raw: string } {
  assert.equal(typeof userDataBase64, 'string', 'RunInstances carries UserData');
  const raw = Buffer.from(userDataBase64 as string, 'base64').toString('utf8');
  assert.ok(raw.startsWith('#cloud-config'), 'user-data is a cloud-config');
  const doc = parseYaml(raw) as { write_files: Array<{ path: string; content: string }> };
  const wg = doc.write_files.find((f) => f.path === '/etc/wireguard/wg-spillway.conf')!.content;
  const token = doc.write_files.find((f) => f.path === '/etc/spillway/agent-token')!.content.trim();
  assert.equal(token, 'pool-token-0123456789abcdef', "the pool's agent token");
  const env = doc.write_files.find((f) => f.path === '/etc/spillway/agent.env')!.content;
  return {
    address: /^Address = (.+)\/32$/m.exec(wg)![1]!,
    privateKey: /^PrivateKey = (.+)$/m.exec(wg)![1]!,
    hubKey: /\[Peer\]\nPublicKey = (.+)$/m.exec(wg)![1]!,
    masterUrl: /^SPILLWAY_AGENT_MASTER=(\S+)$/m.exec(env)![1]!,
    raw,
  };
}

describe('provisioner/ec2 VPN pools grow: a peer per launch (EC2 through the SDK middleware, leases in real Redis, recorded hub commands)', function () {
  this.timeout(20_000);
  const disposers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const d of disposers.splice(0).reverse()) await d();
  });

  function farm(o: { peerNetwork?: string; ec2?: FakeEc2; prefix?: string; clock?: FakeClock } = {}) {
    const prefix = o.prefix ?? uniquePrefix('vpn-grow');
    const config = poolConfig(prefix, o);
    const clock = o.clock ?? new FakeClock();
    const ec2 = o.ec2 ?? new FakeEc2(() => clock.now(), 'middleware');
    const logs: LogEntry[] = [];
    const log = createLogger({ silent: true, level: 'debug', sink: (e) => logs.push(e) });
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const hub = new RecordingHub();
    const p = config.pools[POOL]!;
    const peers = new LaunchPeers({
      pool: POOL,
      vpn: p.vpn!,
      userDataTemplate: TEMPLATE,
      agentToken: p.agentTokens[0]!,
      jobTypes: ['b2g'],
      executors: 2,
      redis,
      keyPrefix: prefix,
      run: hub.run,
      clock,
      log,
    });
    // The retrier's pauses pass at once; the leases' clock is the fake one.
    const noWait = { now: () => clock.now(), sleep: async () => {} };
    const provider = new Ec2Provider({ pool: POOL, config: p.ec2!, client: ec2.client, clock: noWait, log, peers, random: () => 0, retry: { attempts: 3 } });
    const leaseKey = `${prefix}:vpn:${POOL}:leases`;
    disposers.push(async () => {
      await redis.quit();
    });
    return { prefix, config, clock, ec2, logs, redis, hub, peers, provider, leaseKey };
  }

  it('launches each instance with its own peer in the user-data, and adds exactly that peer to the hub', async () => {
    const f = farm();
    const machines = await f.provider.launch({ count: 2, clientToken: 'spillway-vpn-builders-launch-1' }, signal);
    assert.equal(machines.length, 2);
    const runs = f.ec2.callsOf('RunInstances');
    assert.equal(runs.length, 2, 'one RunInstances per instance: each needs its own user-data');
    assert.deepEqual(runs.map((r) => [r.input.MinCount, r.input.MaxCount]), [[1, 1], [1, 1]]);
    const peers = runs.map((r) => peerOf(r.input.UserData));
    assert.deepEqual(peers.map((p) => p.address), ['10.77.0.2', '10.77.0.3'], 'the first free addresses after the hub');
    for (const p of peers) {
      assert.equal(p.hubKey, HUB_PUBLIC);
      assert.equal(p.masterUrl, 'ws://10.77.0.1:8081', "the master's agent listener on the hub address");
      assert.ok(Buffer.byteLength(p.raw) <= 16 * 1024);
    }
    assert.notEqual(peers[0]!.privateKey, peers[1]!.privateKey);
    assert.deepEqual(
      f.hub.added(),
      peers.map((p) => ['wg', 'set', 'wg-spillway', 'peer', publicKeyOf(p.privateKey), 'allowed-ips', `${p.address}/32`]),
      'the hub gets the public key that matches the private key in that instance\'s user-data',
    );
    // Where the private key must not be: Redis and the log.
    const stored = JSON.stringify(await f.redis.hgetall(f.leaseKey));
    const logged = JSON.stringify(f.logs);
    for (const p of peers) {
      assert.ok(!stored.includes(p.privateKey), 'no private key in Redis');
      assert.ok(!logged.includes(p.privateKey), 'no private key in the log');
      assert.ok(stored.includes(publicKeyOf(p.privateKey)));
    }
    const leases = Object.fromEntries(Object.entries(await f.redis.hgetall(f.leaseKey)).map(([a, v]) => [a, (JSON.parse(v) as { instanceId: string }).instanceId]));
    assert.deepEqual(leases, { '10.77.0.2': machines[0]!.id, '10.77.0.3': machines[1]!.id });
  });

  it('removes the peer from the hub and frees its address when the instance is terminated (suspend mode terminate, or terminate)', async () => {
    const f = farm();
    const [a, b] = await f.provider.launch({ count: 2, clientToken: 'spillway-vpn-builders-launch-2' }, signal);
    const keyOf = (i: number) => publicKeyOf(peerOf(f.ec2.callsOf('RunInstances')[i]!.input.UserData).privateKey);
    await f.provider.suspend([a!.id], 'terminate', signal);
    assert.deepEqual(f.hub.removed(), [['wg', 'set', 'wg-spillway', 'peer', keyOf(0), 'remove']]);
    await f.provider.terminate([b!.id], signal);
    assert.deepEqual(f.hub.removed().map((c) => c[4]), [keyOf(0), keyOf(1)]);
    assert.deepEqual(await f.redis.hgetall(f.leaseKey), {}, 'both addresses free');
    // A plain stop keeps the peer: the stopped instance keeps its user-data and comes back with it.
    const [c] = await f.provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-3' }, signal);
    assert.equal(peerOf(f.ec2.callsOf('RunInstances')[2]!.input.UserData).address, '10.77.0.2', 'a freed address is handed out again');
    await f.provider.suspend([c!.id], 'stop', signal);
    assert.equal(f.hub.removed().length, 2);
    assert.equal(Object.keys(await f.redis.hgetall(f.leaseKey)).length, 1);
  });

  it('gives the peer of an instance that vanished behind spillway\'s back back at the next listing', async () => {
    const f = farm();
    const [a] = await f.provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-4' }, signal);
    f.ec2.set(a!.id, 'terminated');
    await f.provider.list(signal);
    assert.equal(f.hub.removed().length, 0, 'EC2 listings lag a launch: a fresh lease is kept');
    f.clock.advance(3 * 60_000);
    await f.provider.list(signal);
    assert.equal(f.hub.removed().length, 1);
    assert.deepEqual(await f.redis.hgetall(f.leaseKey), {});
  });

  it('puts the leased peers back on a hub that lost them (restarted from its config file): at the first listing, then every 10 minutes', async () => {
    const f = farm();
    const [a, b] = await f.provider.launch({ count: 2, clientToken: 'spillway-vpn-builders-launch-restore' }, signal);
    const expected = [0, 1].map((i) => {
      const p = peerOf(f.ec2.callsOf('RunInstances')[i]!.input.UserData);
      return ['wg', 'set', 'wg-spillway', 'peer', publicKeyOf(p.privateKey), 'allowed-ips', `${p.address}/32`];
    });
    f.hub.calls.length = 0; // the hub restarts with the peers of its config file only
    await f.provider.list(signal);
    assert.deepEqual([...f.hub.added()].sort(), [...expected].sort(), 'every bound peer is added again, with its own key and address');
    assert.ok(f.logs.some((e) => e.event === 'vpn.peers-restored' && e.peers === 2 && e.failed === 0));
    await f.provider.list(signal);
    assert.equal(f.hub.added().length, 2, 'not at every listing');

    f.ec2.set(b!.id, 'terminated');
    f.clock.advance(10 * 60_000);
    f.hub.failing = true;
    await f.provider.list(signal);
    assert.deepEqual(f.hub.added().slice(2), [expected[0]], "the vanished instance's peer is taken off, not restored");
    assert.ok(f.logs.some((e) => e.event === 'vpn.peers-restored' && e.failed === 1), 'a failed restore is counted');
    assert.ok(f.logs.some((e) => e.event === 'vpn.hub-command-failed' && e.command === 'restore'));
    assert.ok(a);
  });

  it('gives two masters launching at once distinct addresses', async () => {
    const prefix = uniquePrefix('vpn-race');
    const clock = new FakeClock();
    const ec2 = new FakeEc2(() => clock.now(), 'middleware');
    const one = farm({ prefix, clock, ec2 });
    const two = farm({ prefix, clock, ec2 });
    const launched = await Promise.all([
      ...[1, 2, 3].map((i) => one.provider.launch({ count: 1, clientToken: `spillway-a-${i}` }, signal)),
      ...[1, 2, 3].map((i) => two.provider.launch({ count: 1, clientToken: `spillway-b-${i}` }, signal)),
    ]);
    assert.equal(launched.flat().length, 6);
    const addresses = ec2.callsOf('RunInstances').map((r) => peerOf(r.input.UserData).address);
    assert.equal(new Set(addresses).size, 6, `distinct addresses: ${addresses.join(', ')}`);
    assert.equal(Object.keys(await one.redis.hgetall(one.leaseKey)).length, 6);
  });

  it('refuses a launch with a clear reason when the address plan is exhausted, and shows it on the pool', async () => {
    const f = farm({ peerNetwork: '10.77.0.4/31' });
    assert.equal(f.peers.capacity, 2);
    const partial = await f.provider.launch({ count: 3, clientToken: 'spillway-vpn-builders-launch-5' }, signal);
    assert.equal(partial.length, 2, 'what fits is launched');
    assert.equal(f.ec2.callsOf('RunInstances').length, 2);
    const err = await rejection(f.provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-6' }, signal), ProviderError);
    assert.equal(err.disposition, 'fatal');
    assert.match(err.message, /address plan 10\.77\.0\.4\/31 exhausted: all 2 peer addresses are leased/);
    assert.equal(f.ec2.callsOf('RunInstances').length, 2, 'nothing sent to EC2');

    // Through the provisioner: the refusal is the pool's launchError in GET /api/pools.
    const store = new InstanceStore({ redis: f.redis, keyPrefix: f.prefix, clock: f.clock });
    const provisioner = new Provisioner({
      config: f.config,
      redis: f.redis,
      instances: store,
      providers: new Map([[POOL, f.provider]]),
      fleet: new FakeFleet(),
      backlog: new FakeBacklog().set('b2g', 5),
      rules: new RuleBook(f.redis, f.prefix, f.config),
      clock: f.clock,
      log: createLogger({ silent: true }),
      tickMs: 1000,
    });
    disposers.push(async () => {
      await provisioner.stop();
      await store.close();
    });
    provisioner.start();
    await waitUntil(async () => (await provisioner.report())[0]!.launchError !== null, { what: 'a launch refused' });
    const report = (await provisioner.report())[0]!;
    assert.match(report.launchError!, /no VPN peer for the launch: address plan 10\.77\.0\.4\/31 exhausted/);
    assert.equal(f.ec2.callsOf('RunInstances').length, 2);
  });

  it('launches nothing when the hub command fails, and frees the address', async () => {
    const f = farm();
    f.hub.failing = true;
    const err = await rejection(f.provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-7' }, signal), ProviderError);
    assert.equal(err.disposition, 'retry');
    assert.match(err.message, /adding the peer 10\.77\.0\.2 to the hub failed: wg exited 1: Unable to modify interface/);
    assert.equal(f.ec2.callsOf('RunInstances').length, 0);
    assert.deepEqual(await f.redis.hgetall(f.leaseKey), {});
    assert.ok(f.logs.some((e) => e.event === 'vpn.hub-command-failed'));
  });

  it('retries a launch whose answer was lost with the same peer, so EC2 sees the same request and launches once', async () => {
    const f = farm();
    f.ec2.weather = '5xx';
    // RunInstances is processed, its answer lost (every try): the launch fails, retryable.
    const err = await rejection(f.provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-8' }, signal), ProviderError);
    assert.equal(err.disposition, 'retry');
    f.ec2.weather = 'ok';
    const [m] = await f.provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-8' }, signal);
    assert.equal(f.ec2.created().length, 1, 'one instance, not two');
    assert.equal(m!.id, f.ec2.created()[0]!.id);
    const sent = new Set(f.ec2.callsOf('RunInstances').map((c) => c.input.UserData));
    assert.equal(sent.size, 1, 'every try carried the same user-data');
    assert.equal(f.hub.added().length, 1);
  });

  it('refuses a user-data over EC2\'s 16 KiB and takes the peer off the hub again', async () => {
    const f = farm();
    const big = new LaunchPeers({
      pool: POOL,
      vpn: f.config.pools[POOL]!.vpn!,
      userDataTemplate: `${TEMPLATE}\n# ${'x'.repeat(16 * 1024)}\n`,
      agentToken: 'pool-token-0123456789abcdef',
      jobTypes: ['b2g'],
      executors: 1,
      redis: f.redis,
      keyPrefix: f.prefix,
      run: f.hub.run,
      clock: f.clock,
      log: createLogger({ silent: true }),
    });
    const provider = new Ec2Provider({ pool: POOL, config: f.config.pools[POOL]!.ec2!, client: f.ec2.client, clock: f.clock, log: createLogger({ silent: true }), peers: big });
    const err = await rejection(provider.launch({ count: 1, clientToken: 'spillway-vpn-builders-launch-9' }, signal), ProviderError);
    assert.equal(err.disposition, 'fatal');
    assert.match(err.message, /user-data is \d+ bytes; EC2 takes at most 16384 before base64/);
    assert.equal(f.ec2.callsOf('RunInstances').length, 0);
    assert.equal(f.hub.removed().length, 1);
    assert.deepEqual(await f.redis.hgetall(f.leaseKey), {});
  });
});
