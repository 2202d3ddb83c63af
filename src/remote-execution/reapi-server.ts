import * as grpc from '@grpc/grpc-js';
import type { Clock, Logger } from '../lib';

/** One gRPC service to serve: its definition (from {@link reapiProtos}) and its handlers. */
export interface ReapiService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** Options of {@link ReapiServer}. */
export interface ReapiServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** PEM certificate chain and key: the listener then speaks TLS (grpcs://). */
  tls?: { cert: Buffer; key: Buffer };
  /** Largest message accepted or sent; bigger ones fail with RESOURCE_EXHAUSTED before any handler runs. */
  maxMessageBytes: number;
  clock: Clock;
  log: Logger;
}

/** How long in-flight calls may finish at stop before they are cut. */
const DRAIN_MS = 5000;

/**
 * The master's gRPC listener. Services are added before {@link start}; the cache half adds
 * Capabilities, ContentAddressableStorage, ByteStream and ActionCache, and the Execution
 * service registers itself the same way (Capabilities then reports execution enabled).
 */
export class ReapiServer {
  private readonly server: grpc.Server;
  private readonly names = new Set<string>();
  private port: number | undefined;

  constructor(private readonly opts: ReapiServerOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxMessageBytes,
      'grpc.max_send_message_length': opts.maxMessageBytes,
      // Channelz keeps per-call counters and listeners on every stream for an introspection
      // service this server does not offer; a cached Bazel build makes two calls per action.
      'grpc.enable_channelz': 0,
    });
  }

  addService(service: ReapiService): void {
    const name = serviceName(service.definition);
    if (this.names.has(name)) throw new Error(`gRPC service ${name} registered twice`);
    this.server.addService(service.definition, service.implementation);
    this.names.add(name);
  }

  /** Whether a service (e.g. `build.bazel.remote.execution.v2.Execution`) is registered. */
  hasService(name: string): boolean {
    return this.names.has(name);
  }

  /** Binds and serves; resolves with the bound port. */
  async start(): Promise<number> {
    const { host, port, tls } = this.opts;
    const creds = tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false) : grpc.ServerCredentials.createInsecure();
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.port = await new Promise<number>((resolve, reject) => this.server.bindAsync(address, creds, (err, bound) => (err ? reject(err) : resolve(bound))));
    this.opts.log.info('grpc.listening', { host, port: this.port, tls: tls !== undefined, services: [...this.names] });
    return this.port;
  }

  get boundPort(): number {
    if (this.port === undefined) throw new Error('gRPC server not started');
    return this.port;
  }

  /** Lets in-flight calls finish for a moment, then cuts what is left. */
  async stop(): Promise<void> {
    if (this.port === undefined) return;
    const ac = new AbortController();
    const drained = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    const timedOut = this.opts.clock.sleep(DRAIN_MS, ac.signal).then(
      () => false,
      () => true,
    );
    const clean = await Promise.race([drained, timedOut]);
    ac.abort();
    if (!clean) {
      this.opts.log.warn('grpc.stop-forced', { reason: `calls still open after ${DRAIN_MS} ms` });
      this.server.forceShutdown();
    }
    this.port = undefined;
  }
}

/** `build.bazel.remote.execution.v2.ActionCache` from its methods' paths (`/pkg.Service/Method`). */
function serviceName(definition: grpc.ServiceDefinition): string {
  const first = Object.values(definition)[0];
  if (!first) throw new Error('a gRPC service without methods');
  return first.path.split('/')[1]!;
}
