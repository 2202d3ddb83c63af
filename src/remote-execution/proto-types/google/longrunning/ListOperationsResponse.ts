// Original file: proto/google/longrunning/operations.proto

import type { Operation as _google_longrunning_Operation, Operation__Output as _google_longrunning_Operation__Output } from '../../google/longrunning/Operation';

export interface ListOperationsResponse {
  'operations'?: (_google_longrunning_Operation)[];
  'nextPageToken'?: (string);
}

export interface ListOperationsResponse__Output {
  'operations': (_google_longrunning_Operation__Output)[];
  'nextPageToken': (string);
}
