// End to end: the real cluster as OS processes (namespace, 6 storage nodes, gateway, repair), driven
// through @aws-sdk/client-s3 with its default settings. Objects survive SIGKILL of two storage
// nodes and a full restart of the cluster.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
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
import { startTestCluster, s3ClientFor, ACCESS_KEY_ID, type TestCluster } from './helpers/cluster.js';

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
  let env: TestCluster | undefined = await startTestCluster({ segmentSize: SEGMENT_SIZE });
  t.teardown(async () => env?.destroy());
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
      const body = streamed ? Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]) : data;
      const res = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentLength: data.length, ContentType: 'application/x-test', Metadata: { origin: 'e2e' } }));
      t.equal(res.ETag, md5(data), `${key}: ETag is the MD5 of the bytes`);
    }
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'mib-plus-1' }));
    t.equal(head.ContentLength, MiB + 1);
    t.equal(head.ContentType, 'application/x-test');
    t.same(head.Metadata, { origin: 'e2e' });
    t.equal(head.ETag, md5(objects.get('mib-plus-1')!));
  });

  await t.test('read back whole and by ranges', async (t) => {
    await verifyAll(t, s3, 'healthy');
    await expectS3Error(t, getBytes(s3, 'mib', `bytes=${MiB}-`), 'InvalidRange', 416);
    await expectS3Error(t, getBytes(s3, 'no-such-key'), 'NoSuchKey', 404);
    await expectS3Error(t, s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })), 'NoSuchBucket', 404);
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

  await t.test('two storage nodes SIGKILLed: every object still reads back, writes still work', async (t) => {
    await cluster.kill('node-2', 'SIGKILL');
    await cluster.kill('node-5', 'SIGKILL');
    await verifyAll(t, s3, 'degraded');
    const data = randomBytes(3 * MiB + 3);
    objects.set('written-while-degraded', data);
    const res = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'written-while-degraded', Body: data }));
    t.equal(res.ETag, md5(data));
    t.ok((await getBytes(s3, 'written-while-degraded')).equals(data));
  });

  await t.test('restart of the whole cluster on the same data dir serves every object', async (t) => {
    const dataDir = env!.dataDir;
    s3.destroy();
    await cluster.stop();
    env = await startTestCluster({ segmentSize: SEGMENT_SIZE, dataDir });
    const cleanup = env;
    t.teardown(async () => {
      const { rm } = await import('node:fs/promises');
      await cleanup.destroy();
      await rm(dataDir, { recursive: true, force: true });
    });
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
