import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

/** An address of this machine other than loopback, if it has one. */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('master: listeners bind to loopback unless told otherwise', () => {
  it('puts the agent listener on 127.0.0.1 when the config names no host, and warns that submission is open', async () => {
    const raw = farmConfigRaw();
    const { host: _h, ...agents } = raw.agents as Record<string, unknown>;
    const farm = await new TestFarm({ ...raw, agents }).start();
    try {
      const url = new URL(farm.addr.agentUrl);
      assert.equal(url.hostname, '127.0.0.1');
      assert.equal(await reachable('127.0.0.1', Number(url.port)), true);
      const other = externalAddress();
      if (other) assert.equal(await reachable(other, Number(url.port)), false, `the agent listener answers on ${other}`);
      const warned = await farm.logs.waitFor((e) => e.event === 'http.open-submit');
      assert.match(String(warned.reason), /anyone who reaches the API may submit builds/);
    } finally {
      await farm.stop();
    }
  });
});
