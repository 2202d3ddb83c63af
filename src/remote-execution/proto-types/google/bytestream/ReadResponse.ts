// Original file: proto/google/bytestream/bytestream.proto


export interface ReadResponse {
  'data'?: (Buffer | Uint8Array | string);
}

export interface ReadResponse__Output {
  'data': (Buffer);
}
