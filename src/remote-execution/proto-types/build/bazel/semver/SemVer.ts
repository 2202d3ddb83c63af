// Original file: proto/build/bazel/semver/semver.proto


export interface SemVer {
  'major'?: (number);
  'minor'?: (number);
  'patch'?: (number);
  'prerelease'?: (string);
}

export interface SemVer__Output {
  'major': (number);
  'minor': (number);
  'patch': (number);
  'prerelease': (string);
}
