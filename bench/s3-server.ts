/**
 * The S3-compatible server of bench/cas-s3.ts in a process of its own (s3rver, objects under
 * argv[2], bucket argv[3]), so its work does not share the measured event loop. Prints
 * `listening http://127.0.0.1:PORT`; stops on SIGTERM.
 */
interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (o: { address: string; port: number; directory: string; silent: boolean; configureBuckets: Array<{ name: string }> }) => S3rverInstance;
// s3rver ships no types; this is the part of its API used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as S3rverClass;

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) throw new Error('usage: s3-server.js DIR BUCKET');
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] });
void server.run().then(({ port }) => console.log(`listening http://127.0.0.1:${port}`));
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
