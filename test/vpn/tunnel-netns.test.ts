import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { userDataTemplate } from '../../src/cli/vpn-command';
import { vpnFiles } from '../../src/vpn';
import { CLI } from '../helpers/farm';
import { NsProcess, whyNoNetns as whyNot } from '../helpers/netns';

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
  const procs: NsProcess[] = [];
  let dir = '';

  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const inNs = (n: string, ...argv: string[]) => execFileSync('ip', ['netns', 'exec', n, ...argv], { stdio: 'pipe' }).toString();
  const start = (n: string, argv: string[], env?: Record<string, string>) => {
    const p = new NsProcess(n, argv, env);
    procs.push(p);
    return p;
  };

  before(function () {
    const reason = whyNot();
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
  });

  after(async () => {
    // Every path, including a failed setup: processes first (they hold the tun devices), then
    // the namespaces, which take their veths and remaining links with them.
    // Newest first: the agent drains while its master is still there to hear it.
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    for (const n of Object.values(ns)) {
      try {
        ip('netns', 'del', n);
      } catch {
        // never created
      }
    }
    for (const w of Object.values(wg)) rmSync(`/var/run/wireguard/${w}.sock`, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('registers a cloud agent that reaches the master only through the tunnel, and refuses a peer outside the allow-list', async () => {
    dir = mkdtempSync(join(tmpdir(), 'spillway-netns-'));
    for (const n of Object.values(ns)) {
      ip('netns', 'add', n);
      ip('-n', n, 'link', 'set', 'lo', 'up');
    }
    // Underlay links: hub <-> cloud (the only path the VPC has), hub <-> outside.
    const link = (a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string) => {
      ip('link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b);
      ip('-n', a, 'addr', 'add', aAddr, 'dev', aIf);
      ip('-n', b, 'addr', 'add', bAddr, 'dev', bIf);
      ip('-n', a, 'link', 'set', aIf, 'up');
      ip('-n', b, 'link', 'set', bIf, 'up');
    };
    link(ns.hub, `swvc${id}`, '192.0.2.1/24', ns.cloud, `swvh${id}`, '192.0.2.2/24');
    link(ns.hub, `swvo${id}`, '198.51.100.1/24', ns.outside, `swvx${id}`, '198.51.100.2/24');
    // The outside host can route to the tunnel network; only the allow-list keeps it out.
    ip('-n', ns.outside, 'route', 'add', '10.77.0.0/24', 'via', '198.51.100.1');

    const template = userDataTemplate();
    const { files } = vpnFiles({ network: '10.77.0.0/24', hubEndpoint: '192.0.2.1:51820', peers: 1, jobTypes: ['b2g'] }, template);
    const tunnel = async (n: string, iface: string, conf: string, address: string) => {
      // Verbose, because only then does wireguard-go say when its control socket is ready.
      const p = start(n, ['wireguard-go', '-f', iface], { LOG_LEVEL: 'verbose' });
      await p.waitFor(/UAPI listener started/);
      const path = join(dir, `${iface}.conf`);
      writeFileSync(path, conf, { mode: 0o600 });
      // wg-quick's own parser turns the config into what `wg setconf` takes (no Address line).
      writeFileSync(`${path}.wg`, inNs(n, 'wg-quick', 'strip', path), { mode: 0o600 });
      inNs(n, 'wg', 'setconf', iface, `${path}.wg`);
      ip('-n', n, 'addr', 'add', address, 'dev', iface);
      ip('-n', n, 'link', 'set', iface, 'up');
    };
    await tunnel(ns.hub, wg.hub, files.find((f) => f.path === 'hub/wg-spillway.conf')!.content, '10.77.0.1/24');
    await tunnel(ns.cloud, wg.cloud, files.find((f) => f.path === 'peers/peer-01.conf')!.content, '10.77.0.2/32');
    ip('-n', ns.cloud, 'route', 'add', '10.77.0.0/24', 'dev', wg.cloud);

    const redis = start(ns.hub, ['redis-server', '--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
    await redis.waitFor(/Ready to accept connections/);
    const configFile = join(dir, 'master.yaml');
    writeFileSync(
      configFile,
      stringify({
        redis: { url: 'redis://127.0.0.1:6379' },
        http: { host: '127.0.0.1', port: 0 },
        agents: { host: '10.77.0.1', port: AGENT_PORT, token: TOKEN, allow: ['10.77.0.0/24'], heartbeatSec: 1 },
        jobTypes: { b2g: {} },
      }),
    );
    const master = start(ns.hub, [process.execPath, CLI, 'master', '--config', configFile]);
    await master.waitFor(/agents connect to ws:\/\/10\.77\.0\.1:8081/);

    // The cloud instance: the master's VPN address answers through the tunnel...
    const agent = start(ns.cloud, [process.execPath, CLI, 'agent', '--master', `ws://10.77.0.1:${AGENT_PORT}`, '--name', 'cloud-1', '--location', 'cloud', '--job-types', 'b2g', '--token', TOKEN, '--isolation', 'off']);
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
    const p = start(n, [process.execPath, '-e', script]);
    await new Promise((r) => p.child.once('exit', r));
    return p.output.trim();
  }
});
