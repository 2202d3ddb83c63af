// Original file: proto/google/longrunning/operations.proto


export interface ListOperationsRequest {
  'filter'?: (string);
  'pageSize'?: (number);
  'pageToken'?: (string);
  'name'?: (string);
}

export interface ListOperationsRequest__Output {
  'filter': (string);
  'pageSize': (number);
  'pageToken': (string);
  'name': (string);
}
