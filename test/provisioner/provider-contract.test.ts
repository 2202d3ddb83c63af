import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { parseConfig } from '../../src/config';
import { createLogger, systemClock, type Clock } from '../../src/lib';
import { PROVIDERS, ProviderError, type Machine, type Provider, type ProviderEnv } from '../../src/provisioner';
import { FakeEc2 } from '../fakes/fake-ec2';
import { FakeProvider } from '../fakes/fake-provider';

/**
 * One set of scenarios for every provider behind the Provider interface, as
 * terraform-aws-github-runner runs its scale-up contract tests against each runner type:
 * what the provisioner relies on must hold for local processes, EC2 and the test fake alike.
 */
interface Subject {
  provider: Provider;
  /** Lets what the provider set going finish by itself (a local boot or exit; a fake cloud's boot). */
  settle(): Promise<void>;
  /** The machine stops behind spillway's back (a crash, a human, a spot stop). */
  stopOutside(id: string): Promise<void>;
  /** Checks what `close()` promised for this kind. */
  afterClose(launched: readonly string[]): Promise<void>;
}

const signal = new AbortController().signal;
const log = createLogger({ level: 'error', silent: true });
const config = (pool: Record<string, unknown>) =>
  parseConfig({ agents: { token: 'contract-token-0123' }, jobTypes: { b2g: { overflow: { pool: 'p' } } }, pools: { p: pool } }, {});

/** Boots without waiting; everything else (the close grace period) on the real clock. */
function instantBoots(): { clock: Clock; booted(): Promise<void> } {
  const pending: Array<Promise<void>> = [];
  return {
    clock: {
      now: () => Date.now(),
      sleep: (ms, s) => {
        if (ms > 0) return systemClock.sleep(ms, s);
        const p = Promise.resolve();
        pending.push(p);
        return p;
      },
    },
    booted: async () => {
      await Promise.all(pending.splice(0));
      // The boot runs in the sleep's continuation.
      await new Promise<void>((r) => setImmediate(r));
    },
  };
}

function local(): Subject {
  const boots = instantBoots();
  const children = new Map<string, ChildProcess>();
  const env: ProviderEnv = {
    clock: boots.clock,
    log,
    // A stand-in agent: a process that stays up until signalled, whatever arguments it is given.
    agentCommand: [process.execPath, '-e', 'setInterval(() => {}, 1 << 30)'],
    masterUrl: () => 'ws://127.0.0.1:1',
    ec2Client: () => assert.fail('a local pool asked for an EC2 client'),
    spawn: ((cmd: string, args: readonly string[], opts: object) => {
      const child = spawn(cmd, args, opts);
      children.set(args[args.indexOf('--instance-id') + 1]!, child);
      return child;
    }) as typeof spawn,
  };
  const provider = PROVIDERS.local('p', config({ provider: 'local', maxInstances: 4, local: { bootDelayMs: 0, preCreated: 0 } }), env);
  const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
  const settle = async () => {
    await boots.booted();
    for (const m of await provider.list(signal)) {
      const c = children.get(m.id);
      if (m.state === 'stopping' && c && !exited(c)) await once(c, 'exit');
    }
  };
  return {
    provider,
    settle,
    stopOutside: async (id) => {
      const c = children.get(id)!;
      const gone = once(c, 'exit');
      c.kill('SIGKILL');
      await gone;
    },
    afterClose: async () => {
      for (const [id, c] of children) assert.ok(exited(c), `the agent process of ${id} still runs after close()`);
    },
  };
}

