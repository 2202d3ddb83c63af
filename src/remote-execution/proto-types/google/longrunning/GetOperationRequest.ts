// Original file: proto/google/longrunning/operations.proto


export interface GetOperationRequest {
  'name'?: (string);
}

export interface GetOperationRequest__Output {
  'name': (string);
}
