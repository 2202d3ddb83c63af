import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../../src/lib';
import { userDataTemplate } from '../../src/cli/vpn-command';
import { FilesExistError, planAddresses, publicKeyOf, vpnFiles, withAgentUnit, writeVpnFiles, type VpnInitOptions } from '../../src/vpn';

const TEMPLATE = userDataTemplate();
const AGENT_UNIT = readFileSync(resolve(__dirname, '../../../deploy/spillway-agent.service'), 'utf8');
const OPTIONS: VpnInitOptions = { network: '10.77.0.0/24', hubEndpoint: 'vpn.example.com:51820', peers: 2, jobTypes: ['b2g'], agentToken: 'pool-token-0123' };

const problemsOf = (o: Partial<VpnInitOptions>): readonly string[] => {
  try {
    vpnFiles({ ...OPTIONS, ...o }, TEMPLATE);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  return assert.fail('expected a ConfigError');
};

/** `Key = value` lines of one section kind, in order. */
function sections(conf: string, name: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  let cur: Record<string, string> | undefined;
  for (const line of conf.split('\n')) {
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) {
      cur = head[1] === name ? {} : undefined;
      if (cur) out.push(cur);
    }
    const kv = /^(\w+) = (.+)$/.exec(line);
    if (kv && cur) cur[kv[1]!] = kv[2]!;
  }
  return out;
}

