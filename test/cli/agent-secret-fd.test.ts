import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { CLI } from '../helpers/farm';

/**
 * `--cas-token-file /dev/fd/N` (how a local pool hands its agents the CAS token, on fd 3): the
 * descriptor is read like standard input (a pipe or socket cannot be opened by path), and what
 * a file path gets refused for is refused here too.
 */
describe('cli: agent secrets from an inherited descriptor', function () {
  this.timeout(20_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'spillway-secret-fd-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The agent's exit code and output, with `fd3` as its descriptor 3. */
  async function agent(fd3: 'pipe' | number | 'ignore', write?: string): Promise<{ code: number | null; out: string }> {
    const args = [CLI, 'agent', '--master', 'ws://127.0.0.1:1', '--name', 'fd-agent', '--job-types', 'remote', '--token', 'agent-token-0123456789', '--cas', 'http://127.0.0.1:1/cache', '--cas-token-file', '/dev/fd/3'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', fd3] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    if (fd3 === 'pipe') (child.stdio[3] as NodeJS.WritableStream).end(write ?? '');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    return { code, out };
  }

  it('reads the token and closes the descriptor while it keeps running: its builds cannot inherit it', async () => {
    const args = [CLI, 'agent', '--master', 'ws://127.0.0.1:1', '--name', 'fd-agent', '--job-types', 'remote', '--token', 'agent-token-0123456789', '--cas', 'http://127.0.0.1:1/cache', '--cas-token-file', '/dev/fd/3'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    const pipe = child.stdio[3] as Duplex;
    pipe.resume();
    pipe.end('cas-token-0123456789');
    const exited = new Promise<string>((r) => child.once('exit', () => r('exited')));
    try {
      // The agent's end of the pipe closed (our side sees its end) before the agent exits: it is
      // retrying its connection to a master that is not there, so it only exits when told to.
      const first = await Promise.race([new Promise<string>((r) => pipe.once('close', () => r('closed'))), exited]);
      assert.equal(first, 'closed');
      assert.equal(child.exitCode, null);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('an empty pipe is refused as empty', async () => {
    const { code, out } = await agent('pipe', '');
    assert.equal(code, 2, out);
    assert.match(out, /--cas-token-file: cannot use \/dev\/fd\/3: it is empty/);
  });

  it('a descriptor that is not open is refused with the reason', async () => {
    const { code, out } = await agent('ignore');
    assert.equal(code, 2, out);
    assert.match(out, /--cas-token-file: cannot use \/dev\/fd\/3: /);
  });

  it('a world-readable file behind the descriptor is refused, as by path', async () => {
    const file = join(dir, 'open-token');
    writeFileSync(file, 'cas-token-0123456789', { mode: 0o644 });
    const fd = openSync(file, 'r');
    try {
      const { code, out } = await agent(fd);
      assert.equal(code, 2, out);
      assert.match(out, /readable by every user/);
    } finally {
      closeSync(fd);
    }
  });
});
