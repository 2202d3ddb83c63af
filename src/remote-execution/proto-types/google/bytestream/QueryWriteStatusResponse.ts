// Original file: proto/google/bytestream/bytestream.proto

import type { Long } from '@grpc/proto-loader';

export interface QueryWriteStatusResponse {
  'committedSize'?: (number | string | Long);
  'complete'?: (boolean);
}

export interface QueryWriteStatusResponse__Output {
  'committedSize': (number);
  'complete': (boolean);
}
