import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createS3Client, S3Objects, type S3ClientHandle } from '../../src/cas';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (o: { address: string; port: number; directory: string; silent: boolean; configureBuckets: Array<{ name: string }> }) => S3rverInstance;
// s3rver ships no types; this is the part of its API the tests use.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as S3rverClass;

export const TEST_BUCKET = 'spillway-test';

/**
 * A real S3-compatible server (s3rver) on a free loopback port with its objects in a temp dir,
 * reached through the real SDK. `stop()` takes it away (connections are refused) and `start()`
 * brings it back on the same port with the same objects, for outage tests.
 */
export class TestS3 {
  private server: S3rverInstance | undefined;
  private readonly clients: S3ClientHandle[] = [];
  port = 0;

  private constructor(readonly dir: string) {}

  static async start(): Promise<TestS3> {
    const s3 = new TestS3(await fsp.mkdtemp(path.join(os.tmpdir(), 'spillway-s3-')));
    await s3.start();
    return s3;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = new S3rver({ address: '127.0.0.1', port: this.port, directory: this.dir, silent: true, configureBuckets: [{ name: TEST_BUCKET }] });
    this.port = (await this.server.run()).port;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  /** An SDK client for this server (destroyed by {@link close}). */
  client(): S3ClientHandle {
    const c = createS3Client({ region: 'us-east-1', endpoint: this.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    this.clients.push(c);
    return c;
  }

  objects(): S3Objects {
    return new S3Objects(this.client(), TEST_BUCKET);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await this.stop();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
