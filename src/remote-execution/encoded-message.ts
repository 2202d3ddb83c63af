import type { ServiceDefinition } from '@grpc/grpc-js';

/** Buffers handed out by {@link preEncoded}: the wrapped serializers send only these as they are. */
const encoded = new WeakSet<Buffer>();

/**
 * `bytes`, already a message's protobuf encoding, typed as that message so a handler can
 * answer with it: sent as it is, without a decode and a re-encode, by a method whose
 * serializer {@link passEncoded} wrapped. An action result is stored encoded; decoding it into
 * an object only for grpc-js to encode it again was most of GetActionResult's CPU.
 */
export function preEncoded<T>(bytes: Buffer): T {
  encoded.add(bytes);
  return bytes as unknown as T;
}

/**
 * `definition` with the response serializer of `methods` passing {@link preEncoded} bytes
 * through; any other value is serialized as before. (proto-loader's serializer would take a
 * Buffer for an object and send an empty message.)
 */
export function passEncoded<D extends ServiceDefinition>(definition: D, methods: ReadonlyArray<keyof D & string>): D {
  const out: Record<string, ServiceDefinition[string]> = { ...definition };
  for (const name of methods) {
    const method = definition[name];
    if (!method) throw new Error(`no method ${name} in the service definition`);
    const serialize = method.responseSerialize;
    out[name] = { ...method, responseSerialize: (value: unknown) => (Buffer.isBuffer(value) && encoded.has(value) ? value : serialize(value)) };
  }
  return out as D;
}
