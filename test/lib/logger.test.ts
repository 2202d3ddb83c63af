import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger, redact, type LogEntry } from '../../src/lib';

const PEM = ['-----BEGIN PRIVATE KEY-----', 'MC4CAQAwBQYDK2VuBCIEIHdwbQpzGKV9PBbBclGyZkXfTC+H', '-----END PRIVATE KEY-----'].join('\n');

describe('logger redaction', () => {
  it('redacts every secret field spillway has, at any depth', () => {
    const out = redact({
      agents: { token: 'tok-1', tokens: ['tok-2', 'tok-3'], host: '10.77.0.1' },
      pools: { p: { agentTokens: ['tok-4'], maxInstances: 2 } },
      adminToken: 'tok-5',
      cas: { tokens: ['tok-6'] },
      peer: { privateKey: 'wg-private', presharedKey: 'wg-psk', publicKey: 'wg-public' },
      tls: { passphrase: 'pass', cert: '/etc/spillway/cert.pem' },
      headers: { authorization: 'Bearer tok-7' },
    });
    const text = JSON.stringify(out);
    for (const secret of ['tok-1', 'tok-2', 'tok-3', 'tok-4', 'tok-5', 'tok-6', 'tok-7', 'wg-private', 'wg-psk', 'pass"']) {
      assert.equal(text.includes(secret), false, `${secret} leaked: ${text}`);
    }
    assert.ok(text.includes('wg-public') && text.includes('10.77.0.1') && text.includes('/etc/spillway/cert.pem'), text);
  });

  it('removes PEM private keys from strings and error messages', () => {
    assert.equal(redact(`bad key file:\n${PEM}\nend`), 'bad key file:\n[redacted private key]\nend');
    const e = redact(new Error(`cannot parse ${PEM}`)) as { message: string };
    assert.equal(e.message, 'cannot parse [redacted private key]');
  });

  it('never writes a secret to the log stream or the sink', () => {
    const stream = new PassThrough();
    let written = '';
    stream.on('data', (b: Buffer) => (written += b.toString()));
    const entries: LogEntry[] = [];
    const log = createLogger({ stream, sink: (e) => entries.push(e) }).child({ component: 'test' });
    log.warn('agent.auth-failed', { token: 'tok-8', config: { agents: { tokens: ['tok-9'] } }, error: new Error(PEM), reason: 'wrong token' });
    const all = written + JSON.stringify(entries);
    assert.ok(written.includes('wrong token'), written);
    for (const secret of ['tok-8', 'tok-9', 'MC4CAQAw']) assert.equal(all.includes(secret), false, `${secret} leaked: ${all}`);
  });
});
