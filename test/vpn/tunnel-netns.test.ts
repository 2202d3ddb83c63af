import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { userDataTemplate } from '../../src/cli/vpn-command';
import { vpnFiles } from '../../src/vpn';
import { CLI } from '../helpers/farm';
import { NetnsLab, whyNoNetns as whyNot } from '../helpers/netns';

const TOKEN = 'netns-agent-token-0123';
const AGENT_PORT = 8081;

/**
 * Three namespaces: "hub" (the master's side, with redis and the WireGuard hub), "cloud" (a
 * VPC instance: its only way to the master is the tunnel) and "outside" (a host on a network
 * that can reach the hub's address but is not in the allow-list). The WireGuard configs are
 * the ones `spillway vpn init` generates, run by wireguard-go.
 */
describe('VPN-only agents through a real WireGuard tunnel (network namespaces)', function () {
  this.timeout(20_000);
  const id = randomBytes(3).toString('hex');
  const ns = { hub: `swhub-${id}`, cloud: `swcld-${id}`, outside: `swout-${id}` };
  const wg = { hub: `swwh${id}`, cloud: `swwc${id}` };
  const lab = new NetnsLab();
  const ip = lab.ip.bind(lab);
  const inNs = lab.inNs.bind(lab);

  before(function () {
    const reason = whyNot();
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
  });

  after(() => lab.tearDown());

  it('registers a cloud agent that reaches the master only through the tunnel, and refuses a peer outside the allow-list', async () => {
    lab.setUp('spillway-netns-', Object.values(ns));
    // Underlay links: hub <-> cloud (the only path the VPC has), hub <-> outside.
    lab.link(ns.hub, `swvc${id}`, '192.0.2.1/24', ns.cloud, `swvh${id}`, '192.0.2.2/24');
    lab.link(ns.hub, `swvo${id}`, '198.51.100.1/24', ns.outside, `swvx${id}`, '198.51.100.2/24');
    // The outside host can route to the tunnel network; only the allow-list keeps it out.
    ip('-n', ns.outside, 'route', 'add', '10.77.0.0/24', 'via', '198.51.100.1');

    const template = userDataTemplate();
    const { files } = vpnFiles({ network: '10.77.0.0/24', hubEndpoint: '192.0.2.1:51820', peers: 1, jobTypes: ['b2g'] }, template);
    await lab.tunnel(ns.hub, wg.hub, files.find((f) => f.path === 'hub/wg-spillway.conf')!.content, '10.77.0.1/24');
    await lab.tunnel(ns.cloud, wg.cloud, files.find((f) => f.path === 'peers/peer-01.conf')!.content, '10.77.0.2/32');
    ip('-n', ns.cloud, 'route', 'add', '10.77.0.0/24', 'dev', wg.cloud);

    const master = await lab.startMaster(ns.hub, CLI, { host: '10.77.0.1', port: AGENT_PORT, token: TOKEN, allow: ['10.77.0.0/24'] });

    // The cloud instance: the master's VPN address answers through the tunnel...
    const agent = lab.start(ns.cloud, [process.execPath, CLI, 'agent', '--master', `ws://10.77.0.1:${AGENT_PORT}`, '--name', 'cloud-1', '--location', 'cloud', '--job-types', 'b2g', '--token', TOKEN, '--isolation', 'off']);
    const registered = JSON.parse((await master.waitFor(/\{[^\n]*"event":"agent\.registered"[^\n]*\}/))[0]) as { agent: string; address: string };
    assert.equal(registered.agent, 'cloud-1');
    assert.equal(registered.address, '10.77.0.2', 'the master sees the peer by its tunnel address');
    await agent.waitFor(/"event":"agent\.welcomed"/);
    assert.match(inNs(ns.hub, 'wg', 'show', wg.hub, 'latest-handshakes'), /\t[1-9]\d*\n/, 'a WireGuard handshake happened');
    // ...and the hub's underlay address does not: the listener is bound to the VPN address only.
    assert.equal(await dial(ns.cloud, '192.0.2.1'), 'ECONNREFUSED');

    // A host outside the allow-list reaches the listener's address but is cut off at once, logged with its address.
    assert.equal(await dial(ns.outside, '10.77.0.1'), 'closed without a response');
    const refused = JSON.parse((await master.waitFor(/\{[^\n]*"event":"agent\.refused"[^\n]*\}/))[0]) as { address: string };
    assert.equal(refused.address, '198.51.100.2');
  });

  /** Sends a websocket upgrade request from inside `n`; says what came back. */
  async function dial(n: string, host: string): Promise<string> {
    const script = `
      const s = require('net').connect(${AGENT_PORT}, '${host}');
      let got = '';
      s.setTimeout(3000, () => { console.log('timeout'); process.exit(0); });
      s.on('connect', () => s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n'));
      s.on('data', (d) => (got += d));
      s.on('error', (e) => { console.log(e.code === 'ECONNRESET' ? 'closed without a response' : e.code); process.exit(0); });
      s.on('close', () => { console.log(got ? got.split('\\r\\n')[0] : 'closed without a response'); process.exit(0); });`;
    const p = lab.start(n, [process.execPath, '-e', script]);
    await new Promise((r) => p.child.once('exit', r));
    return p.output.trim();
  }
});
