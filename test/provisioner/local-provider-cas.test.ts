import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config';
import { createLogger, systemClock } from '../../src/lib';
import { PROVIDERS, type LocalAgentCas, type ProviderEnv } from '../../src/provisioner';

const CAS_TOKEN = 'cas-rw-token-0123456789';
const AGENT_TOKEN = 'agent-token-0123456789';

/**
 * A local pool's agent process gets the master's CAS (remote and cached actions need it): the
 * URL on its command line, the token only through file descriptor 3, never on the command line
 * or in the environment, which its builds could read.
 */
describe('local provider: the CAS for its agents', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'spillway-local-cas-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Boots one instance whose "agent" reports what it was given, and returns that. */
  async function boot(cas: LocalAgentCas | undefined): Promise<{ argv: string[]; stdin: string; fd3: string | null; env: string[] }> {
    const report = join(dir, 'report.json');
    let booted!: (c: ChildProcess) => void;
    const spawned = new Promise<ChildProcess>((r) => (booted = r));
    // Stands in for `spillway agent`: reads its secrets the way the agent does and writes down what it got.
    const script = `const fs = require('fs');
      let fd3 = null; try { fd3 = fs.readFileSync(3, 'utf8'); } catch {}
      fs.writeFileSync(${JSON.stringify(report)}, JSON.stringify({ argv: process.argv.slice(1), stdin: fs.readFileSync(0, 'utf8'), fd3, env: Object.keys(process.env) }));`;
    const env: ProviderEnv = {
      clock: systemClock,
      log: createLogger({ level: 'error', silent: true }),
      agentCommand: [process.execPath, '-e', script],
      masterUrl: () => 'ws://127.0.0.1:1',
      ec2Client: () => assert.fail('a local pool asked for an EC2 client'),
      cas: () => cas,
      spawn: ((cmd: string, args: readonly string[], opts: object) => {
        const child = spawn(cmd, args, opts);
        booted(child);
        return child;
      }) as typeof spawn,
    };
    const config = parseConfig(
      { agents: { token: AGENT_TOKEN }, jobTypes: { remote: { overflow: { pool: 'p' } } }, pools: { p: { provider: 'local', maxInstances: 1, local: { bootDelayMs: 0 } } } },
      {},
    );
    const provider = PROVIDERS.local('p', config, env);
    const saved = process.env.SPILLWAY_CAS_TOKEN;
    process.env.SPILLWAY_CAS_TOKEN = CAS_TOKEN;
    try {
      await provider.start(['local-p-1'], new AbortController().signal);
      const child = await spawned;
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, 'the stand-in agent ran to its end');
      await provider.close();
      return JSON.parse(readFileSync(report, 'utf8')) as { argv: string[]; stdin: string; fd3: string | null; env: string[] };
    } finally {
      if (saved === undefined) delete process.env.SPILLWAY_CAS_TOKEN;
      else process.env.SPILLWAY_CAS_TOKEN = saved;
    }
  }

  it('with a CAS: --cas URL and --cas-token-file /dev/fd/3, the token through that pipe only', async () => {
    const got = await boot({ url: 'http://127.0.0.1:8080/cache', token: CAS_TOKEN });
    const at = got.argv.indexOf('--cas');
    assert.ok(at >= 0, got.argv.join(' '));
    assert.equal(got.argv[at + 1], 'http://127.0.0.1:8080/cache');
    assert.equal(got.argv[got.argv.indexOf('--cas-token-file') + 1], '/dev/fd/3');
    assert.equal(got.fd3, CAS_TOKEN);
    assert.equal(got.stdin, AGENT_TOKEN);
    assert.ok(!got.argv.some((a) => a.includes(CAS_TOKEN) || a.includes(AGENT_TOKEN)), got.argv.join(' '));
    assert.ok(!got.env.includes('SPILLWAY_CAS_TOKEN'), 'the master\'s SPILLWAY_CAS_TOKEN is not inherited');
  });

  it('a cache anyone may write: --cas only, no token pipe', async () => {
    const got = await boot({ url: 'http://127.0.0.1:8080/cache' });
    assert.ok(got.argv.includes('--cas'));
    assert.ok(!got.argv.includes('--cas-token-file'));
    assert.equal(got.fd3, null);
  });

  it('without a CAS: neither', async () => {
    const got = await boot(undefined);
    assert.ok(!got.argv.includes('--cas') && !got.argv.includes('--cas-token-file'), got.argv.join(' '));
    assert.equal(got.fd3, null);
    assert.equal(got.stdin, AGENT_TOKEN);
  });
});
