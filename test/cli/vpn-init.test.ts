import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../helpers/farm';

async function vpnInit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const p = spawnCli(['vpn', 'init', ...args], { SPILLWAY_AGENT_TOKEN: '', ...env });
  const { code } = await p.exited;
  return { code, output: p.output() };
}

describe('spillway vpn init', () => {
  it('writes the hub and peer files and prints the agents settings for the master', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'spillway-vpn-cli-')), 'vpn');
    const r = await vpnInit(['--out', out, '--network', '10.77.0.0/28', '--hub-endpoint', 'vpn.example.com:51820', '--peers', '3', '--job-types', 'b2g,android'], {
      SPILLWAY_AGENT_TOKEN: 'pool-token-0123',
    });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /wrote 7 files/);
    assert.match(r.output, /agents:\n {2}listen:\n {4}host: 10\.77\.0\.1\n {2}port: 8081\n {2}allow: \[10\.77\.0\.0\/28\]/);
    assert.equal(statSync(join(out, 'peers/peer-03.user-data.yaml')).mode & 0o777, 0o600);
    assert.equal(r.output.includes('pool-token-0123'), false, 'the token goes into the files, not the terminal');

    const again = await vpnInit(['--out', out, '--hub-endpoint', 'vpn.example.com:51820']);
    assert.equal(again.code, 2);
    assert.match(again.output, /refusing to overwrite existing files \(use --force/);
  });

  it('explains bad input and exits 2', async () => {
    const out = mkdtempSync(join(tmpdir(), 'spillway-vpn-cli-'));
    const bad = await vpnInit(['--out', out, '--network', '10.77.0.0/30', '--hub-endpoint', 'vpn.example.com:51820', '--peers', '4']);
    assert.equal(bad.code, 2);
    assert.match(bad.output, /--peers: 10\.77\.0\.0\/30 has room for 1 peer\(s\) besides the hub, not 4/);
    const cidr = await vpnInit(['--out', out, '--network', '10.77.0.0', '--hub-endpoint', 'x:1', '--network', 'ten/8']);
    assert.equal(cidr.code, 2);
    assert.match(cidr.output, /--network: "ten\/8" is not a CIDR network/);
    const endpoint = await vpnInit(['--out', out, '--hub-endpoint', 'vpn.example.com']);
    assert.match(endpoint.output, /--hub-endpoint: expected HOST:PORT/);
  });
});
