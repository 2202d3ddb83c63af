// Original file: proto/google/bytestream/bytestream.proto

import type { Long } from '@grpc/proto-loader';

export interface WriteRequest {
  'resourceName'?: (string);
  'writeOffset'?: (number | string | Long);
  'finishWrite'?: (boolean);
  'data'?: (Buffer | Uint8Array | string);
}

export interface WriteRequest__Output {
  'resourceName': (string);
  'writeOffset': (number);
  'finishWrite': (boolean);
  'data': (Buffer);
}
