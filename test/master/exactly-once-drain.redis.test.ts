import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { BuildRecord } from '../../src/master';
import { parseMasterFrame, type MasterFrame } from '../../src/protocol';
import { TestFarm, farmConfigRaw } from '../helpers/farm';
import { helloFrameFor } from '../helpers/hello-frame';

/** Where an agent's connection is cut, counted from the assign it is cut on. */
type Cut = 'on-assign' | 'after-started' | 'after-finished';

interface Run {
  jobId: string;
  attempt: number;
  agent: string;
  finishedSent: boolean;
}

/**
 * A hand-driven agent with several executors that finishes every build at once, like the fleet
 * bench's agents, so a drain moves many jobs per tick; `cut` makes it drop its connection
 * (terminate: no close frame, buffered frames lost) at one point of one build.
 */
class InstantAgent {
  readonly ws: WebSocket;
  readonly gone: Promise<void>;
  private dropped = false;

  constructor(
    url: string,
    readonly name: string,
    private readonly runs: Run[],
    private readonly cutOn: (a: InstantAgent) => Cut | undefined,
  ) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.on('open', () => this.ws.send(JSON.stringify(helloFrameFor({ name, executors: 4, jobTypes: ['b2g'] }))));
    this.ws.on('message', (d) => {
      const p = parseMasterFrame(d.toString());
      if (p.ok) this.onFrame(p.frame);
    });
    this.ws.on('error', () => undefined);
    this.gone = new Promise((r) => this.ws.once('close', () => r()));
  }

  welcomed(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.on('message', (d) => d.toString().includes('"welcome"') && resolve());
      void this.gone.then(() => reject(new Error(`${this.name} closed before welcome`)));
    });
  }

  private onFrame(f: MasterFrame): void {
    if (f.type !== 'assign' || this.dropped) return;
    const run: Run = { jobId: f.jobId, attempt: f.attempt, agent: this.name, finishedSent: false };
    this.runs.push(run);
    const cut = this.cutOn(this);
    if (cut === 'on-assign') return this.drop();
    const held = { queue: f.queue, jobId: f.jobId, lockToken: f.lockToken };
    const startedAt = Date.now();
    this.ws.send(JSON.stringify({ type: 'started', ...held, startedAt }));
    if (cut === 'after-started') return this.drop();
    this.ws.send(JSON.stringify({ type: 'finished', ...held, result: { exitCode: 0, signal: null, timedOut: false, startedAt, finishedAt: Date.now() } }));
    run.finishedSent = true;
    if (cut === 'after-finished') this.drop();
  }

  private drop(): void {
    this.dropped = true;
    this.ws.terminate();
  }

  close(): void {
    this.ws.terminate();
  }
}

describe('exactly once: agents dropped during a drain of many instant builds (real redis, real websockets)', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  const agents: InstantAgent[] = [];

  beforeEach(async () => {
    farm = await new TestFarm(farmConfigRaw({ agents: { ...(farmConfigRaw().agents as object), lostAfterSec: 0.5 } })).start();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await farm.stop();
  });

  it('completes every job exactly once, and every build record says what happened', async () => {
    const JOBS = 400;
    const runs: Run[] = [];
    // One cut of each kind, spread over the drain; each dropped agent is replaced at once.
    const plan = new Map<number, Cut>([
      [30, 'on-assign'],
      [90, 'after-started'],
      [150, 'after-finished'],
      [210, 'on-assign'],
      [270, 'after-finished'],
      [330, 'after-started'],
    ]);
    const cutAgents = new Set<string>();
    let next = 0;
    const spawn = async (): Promise<void> => {
      const a = new InstantAgent(farm.addr.agentUrl, `instant-${next++}`, runs, (me) => {
        const cut = plan.get(runs.length);
        if (!cut) return undefined;
        plan.delete(runs.length);
        cutAgents.add(me.name);
        void me.gone.then(spawn);
        return cut;
      });
      agents.push(a);
      await a.welcomed();
    };
    const events = await farm.events('b2g');
    const completions = new Map<string, number>();
    const allDone = new Promise<void>((resolve) =>
      events.on('completed', ({ jobId }) => {
        completions.set(jobId, (completions.get(jobId) ?? 0) + 1);
        if (completions.size === JOBS) resolve();
      }),
    );
    const failed: string[] = [];
    events.on('failed', ({ jobId, failedReason }) => failed.push(`${jobId}: ${failedReason}`));
    const queue = farm.queue('b2g');
    await queue.pause();
    const added = await queue.addBulk(Array.from({ length: JOBS }, () => ({ name: 'build', data: { argv: ['true'] }, opts: { attempts: 3 } })));
    const ids = added.map((j) => j.id!);
    await Promise.all(Array.from({ length: 4 }, spawn));
    await queue.resume();
    await allDone;

    assert.equal(plan.size, 0, 'every planned cut happened');
    assert.deepEqual(failed, []);
    assert.equal(cutAgents.size, 6);
    for (const id of ids) {
      assert.equal(completions.get(id), 1, `job ${id} completed once`);
      const job = (await queue.getJob(id))!;
      assert.equal(await job.getState(), 'completed');
      const records: BuildRecord[] = await farm.master.builds.attempts('b2g', id);
      const mine = runs.filter((r) => r.jobId === id);
      const success = records.filter((r) => r.result === 'success');
      assert.equal(success.length, 1, `job ${id}: one successful build, records ${JSON.stringify(records)}`);
      const won = success[0]!;
      // The record names the agent that really ran that attempt and reported it finished.
      const run = mine.find((r) => r.attempt === won.attempt && r.agent === won.agent);
      assert.ok(run?.finishedSent, `job ${id}: the success record names ${won.agent}, attempt ${won.attempt}, which sent finished`);
      assert.equal((job.returnvalue as { startedAt: number }).startedAt, won.startedAt);
      for (const r of records) {
        assert.equal(r.state, 'finished', `job ${id} attempt ${r.attempt}: no record left running`);
        // An assign in flight when its agent's connection was cut never reached the agent: such
        // a record may match no assign the agents saw, but then it must be a loss on a cut agent.
        const seen = mine.some((m) => m.attempt === r.attempt && m.agent === r.agent);
        assert.ok(seen || (r.result === 'lost' && cutAgents.has(r.agent)), `job ${id}: record of attempt ${r.attempt} on ${r.agent} matches an assign`);
        if (r !== won) {
          assert.equal(r.result, 'lost', `job ${id} attempt ${r.attempt}: a build that did not win is recorded lost`);
          assert.ok(cutAgents.has(r.agent), `job ${id}: lost on ${r.agent}, an agent that was cut`);
        }
      }
      // Every attempt handed out is on record (a dropped assign may have left no record, if it never started).
      const unrecorded = mine.filter((m) => !records.some((r) => r.attempt === m.attempt));
      for (const m of unrecorded) assert.ok(cutAgents.has(m.agent), `job ${id}: attempt ${m.attempt} on ${m.agent} has no record`);
    }
    // The jobs of the cut agents went elsewhere: more attempts than jobs.
    assert.ok(runs.length > JOBS, `${runs.length} assigns for ${JOBS} jobs`);
  });
});
