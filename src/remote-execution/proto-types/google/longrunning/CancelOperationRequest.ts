// Original file: proto/google/longrunning/operations.proto


export interface CancelOperationRequest {
  'name'?: (string);
}

export interface CancelOperationRequest__Output {
  'name': (string);
}
