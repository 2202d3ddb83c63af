// Original file: proto/google/bytestream/bytestream.proto

import type { Long } from '@grpc/proto-loader';

export interface ReadRequest {
  'resourceName'?: (string);
  'readOffset'?: (number | string | Long);
  'readLimit'?: (number | string | Long);
}

export interface ReadRequest__Output {
  'resourceName': (string);
  'readOffset': (number);
  'readLimit': (number);
}
