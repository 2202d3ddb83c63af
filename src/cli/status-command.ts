import type { QueueView } from '../http';
import type { BuildRecord, JobView } from '../master';
import type { PoolReport } from '../provisioner';
import { MasterClient } from './master-client';

interface AgentRow {
  name: string;
  location: string;
  instanceId: string | null;
  jobTypes: string[];
  executors: number;
  busy: number;
  draining: boolean;
}

/** `spillway status`: queues, agents and recent builds, as tables or as one JSON document. */
export async function statusCommand(flags: { master: string; token?: string; json?: boolean; builds?: number }, out: NodeJS.WritableStream): Promise<number> {
  const client = new MasterClient(flags.master, flags.token);
  const [queues, agents, builds, pools] = await Promise.all([
    client.get<{ queues: QueueView[] }>('/api/queues'),
    client.get<{ agents: AgentRow[] }>('/api/agents'),
    client.get<{ builds: BuildRecord[] }>(`/api/builds?limit=${flags.builds ?? 10}`),
    client.get<{ pools: PoolReport[] }>('/api/pools'),
  ]);
  if (flags.json) {
    out.write(JSON.stringify({ queues: queues.queues, agents: agents.agents, pools: pools.pools, builds: builds.builds }, null, 2) + '\n');
    return 0;
  }
  out.write('QUEUES\n');
  out.write(
    table(
      ['type', 'waiting', 'oldest wait', 'running on-prem', 'running cloud', 'executors busy/total', 'failed'],
      queues.queues.map((q) => [
        q.type,
        String(q.waiting + q.prioritized + q.assigning),
        q.oldestWaitMs === null ? '-' : ms(q.oldestWaitMs),
        String(q.runningOnprem),
        String(q.runningCloud),
        `${q.executors.busy}/${q.executors.total}`,
        String(q.failed),
      ]),
    ),
  );
  // A master older than this command reports no `unrunnable`.
  for (const q of queues.queues) if (q.unrunnable?.count) out.write(`${q.type}: ${q.unrunnable.count} job(s) no agent can run (${q.unrunnable.reason})\n`);
  out.write('\nAGENTS\n');
  out.write(
    agents.agents.length === 0
      ? '(none connected)\n'
      : table(
          ['name', 'location', 'instance', 'job types', 'busy/executors', 'state'],
          agents.agents.map((a) => [
            a.name,
            a.location === 'cloud' ? 'cloud' : 'on-prem',
            a.instanceId ?? '-',
            a.jobTypes.join(','),
            `${a.busy}/${a.executors}`,
            a.draining ? 'draining' : 'ready',
          ]),
        ),
  );
  for (const p of pools.pools) {
    out.write(`\nPOOL ${p.name} (${p.provider}, max ${p.maxInstances})${p.setupError ? `  SETUP FAILED: ${p.setupError}` : ''}\n`);
    if (p.decision) out.write(`decision: ${p.decision.reason}\n`);
    out.write(
      p.instances.length === 0
        ? '(no instances)\n'
        : table(
            ['instance', 'state', 'since', 'agent', 'address', 'market', 'reason'],
            p.instances.map((i) => [
              i.id,
              i.state === 'suspended' && i.hibernated ? 'suspended (hibernated)' : i.state,
              new Date(i.since).toISOString().slice(11, 19),
              i.agent ?? '-',
              i.privateIp ?? '-',
              i.spot ? 'spot' : 'on-demand',
              i.reason ?? '',
            ]),
          ),
    );
  }
  out.write('\nRECENT BUILDS\n');
  out.write(
    builds.builds.length === 0
      ? '(none yet)\n'
      : table(
          ['job', 'type', 'agent', 'where', 'wait', 'duration', 'result'],
          builds.builds.map((b) => [
            b.attempt > 1 ? `${b.id} #${b.attempt}` : b.id,
            b.type,
            b.agent,
            b.location === 'cloud' ? `cloud${b.instanceId ? ` ${b.instanceId}` : ''}` : 'on-prem',
            b.waitMs === null ? '-' : ms(b.waitMs),
            b.durationMs === null ? '-' : ms(b.durationMs),
            b.result ?? b.state,
          ]),
        ),
  );
  return 0;
}

/** `spillway status JOB`: one job: its state, priority, attempts, who cancelled it, its retries; --json prints the API's view. */
export async function jobStatusCommand(id: string, flags: { master: string; token?: string; json?: boolean; type?: string }, out: NodeJS.WritableStream): Promise<number> {
  const client = new MasterClient(flags.master, flags.token);
  const v = await client.get<JobView>(`/api/jobs/${encodeURIComponent(id)}?log=0${flags.type ? `&type=${encodeURIComponent(flags.type)}` : ''}`);
  if (flags.json) {
    out.write(JSON.stringify(v, null, 2) + '\n');
    return 0;
  }
  const where = (b: { location: string | null; instanceId: string | null }) => (b.location === 'cloud' ? `cloud${b.instanceId ? ` ${b.instanceId}` : ''}` : 'on-prem');
  const rows: Array<[string, string | null]> = [
    ['job', `${v.id} (${v.type})`],
    ['state', v.cancelledBy ? `${v.state} (cancelled)` : v.state],
    ['priority', v.priority === null ? '-' : String(v.priority)],
    ['attempts', `${v.attemptsMade} failed of ${v.attempts}`],
    ['agent', v.agent && `${v.agent} (${where(v)})`],
    ['exit code', v.exitCode === null ? null : String(v.exitCode)],
    ['reason', v.failedReason],
    ['cancelled by', v.cancelledBy && `${v.cancelledBy}${v.cancelReason ? ` (${v.cancelReason})` : ''}`],
    ['retry of', v.retryOf],
    ['retried as', v.retriedAs],
    ['unrunnable', v.unrunnable],
  ];
  for (const [k, val] of rows) if (val !== null) out.write(`${k.padEnd(13)}${val}\n`);
  if (v.builds.length > 0) {
    out.write('\nATTEMPTS\n');
    out.write(
      table(
        ['attempt', 'agent', 'where', 'wait', 'duration', 'result', 'reason'],
        v.builds.map((b) => [
          String(b.attempt),
          b.agent,
          where(b),
          b.waitMs === null ? '-' : ms(b.waitMs),
          b.durationMs === null ? '-' : ms(b.durationMs),
          b.result ?? b.state,
          b.reason ?? '',
        ]),
      ),
    );
  }
  return 0;
}

function ms(n: number): string {
  if (n < 1000) return `${n}ms`;
  if (n < 120_000) return `${(n / 1000).toFixed(1)}s`;
  return `${Math.round(n / 60_000)}m`;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  return line(head.map((h) => h.toUpperCase())) + rows.map(line).join('');
}
