// End to end: the real cluster as OS processes (namespace, 6 storage nodes, gateway, repair), driven
// through @aws-sdk/client-s3 with its default settings. Objects survive SIGKILL of two storage
// nodes and a full restart of the cluster.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  type S3Client,
} from '@aws-sdk/client-s3';
import { RepairClient, type NodeDamage } from '../repair/client.js';
import { REFUSED_MEMORY_MS } from '../gateway/data/node-directory.js';
import { startTestCluster, s3ClientFor, gatewayMetric, ACCESS_KEY_ID, type TestCluster } from './helpers/cluster.js';

const MiB = 1024 * 1024;
const BUCKET = 'e2e-bucket';
// 8 MiB segments so that the 20 MiB object spans three segments, each with its own placement.
const SEGMENT_SIZE = 8 * MiB;
const SIZES: Record<string, number> = {
  'empty': 0,
  'one-byte': 1,
  'mib-minus-1': MiB - 1,
  'mib': MiB,
  'mib-plus-1': MiB + 1,
  'dir/large 20mib+7': 20 * MiB + 7,
};

const objects = new Map<string, Buffer>(Object.entries(SIZES).map(([key, size]) => [key, randomBytes(size)]));

function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/** The gateway's count of read windows it had to reconstruct from parity. */
const degradedReads = (endpoint: string): Promise<number> => gatewayMetric(endpoint, 'cairn_degraded_read_windows_total');

/** The gateway's count of stripe buffers it reused from its pool. */
const reusedStripeBuffers = (endpoint: string): Promise<number> => gatewayMetric(endpoint, 'cairn_stripe_buffers_taken{source="reused"}');

/** The gateway's count of shard reads that failed with `code`. */
const shardReadFailures = (endpoint: string, code: string): Promise<number> => gatewayMetric(endpoint, `cairn_shard_read_failures_total{code="${code}"}`);

async function shardFiles(nodeDir: string): Promise<string[]> {
  const out: string[] = [];
  const root = path.join(nodeDir, 'shards');
  for (const fan of await readdir(root)) for (const f of await readdir(path.join(root, fan))) out.push(path.join(root, fan, f));
  return out;
}

