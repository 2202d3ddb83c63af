/**
 * What it costs a job submission to be on the replica before it is acknowledged: BullMQ
 * `Queue.add` latency against a primary with one replica (both private redis-servers on this
 * machine), as Redis ships it (asynchronous replication), with `min-replicas-to-write 1`, and
 * with `WAIT 1` after each add. Rounds alternate the three so machine noise hits each alike.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/replica-ack.js
 *   BENCH_ADDS=2000 BENCH_ROUNDS=4 node dist/bench/replica-ack.js
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedisServer } from '../src/lib/redis-server';

const ADDS = Number(process.env.BENCH_ADDS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

type Mode = 'async' | 'min-replicas-to-write 1' | 'WAIT 1 after each add';
const MODES: readonly Mode[] = ['async', 'min-replicas-to-write 1', 'WAIT 1 after each add'];

async function main(): Promise<void> {
  const primary = await startRedisServer();
  const replica = await startRedisServer();
  const admin = new Redis(primary.url);
  const replicaAdmin = new Redis(replica.url);
  try {
    await replicaAdmin.call('REPLICAOF', '127.0.0.1', String(primary.port));
    await until(async () => /master_link_status:up/.test(await replicaAdmin.info('replication')));
    const samples = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of MODES) {
        await admin.config('SET', 'min-replicas-to-write', mode === 'min-replicas-to-write 1' ? '1' : '0');
        await admin.config('SET', 'min-replicas-max-lag', '10');
        // The queue writes on this very connection: WAIT waits for the writes of its own client.
        const client = new Redis(primary.url, { maxRetriesPerRequest: null });
        const queue = new Queue(`bench-${round}-${mode.replace(/\W+/g, '-')}`, { connection: client });
        await queue.waitUntilReady();
        const ours = (await admin.client('LIST')) as string;
        if (ours.trim().split('\n').length !== 3) throw new Error(`expected the admin, the replica and one queue connection:\n${ours}`);
        for (let i = 0; i < 50; i++) await queue.add('warm', { i });
        const times = samples.get(mode)!;
        for (let i = 0; i < ADDS; i++) {
          const t0 = process.hrtime.bigint();
          await queue.add('build', { type: 'b2g', command: { shell: 'make -j8' }, i });
          if (mode === 'WAIT 1 after each add') {
            const acked = (await client.call('WAIT', '1', '1000')) as number;
            if (acked < 1) throw new Error('the replica did not acknowledge within 1 s');
          }
          times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        await queue.obliterate({ force: true });
        await queue.close();
        client.disconnect();
      }
    }
    console.log(`Queue.add latency, ${ADDS} sequential adds x ${ROUNDS} rounds per mode, primary + 1 replica on one host (${process.platform}, node ${process.version})`);
    for (const mode of MODES) {
      const t = samples.get(mode)!.sort((a, b) => a - b);
      const q = (p: number) => t[Math.min(t.length - 1, Math.floor(p * t.length))]!.toFixed(3);
      const mean = t.reduce((a, b) => a + b, 0) / t.length;
      console.log(`${mode.padEnd(24)} p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  mean ${mean.toFixed(3)} ms  (${(1000 / mean).toFixed(0)} adds/s on one connection)`);
    }
  } finally {
    admin.disconnect();
    replicaAdmin.disconnect();
    await replica.stop();
    await primary.stop();
  }
}

async function until(cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('the replica did not sync within 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
