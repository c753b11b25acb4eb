// Child-process entry of the baseline peer: s3rver (a plain filesystem-backed S3 server, no
// erasure coding, no fsync) on 127.0.0.1, port 0. The bench runs it built, by plain `node`, as
// s3rver would be deployed. Prints `PEER_READY {"url":…,"pid":…}` once it serves, and stops on
// SIGTERM/SIGINT or when its parent goes away.
//   s3rver-main.js <directory>
import { createRequire } from 'node:module';
import { announceReady } from '../child-main.js';

/** The part of s3rver's (untyped) API the peer uses. */
interface S3rverServer {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (opts: { address: string; port: number; silent: boolean; directory: string; resetOnClose: boolean }) => S3rverServer;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;
const directory = process.argv[2];
if (!directory) {
  console.error('usage: s3rver-main.js <directory>');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, resetOnClose: false });
const { port } = await server.run();
announceReady('PEER_READY', { url: `http://127.0.0.1:${port}`, pid: process.pid }, () => server.close());