function ec2(): Subject {
  // At the bottom of the client's middleware stack: requests are validated, serialized and
  // signed by the SDK, and the provider gets the SDK's own answers and errors back.
  const fake = new FakeEc2(() => Date.now(), 'middleware');
  const env: ProviderEnv = {
    clock: { now: () => Date.now(), sleep: async () => undefined },
    log,
    agentCommand: [],
    masterUrl: () => 'ws://127.0.0.1:1',
    ec2Client: (region) => {
      assert.equal(region, 'eu-west-1');
      return fake.client;
    },
  };
  const provider = PROVIDERS.ec2(
    'p',
    config({ provider: 'ec2', maxInstances: 4, ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a'] } }),
    env,
  );
  return {
    provider,
    settle: async () => undefined,
    stopOutside: async (id) => fake.set(id, 'stopped'),
    afterClose: async (launched) => assert.deepEqual(fake.live().map((i) => [i.id, i.state]), launched.map((id) => [id, 'running'])),
  };
}

function fake(): Subject {
  const provider = new FakeProvider();
  return {
    provider,
    // The fake cloud finishes booting whatever is pending.
    settle: async () => {
      for (const m of await provider.list(signal)) if (m.state === 'pending') provider.set(m.id, 'running');
    },
    stopOutside: async (id) => provider.set(id, 'stopped'),
    afterClose: async (launched) => {
      const listed = await provider.list(signal);
      assert.deepEqual(listed.map((m) => [m.id, m.state]), launched.map((id) => [id, 'running']));
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ProviderError, `expected a ProviderError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

const SUBJECTS: Array<[name: string, make: () => Subject]> = [
  ['local', local],
  ['ec2 (SDK middleware stack, fake EC2)', ec2],
  ['test fake', fake],
];

for (const [name, make] of SUBJECTS) {
  describe(`provider contract: ${name}`, () => {
    let s: Subject;
    let launched: string[] = [];
    const state = async (id: string): Promise<Machine | undefined> => (await s.provider.list(signal)).find((m) => m.id === id);

    beforeEach(async () => {
      s = make();
      await s.provider.setup(signal);
      launched = [];
    });
    afterEach(async () => {
      await s.provider.close();
    });

    async function launch(count: number, clientToken = `token-${Math.random()}`): Promise<Machine[]> {
      const out = await s.provider.launch({ count, clientToken }, signal);
      launched.push(...out.map((m) => m.id));
      return out;
    }

    it('launches machines that are listed, and boot to running', async () => {
      const out = await launch(2);
      assert.equal(out.length, 2);
      for (const m of out) assert.ok(m.state === 'pending' || m.state === 'running', `${m.id} is ${m.state}`);
      await s.settle();
      const listed = await s.provider.list(signal);
      assert.deepEqual(listed.map((m) => m.id).sort(), out.map((m) => m.id).sort());
      for (const m of listed) assert.deepEqual([m.state, m.hibernated], ['running', false], m.id);
    });

    it('launches once per client token: a retried launch returns the same machines', async () => {
      const first = await launch(1, 'same-token');
      const again = await launch(1, 'same-token');
      assert.deepEqual(again.map((m) => m.id), first.map((m) => m.id));
      assert.equal((await s.provider.list(signal)).length, 1);
    });

    it('stops a running machine and wakes it again', async () => {
      const [m] = await launch(1);
      await s.settle();
      assert.deepEqual(await s.provider.suspend([m!.id], 'stop', signal), [{ id: m!.id, did: 'stopped', reason: null }]);
      await s.settle();
      assert.deepEqual([(await state(m!.id))?.state, (await state(m!.id))?.hibernated], ['stopped', false]);
      await s.provider.start([m!.id], signal);
      await s.settle();
      assert.equal((await state(m!.id))?.state, 'running');
    });

    it('hibernates a running machine, says so, and wakes it again', async () => {
      const [m] = await launch(1);
      await s.settle();
      assert.deepEqual(await s.provider.suspend([m!.id], 'hibernate', signal), [{ id: m!.id, did: 'hibernated', reason: null }]);
      await s.settle();
      assert.deepEqual([(await state(m!.id))?.state, (await state(m!.id))?.hibernated], ['stopped', true]);
      await s.provider.start([m!.id], signal);
      await s.settle();
      assert.deepEqual([(await state(m!.id))?.state, (await state(m!.id))?.hibernated], ['running', false]);
    });

    it('terminates: the machine is no longer listed', async () => {
      const [a, b] = await launch(2);
      await s.settle();
      await s.provider.terminate([a!.id], signal);
      await s.settle();
      assert.deepEqual((await s.provider.list(signal)).map((m) => m.id), [b!.id]);
      launched = [b!.id];
    });

    it('lists what really happened: a machine stopped behind its back is stopped', async () => {
      const [m] = await launch(1);
      await s.settle();
      await s.stopOutside(m!.id);
      assert.equal((await state(m!.id))?.state, 'stopped');
    });

    it('refuses to wake a running machine (retry later) and any unknown machine (fatal)', async () => {
      const [m] = await launch(1);
      await s.settle();
      const running = await rejection(s.provider.start([m!.id], signal));
      assert.deepEqual([running.disposition, running.providerCode], ['retry', 'IncorrectInstanceState']);
      const unknown = await rejection(s.provider.start(['i-0000000000nothere'], signal));
      assert.deepEqual([unknown.disposition, unknown.providerCode], ['fatal', 'InvalidInstanceID.NotFound']);
    });

    it('closes: lets go of what it holds in this process, cloud machines stay', async () => {
      await launch(2);
      await s.settle();
      await s.provider.close();
      await s.afterClose(launched);
    });
  });
}
