export { reapiProtos, PROTO_DIR, CONVERSION } from './reapi-protos';
export type { ReapiProtos, MessageCodec } from './reapi-protos';
export type * from './reapi-types';
