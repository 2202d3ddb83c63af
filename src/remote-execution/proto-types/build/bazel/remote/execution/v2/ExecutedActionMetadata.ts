// Original file: proto/build/bazel/remote/execution/v2/remote_execution.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../../../google/protobuf/Timestamp';
import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from '../../../../../google/protobuf/Any';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../../../google/protobuf/Duration';

export interface ExecutedActionMetadata {
  'worker'?: (string);
  'queuedTimestamp'?: (_google_protobuf_Timestamp | null);
  'workerStartTimestamp'?: (_google_protobuf_Timestamp | null);
  'workerCompletedTimestamp'?: (_google_protobuf_Timestamp | null);
  'inputFetchStartTimestamp'?: (_google_protobuf_Timestamp | null);
  'inputFetchCompletedTimestamp'?: (_google_protobuf_Timestamp | null);
  'executionStartTimestamp'?: (_google_protobuf_Timestamp | null);
  'executionCompletedTimestamp'?: (_google_protobuf_Timestamp | null);
  'outputUploadStartTimestamp'?: (_google_protobuf_Timestamp | null);
  'outputUploadCompletedTimestamp'?: (_google_protobuf_Timestamp | null);
  'auxiliaryMetadata'?: (_google_protobuf_Any)[];
  'virtualExecutionDuration'?: (_google_protobuf_Duration | null);
}

export interface ExecutedActionMetadata__Output {
  'worker': (string);
  'queuedTimestamp': (_google_protobuf_Timestamp__Output | null);
  'workerStartTimestamp': (_google_protobuf_Timestamp__Output | null);
  'workerCompletedTimestamp': (_google_protobuf_Timestamp__Output | null);
  'inputFetchStartTimestamp': (_google_protobuf_Timestamp__Output | null);
  'inputFetchCompletedTimestamp': (_google_protobuf_Timestamp__Output | null);
  'executionStartTimestamp': (_google_protobuf_Timestamp__Output | null);
  'executionCompletedTimestamp': (_google_protobuf_Timestamp__Output | null);
  'outputUploadStartTimestamp': (_google_protobuf_Timestamp__Output | null);
  'outputUploadCompletedTimestamp': (_google_protobuf_Timestamp__Output | null);
  'auxiliaryMetadata': (_google_protobuf_Any__Output)[];
  'virtualExecutionDuration': (_google_protobuf_Duration__Output | null);
}
