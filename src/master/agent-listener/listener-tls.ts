import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { AgentsConfig } from '../../config';
import { ConfigError } from '../../lib';

export type ReadFile = (path: string) => Buffer;

/**
 * The TLS options of the agent listener from `agents.tls`, reading the files it names. With
 * `requireClientCert`, the handshake itself refuses an agent without a certificate signed by
 * `ca`, so such a peer never reaches the websocket upgrade.
 */
export function listenerTls(tls: NonNullable<AgentsConfig['tls']>, readFile: ReadFile): TlsOptions & SecureContextOptions {
  const problems: string[] = [];
  const read = (field: 'cert' | 'key' | 'ca', path: string): Buffer | undefined => {
    try {
      return readFile(path);
    } catch (err) {
      problems.push(`agents.tls.${field}: cannot read ${path}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const cert = read('cert', tls.cert);
  const key = read('key', tls.key);
  const ca = tls.ca === undefined ? undefined : read('ca', tls.ca);
  if (problems.length > 0) throw new ConfigError('agents.tls', problems);
  return {
    cert,
    key,
    ...(ca && { ca }),
    requestCert: tls.requireClientCert,
    rejectUnauthorized: tls.requireClientCert,
    minVersion: 'TLSv1.2',
  };
}
