import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { tempRoot } from './cas-fixtures';
import { startCasServer, type CasServer } from './http-server';

const run = promisify(execFile);

/** ccache's counters from `--print-stats` (tab-separated name/value lines). */
async function stats(env: NodeJS.ProcessEnv): Promise<Record<string, number>> {
  const { stdout } = await run('ccache', ['--print-stats'], { env });
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'))
      .map(([k, v]) => [k, Number(v)]),
  );
}

// Debian's ccache against the real HTTP API. The server runs in this process, so ccache must be
// run asynchronously (a sync exec would block the event loop the server answers on).
describe('cas HTTP API with a real ccache (layout=bazel)', function () {
  let s: CasServer | undefined;
  let dir: string;
  let cleanup: () => Promise<void>;

  before(async function () {
    try {
      const { stdout } = await run('ccache', ['--version']);
      if (!/http-storage/.test(stdout)) throw new Error('this ccache was built without http-storage');
      await run('cc', ['--version']);
    } catch (err) {
      console.log(`      skipped: ccache with http-storage and a C compiler are needed (${(err as Error).message}); apt-get install -y ccache gcc`);
      this.skip();
    }
  });
  beforeEach(async () => ({ root: dir, cleanup } = await tempRoot('ccache')));
  afterEach(async () => {
    await s?.close();
    s = undefined;
    await cleanup();
  });

  it('misses and stores on the first build, hits the remote on the second with an empty local cache', async () => {
    s = await startCasServer({ auth: { basic: [{ user: 'ci', password: 'pw' }] } });
    await fsp.writeFile(path.join(dir, 'hello.c'), '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n');
    const remote = `${s.url.replace('http://', 'http://ci:pw@')}/|layout=bazel`;
    const build = async (ccacheDir: string) => {
      const env = { ...process.env, CCACHE_DIR: path.join(dir, ccacheDir), CCACHE_REMOTE_STORAGE: remote, CCACHE_REMOTE_ONLY: 'true' };
      await run('ccache', ['cc', '-c', 'hello.c', '-o', `${ccacheDir}.o`], { cwd: dir, env });
      return stats(env);
    };

    const first = await build('local-1');
    assert.equal(first['remote_storage_error'], 0);
    assert.equal(first['remote_storage_miss'], 1);
    assert.ok((first['remote_storage_write'] ?? 0) >= 1, JSON.stringify(first));
    assert.ok((await fsp.readdir(path.join(s.root, 'ac-raw'))).length >= 1, 'ccache values land in the raw /ac/ namespace');
    assert.equal((await fsp.readdir(path.join(s.root, 'ac'))).length, 0, 'none of them is taken for an action result');

    const second = await build('local-2');
    assert.equal(second['remote_storage_error'], 0);
    assert.equal(second['remote_storage_hit'], 1, JSON.stringify(second));
    assert.equal(second['cache_miss'] ?? 0, 0);
    assert.ok((await fsp.readFile(path.join(dir, 'local-1.o'))).equals(await fsp.readFile(path.join(dir, 'local-2.o'))));
  });

  it('reports a remote error (not a hit) when the credentials are wrong', async () => {
    s = await startCasServer({ auth: { basic: [{ user: 'ci', password: 'pw' }] } });
    await fsp.writeFile(path.join(dir, 'x.c'), 'int x(void) { return 1; }\n');
    const env = {
      ...process.env,
      CCACHE_DIR: path.join(dir, 'cc'),
      CCACHE_REMOTE_STORAGE: `${s.url.replace('http://', 'http://ci:wrong@')}/|layout=bazel`,
      CCACHE_REMOTE_ONLY: 'true',
    };
    await run('ccache', ['cc', '-c', 'x.c', '-o', 'x.o'], { cwd: dir, env });
    const st = await stats(env);
    assert.equal(st['remote_storage_hit'], 0);
    assert.equal(st['remote_storage_error'], 1);
  });
});
