import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import type { ProtoGrpcType as ReapiGrpcType } from './proto-types/remote_execution';
import type { ProtoGrpcType as ByteStreamGrpcType } from './proto-types/bytestream';
import type { Action, Action__Output } from './proto-types/build/bazel/remote/execution/v2/Action';
import type { ActionResult, ActionResult__Output } from './proto-types/build/bazel/remote/execution/v2/ActionResult';
import type { Command, Command__Output } from './proto-types/build/bazel/remote/execution/v2/Command';
import type { Directory, Directory__Output } from './proto-types/build/bazel/remote/execution/v2/Directory';
import type { Tree, Tree__Output } from './proto-types/build/bazel/remote/execution/v2/Tree';
import type { ExecuteResponse, ExecuteResponse__Output } from './proto-types/build/bazel/remote/execution/v2/ExecuteResponse';
import type {
  ExecuteOperationMetadata,
  ExecuteOperationMetadata__Output,
} from './proto-types/build/bazel/remote/execution/v2/ExecuteOperationMetadata';
import type {
  PreconditionFailure,
  PreconditionFailure__Output,
} from './proto-types/google/rpc/PreconditionFailure';
import type { BadRequest, BadRequest__Output } from './proto-types/google/rpc/BadRequest';
import type { Status, Status__Output } from './proto-types/google/rpc/Status';

/**
 * The .proto files ship in `proto/` at the package root; compiled code runs from
 * dist/src/remote-execution/, three levels below it.
 */
export const PROTO_DIR = resolve(__dirname, '..', '..', '..', 'proto');

const PROTO_FILES = [
  'build/bazel/remote/execution/v2/remote_execution.proto',
  'google/bytestream/bytestream.proto',
  'google/longrunning/operations.proto',
  'google/rpc/error_details.proto',
];

/**
 * How decoded messages look (the `__Output` types in proto-types/ were generated with
 * the same settings: `npm run proto:types`): camelCase fields, int64 as number (sizes
 * stay far below 2^53), enums as their names, every field present with its default.
 * google.protobuf.Any is the exception to camelCase: `{ type_url, value }` (protobufjs bundles
 * it with snake_case names), in the generated types and in {@link MessageCodec} alike.
 */
export const CONVERSION = { longs: Number, enums: String, defaults: true, oneofs: true } as const;

/** Encode to canonical protobuf binary and decode to the `__Output` shape. */
export interface MessageCodec<In, Out> {
  readonly typeUrl: string;
  encode(message: In): Buffer;
  decode(bytes: Uint8Array): Out;
}

export interface ReapiProtos {
  /** `grpc.loadPackageDefinition` of all the files: `.build.bazel.remote.execution.v2.*`, etc. */
  readonly grpc: ReapiGrpcType & ByteStreamGrpcType;
  readonly action: MessageCodec<Action, Action__Output>;
  readonly command: MessageCodec<Command, Command__Output>;
  readonly directory: MessageCodec<Directory, Directory__Output>;
  readonly tree: MessageCodec<Tree, Tree__Output>;
  readonly actionResult: MessageCodec<ActionResult, ActionResult__Output>;
  readonly executeResponse: MessageCodec<ExecuteResponse, ExecuteResponse__Output>;
  readonly executeOperationMetadata: MessageCodec<ExecuteOperationMetadata, ExecuteOperationMetadata__Output>;
  readonly preconditionFailure: MessageCodec<PreconditionFailure, PreconditionFailure__Output>;
  readonly badRequest: MessageCodec<BadRequest, BadRequest__Output>;
  readonly status: MessageCodec<Status, Status__Output>;
}

let loaded: ReapiProtos | undefined;

/** Parses the .proto files once per process (about 20 ms) and returns the same object after. */
export function reapiProtos(): ReapiProtos {
  loaded ??= load();
  return loaded;
}

function load(): ReapiProtos {
  const definition = protoLoader.loadSync(PROTO_FILES, { ...CONVERSION, includeDirs: [PROTO_DIR] });
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
  root.loadSync(PROTO_FILES);
  root.resolveAll();
  const v2 = 'build.bazel.remote.execution.v2.';
  return {
    grpc: grpc.loadPackageDefinition(definition) as unknown as ReapiGrpcType & ByteStreamGrpcType,
    action: codec(root, `${v2}Action`),
    command: codec(root, `${v2}Command`),
    directory: codec(root, `${v2}Directory`),
    tree: codec(root, `${v2}Tree`),
    actionResult: codec(root, `${v2}ActionResult`),
    executeResponse: codec(root, `${v2}ExecuteResponse`),
    executeOperationMetadata: codec(root, `${v2}ExecuteOperationMetadata`),
    preconditionFailure: codec(root, 'google.rpc.PreconditionFailure'),
    badRequest: codec(root, 'google.rpc.BadRequest'),
    status: codec(root, 'google.rpc.Status'),
  };
}

function codec<In, Out>(root: protobuf.Root, name: string): MessageCodec<In, Out> {
  const type = root.lookupType(name);
  return {
    typeUrl: `type.googleapis.com/${name}`,
    encode: (message) => Buffer.from(type.encode(type.fromObject(canonical(type, message as object))).finish()),
    decode: (bytes) => type.toObject(type.decode(bytes), CONVERSION) as Out,
  };
}

/**
 * protobufjs writes every field that is set, defaults included, so a decoded-with-defaults
 * message re-encodes with extra bytes. REAPI digests name the canonical encoding (proto3:
 * default scalars omitted), which is what Bazel and every other client hash, so defaults
 * are dropped here before encoding. Message fields and real oneof members keep presence.
 */
function canonical(type: protobuf.Type, message: object): Record<string, unknown> {
  const input = message as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const value = input[field.name];
    if (value === undefined || value === null) continue;
    field.resolve();
    const child = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (field.map) {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length === 0) continue;
      out[field.name] = Object.fromEntries(entries.map(([k, v]) => [k, child && v ? canonical(child, v as object) : v]));
    } else if (field.repeated) {
      const items = value as unknown[];
      if (items.length === 0) continue;
      out[field.name] = child ? items.map((item) => canonical(child, item as object)) : items;
    } else if (child) {
      out[field.name] = canonical(child, value as object);
    } else if (inRealOneof(field) || !isDefault(field, value)) {
      out[field.name] = value;
    }
  }
  return out;
}

function inRealOneof(field: protobuf.Field): boolean {
  const oneof = field.partOf;
  return oneof !== null && oneof !== undefined && !(oneof.oneof.length === 1 && oneof.name.startsWith('_'));
}

function isDefault(field: protobuf.Field, value: unknown): boolean {
  if (field.resolvedType instanceof protobuf.Enum) {
    return value === 0 || value === field.resolvedType.valuesById[0];
  }
  if (typeof value === 'string') return field.type === 'string' || field.type === 'bytes' ? value === '' : Number(value) === 0;
  if (typeof value === 'number') return value === 0;
  if (typeof value === 'boolean') return !value;
  if (value instanceof Uint8Array) return value.length === 0;
  if (typeof value === 'object' && value !== null && 'low' in value && 'high' in value) {
    const long = value as { low: number; high: number };
    return long.low === 0 && long.high === 0;
  }
  return false;
}
