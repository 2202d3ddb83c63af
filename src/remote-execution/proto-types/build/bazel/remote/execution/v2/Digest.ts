// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Long } from '@grpc/proto-loader';

export interface Digest {
  'hash'?: (string);
  'sizeBytes'?: (number | string | Long);
}

export interface Digest__Output {
  'hash': (string);
  'sizeBytes': (number);
}