function md5(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

async function getBytes(s3: S3Client, key: string, range?: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: range }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/** Ranges that start, end and straddle block (256 KiB), stripe (1 MiB) and segment (8 MiB) boundaries. */
function rangesFor(size: number): [string, number, number][] {
  if (size === 0) return [];
  const cases: [number, number][] = [[0, 0], [size - 1, size - 1], [0, size - 1]];
  for (const boundary of [256 * 1024, MiB, SEGMENT_SIZE, 2 * SEGMENT_SIZE]) {
    if (boundary < size) cases.push([Math.max(0, boundary - 5), Math.min(size - 1, boundary + 5)]);
  }
  if (size > 3 * MiB) cases.push([MiB + 12345, size - 777]);
  const out: [string, number, number][] = cases.map(([a, b]) => [`bytes=${a}-${b}`, a, b]);
  out.push([`bytes=-${Math.min(size, 1000)}`, size - Math.min(size, 1000), size - 1]);
  out.push([`bytes=${Math.floor(size / 2)}-`, Math.floor(size / 2), size - 1]);
  return out;
}

async function verifyAll(t: Test, s3: S3Client, label: string): Promise<void> {
  for (const [key, data] of objects) {
    const whole = await getBytes(s3, key);
    t.ok(whole.equals(data), `${label}: ${key} (${data.length} B) reads back intact`);
    for (const [range, a, b] of rangesFor(data.length)) {
      const part = await getBytes(s3, key, range);
      t.ok(part.equals(data.subarray(a, b + 1)), `${label}: ${key} ${range}`);
    }
  }
}

async function expectS3Error(t: Test, promise: Promise<unknown>, code: string, status: number): Promise<void> {
  try {
    await promise;
    t.fail(`expected ${code}`);
  } catch (err) {
    if (!(err instanceof S3ServiceException)) throw err;
    t.equal(err.name, code, `error code ${code}`);
    t.equal(err.$metadata.httpStatusCode, status, `${code} has HTTP status ${status}`);
  }
}

t.test('a real cluster stores erasure-coded objects and survives node loss and restart', async (t) => {
  // Nodes count as down 4 s after their last heartbeat, so the repair service's plan can be checked.
  const options = { segmentSize: SEGMENT_SIZE, downAfter: '4s', shardTimeout: '2s' };
  let env: TestCluster = await startTestCluster(options);
  const dataDir = env.dataDir;
  t.teardown(async () => {
    await env.destroy();
    if (!process.env.CAIRN_KEEP_TEST_DATA) await rm(dataDir, { recursive: true, force: true });
  });
  let { s3, cluster } = env;

  await t.test('buckets', async (t) => {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(new HeadBucketCommand({ Bucket: BUCKET }));
    const list = await s3.send(new ListBucketsCommand({}));
    t.same(list.Buckets?.map((b) => b.Name), [BUCKET]);
    await expectS3Error(t, s3.send(new CreateBucketCommand({ Bucket: BUCKET })), 'BucketAlreadyOwnedByYou', 409);
    await expectS3Error(t, s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })), 'InvalidBucketName', 400);
  });

  await t.test('put objects of odd sizes, with Buffer and streaming (aws-chunked) bodies', async (t) => {
    for (const [key, data] of objects) {
      const streamed = data.length > MiB; // the SDK sends streams as aws-chunked with a CRC32 trailer
      const body = streamed ? Readable.from(chunksOf(data, 64 * 1024)) : data;
      const res = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentLength: data.length, ContentType: 'application/x-test', Metadata: { origin: 'e2e' } }));
      t.equal(res.ETag, md5(data), `${key}: ETag is the MD5 of the bytes`);
      t.equal(res.$metadata.httpStatusCode, 200);
    }
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'mib-plus-1' }));
    t.equal(head.ContentLength, MiB + 1);
    t.equal(head.ContentType, 'application/x-test');
    t.same(head.Metadata, { origin: 'e2e' });
    t.equal(head.ETag, md5(objects.get('mib-plus-1')!));
  });

  await t.test('read back whole and by ranges', async (t) => {
    // The multi-stripe objects were written partly through reused buffers: what they read back
    // proves no buffer was reused while a node could still be sent its bytes.
    t.ok((await reusedStripeBuffers(cluster.endpoint)) > 0, 'stripe buffers were reused across the uploads');
    await verifyAll(t, s3, 'healthy');
    t.equal(await degradedReads(cluster.endpoint), 0, 'healthy reads decode nothing');
    await expectS3Error(t, getBytes(s3, 'mib', `bytes=${MiB}-`), 'InvalidRange', 416);
    await expectS3Error(t, getBytes(s3, 'no-such-key'), 'NoSuchKey', 404);
    await expectS3Error(t, s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })), 'NoSuchBucket', 404);
  });

  await t.test('shards are spread over all six nodes with 1.5x overhead', async (t) => {
    let stored = 0;
    for (const id of cluster.nodeIds) {
      const files = await shardFiles(path.join(env.dataDir, 'nodes', id));
      t.ok(files.length > 0, `${id} holds shards`);
      for (const f of files) stored += (await stat(f)).size;
    }
    const logical = [...objects.values()].reduce((sum, d) => sum + d.length, 0);
    t.ok(stored >= logical * 1.5 && stored < logical * 1.5 * 1.01 + 64 * 1024, `stored ${stored} B for ${logical} B of objects`);
  });

  await t.test('corrupt blocks on disk are detected and read around', async (t) => {
    // Flip one byte in the middle of every shard on node-1: reads that need its blocks get
    // CorruptBlock from the node and fall back to parity; the client still gets exact bytes.
    const files = await shardFiles(path.join(env.dataDir, 'nodes', 'node-1'));
    const originals = new Map<string, Buffer>();
    for (const f of files) {
      const bytes = await readFile(f);
      originals.set(f, Buffer.from(bytes));
      if (bytes.length > 40) {
        bytes[32 + Math.floor((bytes.length - 32) / 2)] ^= 0x55;
        await writeFile(f, bytes);
      }
    }
    const before = await degradedReads(cluster.endpoint);
    await verifyAll(t, s3, 'corrupt node-1');
    t.ok((await degradedReads(cluster.endpoint)) > before, 'corrupt blocks forced reconstruction from parity');
    for (const [f, bytes] of originals) await writeFile(f, bytes);
  });

  await t.test('list', async (t) => {
    const all = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    t.same(all.Contents?.map((c) => c.Key), [...objects.keys()].sort());
    t.same(all.Contents?.map((c) => c.Size), [...objects.keys()].sort().map((k) => objects.get(k)!.length));
    const rolled = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Delimiter: '/' }));
    t.same(rolled.CommonPrefixes?.map((p) => p.Prefix), ['dir/']);
    t.equal(rolled.KeyCount, objects.size - 1 + 1);
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, MaxKeys: 2, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((c) => c.Key!));
      token = page.NextContinuationToken;
      t.ok((page.Contents ?? []).length <= 2);
    } while (token);
    t.same(keys, [...objects.keys()].sort(), 'pages of 2 list every key once');
  });

  await t.test('authentication errors', async (t) => {
    const wrongSecret = s3ClientFor(cluster.endpoint, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'wrong-secret' });
    await expectS3Error(t, wrongSecret.send(new ListBucketsCommand({})), 'SignatureDoesNotMatch', 403);
    const unknownKey = s3ClientFor(cluster.endpoint, { accessKeyId: 'nobody', secretAccessKey: 'x' });
    await expectS3Error(t, unknownKey.send(new ListBucketsCommand({})), 'InvalidAccessKeyId', 403);
    wrongSecret.destroy();
    unknownKey.destroy();
    const anonymous = await fetch(`${cluster.endpoint}/${BUCKET}/mib`);
    t.equal(anonymous.status, 403, 'anonymous GET is denied');
    t.match(await anonymous.text(), /<Code>AccessDenied<\/Code>/);
  });

  await t.test('a hung storage node (SIGSTOP) only slows reads and writes down, never stalls them', async (t) => {
    const hung = cluster.services.get('node-3')!.child;
    hung.kill('SIGSTOP');
    try {
      const data = randomBytes(2 * MiB + 11);
      objects.set('written-while-node-3-hung', data);
      const started = Date.now();
      const res = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'written-while-node-3-hung', Body: data }));
      t.equal(res.ETag, md5(data));
      t.ok((await getBytes(s3, 'written-while-node-3-hung')).equals(data), 'read back while the node is still hung');
      t.ok((await getBytes(s3, 'mib-plus-1')).equals(objects.get('mib-plus-1')!), 'an older object reads around the hung node');
      // Small objects send whole shards, which queue for a batch behind the hung node's requests:
      // each write gives up on its shard there after the shard timeout, and the object lands on 5.
      const small = Array.from({ length: 12 }, (_, i) => [`small-while-node-3-hung-${i}`, randomBytes(64 * 1024 + i)] as const);
      await Promise.all(small.map(async ([key, bytes]) => {
        objects.set(key, bytes);
        t.equal((await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: bytes }))).ETag, md5(bytes), key);
      }));
      for (const [key, bytes] of small) t.ok((await getBytes(s3, key)).equals(bytes), `${key} reads back while node-3 is hung`);
      t.ok(Date.now() - started < 20_000, `done in ${Date.now() - started} ms`);
    } finally {
      hung.kill('SIGCONT');
    }
  });

  await t.test('two storage nodes SIGKILLed: every object still reads back, writes still work', async (t) => {
    // node-3 is the one that missed the write above: losing it and one more keeps every object
    // within m = 2 lost shards (without repair, a third loss would be beyond what any code survives).
    await cluster.kill('node-3', 'SIGKILL');
    await cluster.kill('node-5', 'SIGKILL');
    const before = await degradedReads(cluster.endpoint);
    await verifyAll(t, s3, 'degraded');
    t.ok((await degradedReads(cluster.endpoint)) > before, 'reads were reconstructed from parity');
    // Until the namespace declares them down, the dead nodes are still listed as up: the gateway
    // tries each at most once per REFUSED_MEMORY_MS and asks for parity at once in between.
    const big = 'dir/large 20mib+7'; // 3 segments, every node holds data shards of some
    await getBytes(s3, big); // kept-alive connections to the dead nodes fail once (reset, not refused)
    const refusedBefore = await shardReadFailures(cluster.endpoint, 'Unavailable');
    // Skipped as refused lately, or (after down-after) as down: either way not tried.
    const notTried = async (): Promise<number> => (await shardReadFailures(cluster.endpoint, 'NodeUnreachable')) + (await shardReadFailures(cluster.endpoint, 'NodeDown'));
    const skippedBefore = await notTried();
    const started = Date.now();
    for (let i = 0; i < 8; i++) t.ok((await getBytes(s3, big)).equals(objects.get(big)!), `degraded GET ${i + 1}`);
    // Per memory period, each dead node may be tried by the two windows a read fetches at once.
    const bound = 2 * 2 * (Math.ceil((Date.now() - started) / REFUSED_MEMORY_MS) + 1);
    const tried = (await shardReadFailures(cluster.endpoint, 'Unavailable')) - refusedBefore;
    t.ok(tried <= bound, `dead nodes tried ${tried} times in 8 GETs of 3 segments (at most ${bound}; 24 or more without the memory)`);
    t.ok((await notTried()) > skippedBefore, 'and skipped the other times');
    const data = randomBytes(3 * MiB + 3);
    objects.set('written-while-degraded', data);
    const res = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'written-while-degraded', Body: data }));
    t.equal(res.ETag, md5(data));
    t.ok((await getBytes(s3, 'written-while-degraded')).equals(data));
    // A third loss is beyond what k=4, m=2 can read: the client gets a clean 503, not a cut stream.
    await cluster.kill('node-1', 'SIGKILL');
    await expectS3Error(t, getBytes(s3, 'mib-plus-1'), 'ServiceUnavailable', 503);
    await cluster.startNode('node-1');
    // The restarted node has a new port: the gateway, refused at the old one, looks it up again.
    t.ok((await getBytes(s3, 'mib-plus-1')).equals(objects.get('mib-plus-1')!), 'readable again as soon as the node is back');
  });

  await t.test('the repair service sees the lost nodes and what they held', async (t) => {
    const repair = new RepairClient(cluster.services.get('repair')!.ready.url, cluster.clusterSecret);
    const deadline = Date.now() + 20_000;
    let damage: NodeDamage[] = [];
    while (Date.now() < deadline) {
      damage = (await repair.status()).damage;
      if (damage.length === 2) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    t.same(damage.map((d) => d.nodeId).sort(), ['node-3', 'node-5'], 'both killed nodes are reported down');
    for (const d of damage) {
      t.ok(d.shards > 0, `${d.nodeId}: ${d.shards} shards to rebuild`);
      t.ok(d.objects > 0 && d.objects <= objects.size, `${d.nodeId}: ${d.objects} objects affected`);
    }
  });

  await t.test('restart of the whole cluster on the same data dir serves every object', async (t) => {
    s3.destroy();
    await cluster.stop();
    env = await startTestCluster({ ...options, dataDir });
    ({ s3, cluster } = env);
    await verifyAll(t, s3, 'restarted');
  });

  await t.test('delete', async (t) => {
    await expectS3Error(t, s3.send(new DeleteBucketCommand({ Bucket: BUCKET })), 'BucketNotEmpty', 409);
    for (const key of objects.keys()) await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    await expectS3Error(t, getBytes(s3, 'mib'), 'NoSuchKey', 404);
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'never-existed' }));
    await s3.send(new DeleteBucketCommand({ Bucket: BUCKET }));
    await expectS3Error(t, s3.send(new HeadBucketCommand({ Bucket: BUCKET })), 'NotFound', 404);
  });
});
