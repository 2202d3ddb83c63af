import { readFileSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError } from '../lib';
import { parseConfig, type Config, type Env } from '../config';
import { applyPolicy, formatReport, parsePolicy, parseTrace, renderChart, simulate, type Policy, type SimulationResult } from '../simulator';
import { CliUsageError } from './master-client';

export interface SimulateFlags {
  config: string;
  trace: string;
  /** `NAME=key=value,key=value`, repeatable. */
  policy?: string[];
  json?: boolean;
  /** Write an SVG chart of backlog and instances over time here. */
  chart?: string;
}

/**
 * The simulation never opens the agent listener, so a config that takes its agent token from
 * the environment is valid without it: a placeholder stands in only when none is given.
 */
const NO_AGENTS_HERE = 'simulation-has-no-agent-listener';

/** Reads a file whose problems are the user's (exit 2), not a crash. */
function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliUsageError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** The config under each policy, every one validated as a whole like any config. */
export function policyConfigs(text: string, source: string, specs: readonly string[], env: Env): Array<{ policy: Policy; config: Config }> {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new ConfigError(source, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`));
  const raw = (doc.toJS() ?? {}) as Record<string, unknown>;
  const parsed = (specs.length ? specs : ['config']).map((s) => parsePolicy(s));
  const bad = parsed.flatMap((p) => (p.ok ? [] : [p.problem]));
  if (bad.length) throw new CliUsageError(bad.join('; '));
  const policies = parsed.map((p) => (p as { ok: true; policy: Policy }).policy);
  const names = policies.map((p) => p.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new CliUsageError(`two policies are named "${dup}"`);
  const simEnv = { SPILLWAY_AGENT_TOKEN: NO_AGENTS_HERE, ...env };
  return policies.map((policy) => {
    const { doc: applied, problems } = applyPolicy(raw, policy);
    if (problems.length) throw new CliUsageError(problems.join('; '));
    const config = parseConfig(applied, simEnv, policy.overrides.length ? `${source} with policy ${policy.name}` : source);
    const simProblems = simulationProblems(config);
    if (simProblems.length) throw new ConfigError(source, simProblems);
    return { policy, config };
  });
}

/** What the config schema cannot check alone: the simulation section names the config's types and pools. */
function simulationProblems(config: Config): string[] {
  const problems: string[] = [];
  config.simulation.onprem.forEach((g, i) => {
    for (const t of g.jobTypes) if (!config.jobTypes[t]) problems.push(`simulation.onprem.${i}.jobTypes: unknown job type "${t}"`);
  });
  for (const p of Object.keys(config.simulation.pools)) if (!config.pools[p]) problems.push(`simulation.pools.${p}: unknown pool "${p}"`);
  return problems;
}

/** `spillway simulate`: replays a trace under each policy and prints them side by side. */
export async function simulateCommand(flags: SimulateFlags, env: Env, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const variants = policyConfigs(read(flags.config, 'config'), flags.config, flags.policy ?? [], env);
  const first = variants[0]!.config;
  const trace = parseTrace(read(flags.trace, 'trace'), flags.trace, new Set(Object.keys(first.jobTypes)));
  if (first.simulation.onprem.length === 0) err.write('spillway simulate: the config lists no simulation.onprem agents: every job waits for the cloud\n');
  const results: SimulationResult[] = [];
  for (const v of variants) results.push(await simulate(v.config, trace, { policy: { name: v.policy.name, spec: v.policy.spec } }));
  if (flags.chart) writeFileSync(flags.chart, renderChart(results));
  if (flags.json) out.write(JSON.stringify({ results: results.map(({ samples: _s, ...r }) => r) }, null, 2) + '\n');
  else out.write(formatReport(results, first.dashboard.currency));
  if (flags.chart) err.write(`spillway simulate: chart written to ${flags.chart}\n`);
  return 0;
}
