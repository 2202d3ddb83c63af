#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { engines, version } from '../../package.json';
import { SpillwayError } from '../lib';
import { nodeVersionProblem } from './node-version';

// Commands are loaded when run: an agent process then never loads the master's modules
// (bullmq, fastify, ioredis), which keeps it small, and a smaller process forks builds faster.

const positiveInt = (label: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${label} must be a positive integer`);
  return n;
};
const intUpTo = (label: string, max: number) => (v: string) => {
  const n = positiveInt(label)(v);
  if (n > max) throw new InvalidArgumentError(`${label} must be at most ${max}`);
  return n;
};
/** EX_TEMPFAIL (sysexits.h): retry later, with the same --job-id. */
const REDIS_UNAVAILABLE_EXIT = 75;
const collect = (v: string, prev: string[] = []) => [...prev, v];
/** The HTTP API's URL, for the commands that talk to it (the agent's `--master` is the websocket listener). */
const masterUrlOption = () => new Option('--master <url>', "the master's HTTP API, http://HOST:PORT").env('SPILLWAY_MASTER').makeOptionMandatory();

/**
 * Exit codes: 0 ok (or the build's own code for `submit --wait`, see wait-exit.ts), 2 bad usage
 * or config, 75 (EX_TEMPFAIL) the master is up but its Redis is unreachable (with `--wait`: the
 * master or its Redis unreachable for longer than --wait-timeout), 1 anything else.
 */
async function run(argv: string[]): Promise<number> {
  const tooOld = nodeVersionProblem(process.versions.node, engines.node);
  if (tooOld) {
    process.stderr.write(`spillway: ${tooOld}\n`);
    return 1;
  }
  let code = 0;
  const program = new Command('spillway')
    .version(version)
    .description('CI overflow autoscaler for hybrid build farms')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('master')
    .description('run the master daemon (queues, dispatch, agent listener, HTTP API)')
    .requiredOption('-c, --config <file>', 'YAML config file (see config/example.yaml)')
    .action(async (o: { config: string }) => {
      code = await (await import('./master-command.js')).masterCommand(o);
    });

  program
    .command('agent')
    .description('run a build agent that connects to a master')
    .addOption(new Option('--master <url>', "the master's agent listener, ws://HOST:PORT or wss://HOST:PORT").env('SPILLWAY_AGENT_MASTER').makeOptionMandatory())
    .addOption(new Option('--token <token>', 'agent token (visible to other users in the process list: prefer --token-file)').env('SPILLWAY_AGENT_TOKEN'))
    .option('--token-file <file>', 'read the agent token from this file (mode 0600), e.g. /etc/spillway/agent-token')
    .requiredOption('--name <name>', 'unique agent name')
    .addOption(new Option('--location <where>', 'where this machine is').choices(['onprem', 'cloud']).default('onprem'))
    .requiredOption('--job-types <list>', 'comma-separated job types this agent serves')
    .option('--executors <n>', 'builds run at once', '1')
    .option('--labels <list>', 'comma-separated labels jobs can require')
    .option('--instance-id <id>', 'cloud instance id; "imds" reads it from EC2\'s instance metadata (IMDSv2)')
    .addOption(new Option('--imds-url <url>', 'instance metadata base URL').default('http://169.254.169.254').hideHelp())
    .addOption(new Option('--notice-poll-sec <sec>', 'how often an agent on EC2 asks IMDS for spot notices').default('5').hideHelp())
    .option('--work-dir <dir>', 'where builds run (default: a temp dir)')
    .option('--state-dir <dir>', "the agent's own files, e.g. build output the master has not confirmed yet (default: a temp dir)")
    .option('--cas <url>', "the master's CAS for actions, e.g. http://MASTER:8080/cache")
    .addOption(new Option('--cas-token <token>', 'token for the CAS routes').env('SPILLWAY_CAS_TOKEN'))
    .option('--cas-token-file <file>', 'read the CAS token from this file (mode 0600)')
    .option('--cache-dir <dir>', 'the local CAS cache (default: a dir in the temp dir)')
    .option('--build-user <user>', 'when started as root: the user (name, uid or UID:GID) builds run as (default nobody); "root" runs them as root')
    .addOption(new Option('--input-max-depth <n>', "an action's input tree deeper than this fails the action").default('256').hideHelp())
    .addOption(new Option('--input-max-entries <n>', "an action's input tree with more entries than this fails the action").default('1000000').hideHelp())
    .option('--ca <file>', "PEM CA to check a wss:// master's certificate with (default: the system CAs)")
    .option('--cert <file>', 'PEM client certificate, for a master that requires one (with --key)')
    .option('--key <file>', 'PEM private key of --cert')
    .addOption(
      new Option('--isolation <mode>', 'confine builds that ask for resources (cgroups, else rlimits)').choices(['auto', 'off']).default('auto'),
    )
    .option('--build-disk-mb <mib>', "disk limit of a build whose job and job type name none (default: none)")
    .addOption(new Option('--disk-limit <mode>', 'auto: a loop-mounted image per build where root can mount one, else watch the work dir').choices(['auto', 'watch']).default('auto'))
    .addOption(new Option('--disk-poll-ms <ms>', "how often a build's disk use is checked").default('1000').hideHelp())
    .option('--min-free-mb <mib>', 'free space kept on the work and cache filesystems: below it the cache evicts, then the agent takes no builds', '1024')
    .addOption(new Option('--disk-check-sec <sec>', 'how often free space is checked').default('5').hideHelp())
    .option('--build-cpu-max <share>', "CPU ceiling for all builds together, e.g. 95% of the machine's cores (cgroup; default: none)")
    .option('--kill-grace-sec <sec>', 'a cancelled or timed-out build gets SIGTERM, then SIGKILL this much later', '10')
    .addOption(new Option('--log-level <level>').choices(['error', 'warn', 'info', 'debug']).default('info'))
    .addOption(new Option('--log-format <format>', 'auto: readable on a terminal, JSON lines otherwise').choices(['json', 'pretty', 'auto']).default('auto'))
    .action(async (o) => {
      code = await (await import('./agent-command.js')).agentCommand(o, process.env);
    });

  program
    .command('submit')
    .description('submit a build; with --wait, stream its log and exit with its exit code')
    .addOption(masterUrlOption())
    .requiredOption('--type <type>', 'job type (queue)')
    .addOption(new Option('--token <token>', "the master's API token (submit or admin; needed once the master has any)").env('SPILLWAY_TOKEN'))
    .option('--wait', 'wait for the build, stream its log, exit with its exit code (see the README for the others)')
    .option('--wait-timeout <sec>', 'with --wait: give up (exit 75) once the master has been unreachable this long (default 600)', positiveInt('--wait-timeout'))
    .option('--shell', 'run the command words through /bin/sh -c')
    .option('--env <NAME=VALUE>', 'environment for the build (repeatable)', collect)
    .option('--label <label>', 'required agent label (repeatable)', collect)
    .option('--timeout <sec>', 'build timeout in seconds', positiveInt('--timeout'))
    .option('--attempts <n>', 'attempts when an agent is lost', positiveInt('--attempts'))
    .option('--priority <n>', 'queue priority, 1 the highest (jobs without one go first; up to 2097152)', positiveInt('--priority'))
    .option('--job-id <id>', 'your own job id: submitting it again returns that job instead of running a second build')
    .argument('<command...>', 'the command, after --')
    .action(async (command: string[], o) => {
      code = await (await import('./submit-command.js')).submitCommand(command, o, process.stdout, process.stderr);
    });

  const apiToken = (what: string) => new Option('--token <token>', `the master's API token (${what})`).env('SPILLWAY_TOKEN');
  program
    .command('cancel')
    .description('cancel a job: a waiting one never runs, a running build is killed on its agent')
    .argument('<id>', 'the job id')
    .addOption(masterUrlOption())
    .addOption(apiToken('submit or admin; needed once the master has any'))
    .option('--reason <text>', 'why (kept with the job, shown with it)')
    .option('--type <type>', 'the job type, for a raw BullMQ id used in more than one queue')
    .action(async (id: string, o) => {
      code = await (await import('./cancel-command.js')).cancelCommand(id, o, process.stdout, process.stderr);
    });

  program
    .command('retry')
    .description('submit a finished or cancelled job again: same payload, a new id linked to the old one')
    .argument('<id>', 'the job id')
    .addOption(masterUrlOption())
    .addOption(apiToken('submit or admin; needed once the master has any'))
    .option('--wait', 'wait for the new build, stream its log, exit with its exit code (as submit --wait)')
    .option('--wait-timeout <sec>', 'with --wait: give up (exit 75) once the master has been unreachable this long (default 600)', positiveInt('--wait-timeout'))
    .option('--type <type>', 'the job type, for a raw BullMQ id used in more than one queue')
    .action(async (id: string, o) => {
      code = await (await import('./retry-command.js')).retryCommand(id, o, process.stdout, process.stderr);
    });

  program
    .command('logs')
    .description("print a job's log (raw, the latest attempt); --follow streams it live until the job finishes")
    .argument('<id>', 'the job id')
    .addOption(masterUrlOption())
    .addOption(apiToken('any role; needed once the master has read tokens'))
    .option('--follow', 'stream the live log until the job finishes, then exit as submit --wait does')
    .option('--attempt <n>', 'an earlier attempt (without --follow)', positiveInt('--attempt'))
    .option('--wait-timeout <sec>', 'with --follow: give up (exit 75) once the master has been unreachable this long (default 600)', positiveInt('--wait-timeout'))
    .option('--type <type>', 'the job type, for a raw BullMQ id used in more than one queue')
    .action(async (id: string, o) => {
      code = await (await import('./logs-command.js')).logsCommand(id, o, process.stdout, process.stderr);
    });

  program
    .command('run')
    .description('run a command as a cached action: upload inputs, run (or hit the cache), download outputs')
    .addOption(masterUrlOption())
    .requiredOption('--inputs <dir>', 'the input tree (also where outputs are written)')
    .addOption(new Option('--token <token>', "the master's API token (submit or admin; needed once the master has any)").env('SPILLWAY_TOKEN'))
    .option('--output <path>', 'an output file, relative to --inputs (repeatable)', collect)
    .option('--output-dir <path>', 'an output directory, relative to --inputs (repeatable)', collect)
    .requiredOption('--type <type>', 'job type (queue) to run it as')
    .option('--env <NAME=VALUE>', 'environment for the action (repeatable; part of its digest)', collect)
    .option('--timeout <sec>', 'action timeout in seconds', positiveInt('--timeout'))
    .option('--cas-prefix <path>', "the master's cas.prefix, e.g. /cache")
    .addOption(new Option('--cas-token <token>', 'token for the CAS routes').env('SPILLWAY_CAS_TOKEN'))
    .argument('<command...>', 'the command, after --')
    .action(async (command: string[], o) => {
      code = await (await import('./run-command.js')).runCommand(command, o, process.stdout, process.stderr);
    });

  program
    .command('status')
    .description('show queues, agents and recent builds; with a job id, that job')
    .argument('[job]', 'a job id: its state, priority, attempts, who cancelled it, its retries')
    .addOption(masterUrlOption())
    .option('--json', 'print JSON')
    .addOption(new Option('--token <token>', "the master's API token (any role; needed once the master has read tokens)").env('SPILLWAY_TOKEN'))
    .option('--builds <n>', 'recent builds to show', positiveInt('--builds'), 10)
    .option('--type <type>', 'with a job id: the job type, for a raw BullMQ id used in more than one queue')
    .action(async (job: string | undefined, o) => {
      const status = await import('./status-command.js');
      code = job === undefined ? await status.statusCommand(o, process.stdout) : await status.jobStatusCommand(job, o, process.stdout);
    });

  const vpn = program.command('vpn').description('WireGuard tooling for a VPN-only cloud pool');
  vpn
    .command('init')
    .description('generate WireGuard hub and peer configs and EC2 user-data for cloud agents')
    .requiredOption('--out <dir>', 'directory to write hub/ and peers/ into')
    .option('--network <cidr>', 'the tunnel network; the hub takes its first address', '10.77.0.0/24')
    .requiredOption('--hub-endpoint <host:port>', 'where peers reach the hub, e.g. vpn.example.com:51820')
    .option('--peers <n>', 'peers (cloud instances) to make', positiveInt('--peers'), 1)
    .option('--agent-port <port>', "the master's agent listener port on the hub address", positiveInt('--agent-port'), 8081)
    .option('--job-types <list>', "job types the instances' agents serve (their user-data)", 'b2g')
    .option('--executors <n>', 'builds each instance runs at once', positiveInt('--executors'), 1)
    .option('--force', 'replace files that already exist')
    .action(async (o) => {
      code = (await import('./vpn-command.js')).vpnInitCommand(o, process.env, process.stdout);
    });

  program
    .command('config')
    .description('configuration tools')
    .command('check')
    .description('validate a master config offline (exit 2 listing every problem), print it with defaults filled in and secrets redacted, and the overflow decision for a backlog')
    .argument('<file>', 'YAML config file')
    .option('--backlog <list>', 'jobs waiting per type, TYPE=COUNT[:OLDEST_WAIT_SEC], comma-separated, e.g. b2g=12,linux64=0')
    .action(async (file: string, o: { backlog?: string }) => {
      code = (await import('./config-check-command.js')).configCheckCommand(file, o, process.env, process.stdout);
    });

  program
    .command('simulate')
    .description("replay a trace of job arrivals against the config's overflow policies on simulated time and compare them")
    .requiredOption('-c, --config <file>', 'the farm\'s YAML config, with a simulation section (see config/example.yaml)')
    .requiredOption('--trace <file>', 'CSV (time,type,duration[,os,arch,pool,cpus,memoryMb,labels]) or JSON lines')
    .option('--policy <NAME=k=v,...>', 'a variant to compare, e.g. short=quiet=15m,suspend=stop or strict=b2g.minBacklog=4 (repeatable; see the README)', collect)
    .option('--json', 'print JSON')
    .option('--chart <file.svg>', 'also draw backlog and instances over time per policy as SVG')
    .action(async (o) => {
      code = await (await import('./simulate-command.js')).simulateCommand(o, process.env, process.stdout, process.stderr);
    });

  program
    .command('export-trace')
    .description("write the master's recent builds as a trace for spillway simulate")
    .addOption(masterUrlOption())
    .addOption(apiToken('any role; needed once the master has read tokens'))
    .option('--since <duration>', 'how far back, e.g. 7d, 12h', '7d')
    .option('--out <file>', 'write here instead of stdout')
    .action(async (o) => {
      const { exportTraceCommand } = await import('./export-trace-command.js');
      const { orUnreachable } = await import('./master-client.js');
      code = await orUnreachable(process.stderr, () => exportTraceCommand(o, process.stdout, process.stderr));
    });

  program
    .command('demo')
    .description('run the embedded local farm: a master, on-prem agents, a local cloud pool and sample jobs')
    .option('--jobs <n>', 'stop after this many builds', positiveInt('--jobs'))
    .option('--interval <ms>', 'milliseconds between trickle jobs', positiveInt('--interval'), 700)
    .option('--burst-every <sec>', 'seconds between bursts of b2g jobs (the first after 3 s)', positiveInt('--burst-every'), 45)
    .option('--burst-size <n>', 'jobs per burst', positiveInt('--burst-size'), 8)
    .option('--quiet-sec <sec>', "the cloud pool's quiet period, compressed to seconds", positiveInt('--quiet-sec'), 15)
    .option('--verbose', 'a line for every build (default: a summary every few seconds, plus every cloud event)')
    .option('--summary-every <sec>', 'seconds between summary lines (--remote: progress lines; default 2 there)', positiveInt('--summary-every'))
    .option('--remote', 'a burst of remote actions (REAPI over gRPC, Bazel when installed) instead of the sample load')
    .option('--actions <n>', '--remote: actions in the burst (at most 500)', intUpTo('--actions', 500), 24)
    .option('--action-ms <ms>', '--remote: how long each action sleeps (at most 60000)', intUpTo('--action-ms', 60_000), 1000)
    .addOption(new Option('--client <client>', '--remote: bazel, the builtin REAPI client, or auto (Bazel when on PATH)').choices(['auto', 'bazel', 'builtin']).default('auto'))
    .option('--exit-when-done', '--remote: exit after the summary instead of keeping the farm up until Ctrl-C')
    .action(async (o) => {
      code = await (await import('./demo-command.js')).demoCommand(o, process.env, process.stdout);
    });

  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { exitCode?: number; code?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    }
    process.stderr.write(`spillway: ${e.message}\n`);
    if (e instanceof SpillwayError && e.code === 'SPILLWAY_E_REDIS_UNAVAILABLE') return REDIS_UNAVAILABLE_EXIT;
    if (e instanceof SpillwayError) return e.disposition === 'fatal' && e.code !== 'SPILLWAY_E_MASTER_UNAVAILABLE' ? 2 : 1;
    return 1;
  }
  return code;
}

run(process.argv).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`spillway: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
