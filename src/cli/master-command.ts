import { resolve } from 'node:path';
import { loadConfigFile } from '../config';
import { createLogger } from '../lib';
import { startDaemon } from './daemon';
import { applyHeapSettings } from './heap-settings';
import { onShutdownSignal } from './shutdown';

/** `spillway master --config FILE`: runs until SIGTERM/SIGINT, then stops gracefully. */
export async function masterCommand(flags: { config: string }): Promise<number> {
  const config = loadConfigFile(flags.config);
  const log = createLogger({ level: config.log.level, format: config.log.format });
  log.debug('memory.heap-settings', { flag: applyHeapSettings(config.memory) });
  const daemon = await startDaemon({ config, log, agentCommand: [process.execPath, resolve(__dirname, 'main.js')] });
  const addresses = daemon.addresses;
  process.stderr.write(`spillway master: HTTP API ${addresses.httpUrl}, agents connect to ${addresses.agentUrl}\n`);
  if (addresses.grpcUrl) process.stderr.write(`spillway master: REAPI (Bazel --remote_cache=) ${addresses.grpcUrl}\n`);
  // SIGHUP re-reads the file: overflow rules change without restarting anything.
  process.on('SIGHUP', () => {
    try {
      const next = loadConfigFile(flags.config);
      const restartOnly = daemon.reload(next);
      log.debug('memory.heap-settings', { flag: applyHeapSettings(next.memory) });
      process.stderr.write(
        `spillway master: reloaded ${flags.config}${restartOnly.length ? `; needs a restart to apply: ${restartOnly.join(', ')}` : ''}\n`,
      );
    } catch (err) {
      log.error('config.reload-failed', { file: flags.config, error: (err as Error).message });
      process.stderr.write(`spillway master: not reloaded, keeping the running config: ${(err as Error).message}\n`);
    }
  });
  await onShutdownSignal();
  await daemon.stop();
  return 0;
}
