import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * What loading the master's composition root costs before it knows the config: none of the
 * heavy modules only some farms need (the AWS SDK ~70 MB resident, gRPC, protobufjs, node-cron).
 * Checked in a fresh process, since this one has loaded everything for other suites.
 */
describe('spillway master: heavy modules load only when the config needs them', () => {
  it('importing the daemon and the master loads no AWS SDK, gRPC, protobufjs or node-cron', () => {
    const daemon = resolve(__dirname, '../../src/cli/daemon.js');
    const out = execFileSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(daemon)}); console.log(JSON.stringify(Object.keys(require.cache)))`],
      { encoding: 'utf8' },
    );
    const loaded = JSON.parse(out) as string[];
    assert.ok(loaded.some((p) => p.includes('/bullmq/')), 'the probe sees node_modules at all');
    for (const heavy of ['/@aws-sdk/client-ec2/', '/@aws-sdk/client-sqs/', '/@aws-sdk/client-s3/', '/@grpc/grpc-js/', '/@grpc/proto-loader/', '/protobufjs/', '/node-cron/']) {
      assert.deepEqual(loaded.filter((p) => p.includes(heavy)).slice(0, 1), [], `${heavy} is loaded`);
    }
  });
});
