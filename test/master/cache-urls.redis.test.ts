import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const TOKEN = 'cas-token-0123456789';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The cas section of config/example.yaml, as a user copies it, with a dir and a token. */
function exampleCas(dir: string): Record<string, unknown> {
  const example = parse(readFileSync(resolve(__dirname, '../../../config/example.yaml'), 'utf8')) as { cas: Record<string, unknown> };
  return { ...example.cas, dir, tokens: [TOKEN] };
}

describe('master: the build cache at the README URLs, byte for byte, never a corrupt 200', () => {
  let farm: TestFarm;
  let dir: string;
  // Bazel's --remote_cache=http://ci:TOKEN@MASTER/cache sends Basic with the token as password.
  const auth = { authorization: `Basic ${Buffer.from(`ci:${TOKEN}`).toString('base64')}` };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spillway-cache-urls-'));
    farm = await new TestFarm(farmConfigRaw({ cas: exampleCas(dir) })).start();
  });
  after(() => farm.stop());

  it('answers at the README URLs (/cache/cas/, /cache/ac/) with the example config', async () => {
    const body = Buffer.from('an object file');
    const url = `${farm.addr.httpUrl}/cache/cas/${sha(body)}`;
    assert.equal((await fetch(url, { method: 'PUT', body, headers: auth })).status, 200);
    const got = await fetch(url, { headers: auth });
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
    const ac = `${farm.addr.httpUrl}/cache/ac/${sha('an action')}`;
    assert.equal((await fetch(ac, { method: 'PUT', body: Buffer.from([8, 1, 2]), headers: auth })).status, 200);
    assert.equal((await fetch(ac, { headers: auth })).status, 200);
  });

  it("ccache with the README's remote_storage line (bearer-token=, or the token as Basic password) hits the cache on a clean second build", async function () {
    const run = promisify(execFile);
    try {
      if (!/http-storage/.test((await run('ccache', ['--version'])).stdout)) throw new Error('this ccache was built without http-storage');
      await run('cc', ['--version']);
    } catch (err) {
      console.log(`      skipped: ccache with http-storage and a C compiler are needed (${(err as Error).message})`);
      this.skip();
    }
    const work = mkdtempSync(join(tmpdir(), 'spillway-ccache-readme-'));
    const host = farm.addr.httpUrl.replace('http://', '');
    for (const [i, remote] of [`http://${host}/cache|layout=bazel|bearer-token=${TOKEN}`, `http://ci:${TOKEN}@${host}/cache|layout=bazel`].entries()) {
      await fsp.writeFile(join(work, `f${i}.c`), `int f${i}(void) { return ${i}; }\n`);
      const stats = async (local: string) => {
        // ccache runs asynchronously: the master answering it is in this process.
        const env = { ...process.env, CCACHE_DIR: join(work, local), CCACHE_REMOTE_STORAGE: remote, CCACHE_REMOTE_ONLY: 'true' };
        await run('ccache', ['cc', '-c', `f${i}.c`, '-o', `${local}.o`], { cwd: work, env });
        const { stdout } = await run('ccache', ['--print-stats'], { env });
        return Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('\t')).map(([k, v]) => [k, Number(v)]));
      };
      const first = await stats(`a${i}`);
      assert.equal(first['remote_storage_error'], 0, JSON.stringify(first));
      assert.ok((first['remote_storage_write'] ?? 0) >= 1, JSON.stringify(first));
      const second = await stats(`b${i}`);
      assert.equal(second['remote_storage_hit'], 1, `${remote}: ${JSON.stringify(second)}`);
    }
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('logs one hint per window when requests miss every route under a cache-looking path', async () => {
    const before = farm.logs.entries.filter((e) => e.event === 'cas.route-hint').length;
    for (const p of [`/cas/${sha('x')}`, `/ac/${sha('y')}`, `/bazel-cache/cas/${sha('z')}`]) {
      assert.equal((await fetch(`${farm.addr.httpUrl}${p}`, { headers: auth })).status, 404);
    }
    const hints = farm.logs.entries.filter((e) => e.event === 'cas.route-hint').slice(before);
    assert.equal(hints.length, 1, 'rate-limited: one line per window');
    assert.equal(hints[0]!.path, `/cas/${sha('x')}`);
    assert.match(String(hints[0]!.hint), /\/cache\/cas\//);
    // Not every 404 is a cache URL.
    await fetch(`${farm.addr.httpUrl}/api/nothing-here`);
    assert.equal(farm.logs.entries.filter((e) => e.event === 'cas.route-hint').length, before + 1);
  });

  it('returns a raw /ac/ value byte for byte, even JSON that parses as a spillway result', async () => {
    const stdout = Buffer.from('out');
    await fetch(`${farm.addr.httpUrl}/cache/cas/${sha(stdout)}`, { method: 'PUT', body: stdout, headers: auth });
    const digest = { hash: sha(stdout), size: stdout.length };
    // A client's own JSON that happens to have our fields: key order, spacing, extra fields and
    // a failed exit code must all survive.
    const values = [
      `{ "stdout": ${JSON.stringify(digest)}, "exitCode": 0, "stderr": ${JSON.stringify(digest)}, "outputFiles": [], "timings": { "startedAt": 1, "finishedAt": 2 }, "client": "mine" }`,
      `{"exitCode":1,"stdout":${JSON.stringify(digest)},"stderr":${JSON.stringify(digest)},"outputFiles":[],"timings":{"startedAt":1,"finishedAt":2}}`,
    ];
    for (const [i, value] of values.entries()) {
      const url = `${farm.addr.httpUrl}/cache/ac/${sha(`raw json ${i}`)}`;
      const put = await fetch(url, { method: 'PUT', body: value, headers: { ...auth, 'content-type': 'application/json' } });
      assert.equal(put.status, 200);
      const got = await fetch(url, { headers: auth });
      assert.equal(got.status, 200, `value ${i} was stored`);
      assert.equal(await got.text(), value);
      assert.equal((await fetch(url, { method: 'HEAD', headers: auth })).headers.get('content-length'), String(Buffer.byteLength(value)));
    }
    // A raw value stored over one of our results replaces it instead of hiding behind it.
    const url = `${farm.addr.httpUrl}/cache/ac/${sha('ours then raw')}`;
    const ours = { kind: 'spillway.action-result/v1', exitCode: 0, stdout: digest, stderr: digest, outputFiles: [], timings: { startedAt: 1, finishedAt: 2 } };
    const put = await fetch(url, { method: 'PUT', body: JSON.stringify(ours), headers: { ...auth, 'content-type': 'application/json' } });
    assert.equal(put.headers.get('x-spillway-stored'), 'true');
    await fetch(url, { method: 'PUT', body: 'raw now', headers: auth });
    assert.equal(await (await fetch(url, { headers: auth })).text(), 'raw now');
  });

  it('serves a hot small blob from its verified in-memory copy, and forgets it on DELETE', async () => {
    const data = randomBytes(4096);
    const url = `${farm.addr.httpUrl}/cache/cas/${sha(data)}`;
    await fetch(url, { method: 'PUT', body: data, headers: auth });
    assert.deepEqual(Buffer.from(await (await fetch(url, { headers: auth })).arrayBuffer()), data);
    // The disk copy rots after it was read: memory answers with the bytes it verified.
    await fsp.writeFile(join(dir, 'cas', sha(data).slice(0, 2), sha(data)), randomBytes(4096));
    const again = await fetch(url, { headers: auth });
    assert.equal(again.status, 200);
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), data);
    assert.equal((await fetch(url, { method: 'DELETE', headers: auth })).status, 200);
    assert.equal((await fetch(url, { headers: auth })).status, 404);
  });

  async function corrupt(data: Buffer): Promise<string> {
    const hash = sha(data);
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/cas/${hash}`, { method: 'PUT', body: data, headers: auth })).status, 200);
    const file = join(dir, 'cas', hash.slice(0, 2), hash);
    const fh = await fsp.open(file, 'r+');
    await fh.write(Buffer.from([data[data.length >> 1]! ^ 0xff]), 0, 1, data.length >> 1);
    await fh.close();
    return hash;
  }

  it('detects a corrupt blob up to the verify-first threshold before its first byte: a plain 404', async () => {
    const hash = await corrupt(randomBytes(8 * 1024 * 1024));
    const res = await fetch(`${farm.addr.httpUrl}/cache/cas/${hash}`, { headers: auth });
    assert.equal(res.status, 404);
    await res.arrayBuffer();
    await farm.logs.waitFor((e) => e.event === 'cas.corrupt-blob' && e.hash === hash);
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/cas/${hash}`, { method: 'HEAD', headers: auth })).status, 404);
  });

  it('aborts the response for a corrupt blob above the threshold: the client sees an error, not a 200 it could take as complete', async () => {
    const hash = await corrupt(randomBytes(64 * 1024 * 1024 + 4096));
    const res = await fetch(`${farm.addr.httpUrl}/cache/cas/${hash}`, { headers: auth });
    assert.equal(res.status, 200, 'headers go out before the last byte is read');
    await assert.rejects(res.arrayBuffer());
    await farm.logs.waitFor((e) => e.event === 'cas.corrupt-blob' && e.hash === hash);
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/cas/${hash}`, { headers: auth })).status, 404);
  });
});

describe('master: a cache URL while the cache is off', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
  });
  after(() => farm.stop());

  it('logs a hint that cas.dir is not set', async () => {
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/cas/${sha('a')}`)).status, 404);
    const hint = await farm.logs.waitFor((e) => e.event === 'cas.route-hint');
    assert.match(String(hint.hint), /cas\.dir/);
  });
});
