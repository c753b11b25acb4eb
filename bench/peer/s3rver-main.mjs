// Child-process entry of the baseline peer: s3rver (a plain filesystem-backed S3 server, no
// erasure coding, no fsync) on 127.0.0.1, port 0. Plain JavaScript run by plain `node` (no tsx
// loader), as s3rver would be deployed. Prints `PEER_READY {"url":…,"pid":…}` once it serves,
// and stops on SIGTERM/SIGINT or when its parent goes away.
//   node bench/peer/s3rver-main.mjs <directory>
import { createRequire } from 'node:module';

const S3rver = createRequire(import.meta.url)('s3rver');
const directory = process.argv[2];
if (!directory) {
  console.error('usage: s3rver-main.mjs <directory>');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, resetOnClose: false });
const { port } = await server.run();
process.stdout.write(`PEER_READY ${JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) process.exit(1);
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  server.close().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The bench may be SIGKILLed: never outlive it.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000).unref();
