// PUT and GET throughput of one large object on a local cluster, and the gateway's peak RSS
// (VmHWM) during it — run for two sizes to show memory does not grow with object size.
//   node --import tsx bench/large-object.ts [--sizes 256,1024] (MiB)
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startCluster } from '../deploy/cluster.js';

const MiB = 1024 * 1024;
const { values } = parseArgs({ options: { sizes: { type: 'string', default: '256,1024' } } });
const sizes = values.sizes!.split(',').map((s) => Number(s) * MiB);

/** Deterministic, cheap pseudo-random bytes, produced in 1 MiB chunks so the client holds no big buffer. */
function* pattern(size: number): Generator<Buffer> {
  const chunk = Buffer.alloc(MiB);
  let x = 0x9e3779b9;
  for (let off = 0; off < size; off += MiB) {
    for (let i = 0; i < MiB; i += 4) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      chunk.writeInt32LE(x | 0, i);
    }
    yield Buffer.from(chunk.subarray(0, Math.min(MiB, size - off)));
  }
}

async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-'));
const cluster = await startCluster({ dataDir, port: 0, accessKeyId: 'bench', secretAccessKey: 'bench-secret' });
try {
  const s3 = new S3Client({ endpoint: cluster.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' } });
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  const gatewayPid = cluster.services.get('gateway')!.child.pid!;
  console.log(`gateway pid ${gatewayPid}, RSS high-water mark at start ${((await peakRss(gatewayPid)) / MiB).toFixed(0)} MiB`);
  console.log('size_MiB  put_MB/s  get_MB/s  gateway_peak_RSS_MiB  verified');
  for (const size of sizes) {
    const expected = createHash('sha256');
    const source = Readable.from((function* () { for (const c of pattern(size)) { expected.update(c); yield c; } })());
    let t0 = performance.now();
    await s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `obj-${size}`, Body: source, ContentLength: size }));
    const putSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const res = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `obj-${size}` }));
    const actual = createHash('sha256');
    for await (const chunk of res.Body as Readable) actual.update(chunk as Buffer);
    const getSeconds = (performance.now() - t0) / 1000;
    const ok = actual.digest('hex') === expected.digest('hex');
    const rss = await peakRss(gatewayPid);
    console.log(`${String(size / MiB).padEnd(9)} ${(size / 1e6 / putSeconds).toFixed(1).padEnd(9)} ${(size / 1e6 / getSeconds).toFixed(1).padEnd(9)} ${(rss / MiB).toFixed(0).padEnd(21)} ${ok}`);
    if (!ok) process.exitCode = 1;
  }
  s3.destroy();
} finally {
  await cluster.stop();
  await rm(dataDir, { recursive: true, force: true });
}