describe('vpn init', () => {
  it('plans the hub on the first address and peers after it, within the network', () => {
    const r = planAddresses('10.77.0.0/29', 5);
    assert.deepEqual(r.ok && r.plan, { network: '10.77.0.0/29', hub: '10.77.0.1', peers: ['10.77.0.2', '10.77.0.3', '10.77.0.4', '10.77.0.5', '10.77.0.6'] });
    const v6 = planAddresses('fd00:77::/120', 2);
    assert.deepEqual(v6.ok && v6.plan.peers, ['fd00:77::2', 'fd00:77::3']);
  });

  it('refuses a bad network, an endpoint without a port and more peers than the network holds', () => {
    assert.deepEqual(problemsOf({ network: '10.77.0.0/33' }), ['--network: "10.77.0.0/33": the prefix length must be 0-32']);
    assert.deepEqual(problemsOf({ network: '10.77.0.1/24' }), ['--network: "10.77.0.1/24" has host bits set; the network is 10.77.0.0/24']);
    assert.deepEqual(problemsOf({ network: '10.77.0.0/29', peers: 6 }), ['--peers: 10.77.0.0/29 has room for 5 peer(s) besides the hub, not 6']);
    assert.deepEqual(problemsOf({ network: '10.77.0.0/31' }), ['--peers: 10.77.0.0/31 has room for 0 peer(s) besides the hub, not 2']);
    const p = problemsOf({ hubEndpoint: 'vpn.example.com', jobTypes: ['bad type'] });
    assert.ok(p.includes('--hub-endpoint: expected HOST:PORT, e.g. vpn.example.com:51820'), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('--job-types')), p.join('\n'));
    assert.deepEqual(problemsOf({ hubEndpoint: 'vpn.example.com:70000' }), ['--hub-endpoint: the port must be 1-65535']);
  });

  it('makes hub and peer configs that name each other, with the build network only', () => {
    const { files } = vpnFiles(OPTIONS, TEMPLATE);
    assert.deepEqual(
      files.map((f) => [f.path, f.mode]),
      [
        ['hub/wg-spillway.conf', 0o600],
        ['peers/peer-01.conf', 0o600],
        ['peers/peer-01.user-data.yaml', 0o600],
        ['peers/peer-02.conf', 0o600],
        ['peers/peer-02.user-data.yaml', 0o600],
      ],
    );
    const hub = files[0]!.content;
    const [hubIface] = sections(hub, 'Interface');
    assert.equal(hubIface!.Address, '10.77.0.1/24');
    assert.equal(hubIface!.ListenPort, '51820');
    const hubPeers = sections(hub, 'Peer');
    assert.deepEqual(hubPeers.map((p) => p.AllowedIPs), ['10.77.0.2/32', '10.77.0.3/32']);
    for (const [i, path] of ['peers/peer-01.conf', 'peers/peer-02.conf'].entries()) {
      const conf = files.find((f) => f.path === path)!.content;
      const [iface] = sections(conf, 'Interface');
      const [peer] = sections(conf, 'Peer');
      assert.equal(iface!.Address, `10.77.0.${i + 2}/32`);
      assert.equal(publicKeyOf(iface!.PrivateKey!), hubPeers[i]!.PublicKey, 'the hub knows this peer by its public key');
      assert.equal(peer!.PublicKey, publicKeyOf(hubIface!.PrivateKey!));
      assert.equal(peer!.PresharedKey, hubPeers[i]!.PresharedKey);
      assert.equal(peer!.AllowedIPs, '10.77.0.0/24');
      assert.equal(peer!.Endpoint, 'vpn.example.com:51820');
    }
  });

  it('renders user-data that is valid cloud-config carrying the tunnel and the agent unit', () => {
    const { files } = vpnFiles(OPTIONS, TEMPLATE);
    const text = files.find((f) => f.path === 'peers/peer-02.user-data.yaml')!.content;
    assert.match(text, /^#cloud-config\n/);
    const doc = parse(text) as { write_files: Array<{ path: string; content: string; permissions: string }>; runcmd: string[][] };
    const file = (p: string) => doc.write_files.find((f) => f.path === p)!;
    assert.equal(file('/etc/wireguard/wg-spillway.conf').content, files.find((f) => f.path === 'peers/peer-02.conf')!.content);
    assert.equal(file('/etc/wireguard/wg-spillway.conf').permissions, '0600');
    assert.equal(file('/etc/spillway/agent-token').content, 'pool-token-0123\n');
    assert.equal(file('/etc/spillway/agent-token').permissions, '0600');
    // The very unit on-prem agents run (deploy/spillway-agent.service), byte for byte.
    const unit = file('/etc/systemd/system/spillway-agent.service').content;
    assert.equal(unit, AGENT_UNIT);
    assert.equal(file('/etc/systemd/system/spillway-agent.service.d/wireguard.conf').content, '[Unit]\nRequires=wg-quick@wg-spillway.service\nAfter=wg-quick@wg-spillway.service\n');
    const env = file('/etc/spillway/agent.env');
    assert.equal(
      env.content,
      'SPILLWAY_AGENT_MASTER=ws://10.77.0.1:8081\nSPILLWAY_AGENT_LOCATION=cloud\nSPILLWAY_AGENT_JOB_TYPES=b2g\nSPILLWAY_AGENT_EXECUTORS=1\n' +
        'SPILLWAY_AGENT_ARGS=--instance-id imds --build-user nobody\n',
    );
    assert.equal(env.permissions, '0644');
    // The token reaches the agent through the root-only file (a systemd credential), never its environment or argv.
    assert.match(unit, /^LoadCredential=agent-token:\/etc\/spillway\/agent-token$/m);
    assert.match(unit, /--token-file %d\/agent-token /);
    assert.doesNotMatch(unit + env.content, /pool-token-0123|SPILLWAY_AGENT_TOKEN/);
    // The agent is named after the instance once cloud-init knows its id, before the unit starts.
    const naming = doc.runcmd.findIndex((c) => c.join(' ').includes('SPILLWAY_AGENT_NAME=$(cat /var/lib/cloud/data/instance-id)'));
    assert.ok(naming >= 0 && naming < doc.runcmd.length - 1, 'the name is written before the agent starts');
    assert.deepEqual(doc.runcmd.at(-1), ['systemctl', 'enable', '--now', 'spillway-agent.service']);
  });

  it('the agent unit goes in with its indentation, and a template without the placeholder is refused', () => {
    assert.equal(withAgentUnit('a:\n  b: |\n    {{agentUnit}}\nc: 1', '[Unit]\n\nX=${Y} %d\n'), 'a:\n  b: |\n    [Unit]\n\n    X=${Y} %d\nc: 1');
    assert.throws(() => withAgentUnit('no placeholder', '[Unit]\n'), /no \{\{agentUnit\}\} placeholder/);
    assert.throws(() => withAgentUnit('{{agentUnit}}', 'X={{masterUrl}}\n'), /must not contain/);
  });

  it('writes private files 0600 and never overwrites without force', () => {
    const out = mkdtempSync(join(tmpdir(), 'spillway-vpn-'));
    const { files } = vpnFiles({ ...OPTIONS, peers: 1 }, TEMPLATE);
    writeVpnFiles(out, files);
    assert.equal(statSync(join(out, 'hub/wg-spillway.conf')).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, 'peers')).mode & 0o777, 0o700);
    const before = readFileSync(join(out, 'hub/wg-spillway.conf'), 'utf8');
    const again = vpnFiles({ ...OPTIONS, peers: 1 }, TEMPLATE).files;
    assert.throws(() => writeVpnFiles(out, again), (err: unknown) => err instanceof FilesExistError && err.paths.length === 3);
    assert.equal(readFileSync(join(out, 'hub/wg-spillway.conf'), 'utf8'), before, 'nothing was written');
    writeFileSync(join(out, 'peers/peer-01.conf'), 'old', { mode: 0o644 });
    writeVpnFiles(out, again, { force: true });
    assert.notEqual(readFileSync(join(out, 'hub/wg-spillway.conf'), 'utf8'), before);
    assert.equal(statSync(join(out, 'peers/peer-01.conf')).mode & 0o777, 0o600, 'a replaced file gets 0600 too');
  });
});
