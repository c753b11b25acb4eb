// Multipart uploads end to end: the real cluster as processes, driven by @aws-sdk/client-s3 with its
// default settings and by @aws-sdk/lib-storage. Covers CreateMultipartUpload, UploadPart (and part
// replacement), UploadPartCopy, CompleteMultipartUpload with every error and with conditions,
// AbortMultipartUpload (shards queued for GC), ListParts, ListMultipartUploads, GetObject/HeadObject
// by partNumber, ranged reads across part boundaries, and COMPOSITE / FULL_OBJECT checksums.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type GetObjectCommandInput,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NamespaceClient } from '../namespace/client.js';
import { checksumOf } from '../gateway/s3/checksums.js';
import { crc64nvme } from '../gateway/s3/crc64nvme.js';
import { crcOfConcatenation } from '../gateway/s3/crc-combine.js';
import { compositeChecksum, fullObjectChecksum } from '../gateway/s3/multipart-checksums.js';
import { startTestCluster } from './helpers/cluster.js';

const MiB = 1024 * 1024;
const Bucket = 'multipart';
// 3 MiB segments: a 5 MiB part spans two segments, so completion must concatenate segment lists.
const SEGMENT_SIZE = 3 * MiB;

const md5Hex = (data: Buffer): string => createHash('md5').update(data).digest('hex');
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const multipartEtag = (parts: Buffer[]): string =>
  `"${createHash('md5').update(Buffer.concat(parts.map((p) => Buffer.from(md5Hex(p), 'hex')))).digest('hex')}-${parts.length}"`;

function split(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

interface SdkError {
  name: string;
  message: string;
  $metadata?: { httpStatusCode?: number };
  [field: string]: unknown;
}

/** Asserts that `promise` fails with this S3 error code and HTTP status; returns the error. */
async function rejects(t: Test, promise: Promise<unknown>, code: string, status: number, what = code): Promise<SdkError | undefined> {
  try {
    await promise;
    t.fail(`${what}: expected ${code} (${status}), but the request succeeded`);
    return undefined;
  } catch (caught) {
    const err = caught as SdkError;
    t.equal(err.name, code, `${what}: error code`);
    t.equal(err.$metadata?.httpStatusCode, status, `${what}: HTTP status`);
    return err;
  }
}

// ---------------------------------------------------------------------------------------------
// Pure: the checksum arithmetic, against values S3 itself returned for the body "123456789"
// (single-part uploads, as recorded by OpenStack Swift's tests run against AWS).

t.test('checksum arithmetic', async (t) => {
  const body = Buffer.from('123456789');
  const aws: [Parameters<typeof checksumOf>[0], string][] = [
    ['CRC32', '7kxlUA=='],
    ['CRC32C', 'pzJFoA=='],
    ['SHA1', 'zGcEPHvP9e6lVmvZsfPHT9mlz10='],
    ['SHA256', 'KSsNAHVmgy25S/rmic1w0at3KBH9RLn0nYVQ7p6mpJQ='],
  ];
  for (const [algorithm, expected] of aws) {
    t.equal(compositeChecksum(algorithm, [checksumOf(algorithm, body)]), `${expected}-1`, `${algorithm} composite of one part`);
  }
  for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
    const pieces = [randomBytes(0), randomBytes(1), randomBytes(4093), randomBytes(70_000), randomBytes(5)];
    const whole = checksumOf(algorithm, Buffer.concat(pieces));
    const combined = fullObjectChecksum(algorithm, pieces.map((p) => ({ value: checksumOf(algorithm, p), size: p.length })));
    t.equal(combined, whole, `${algorithm}: combined part CRCs equal the CRC of the whole`);
  }
  const big = randomBytes(3 * MiB + 17);
  const halves = [big.subarray(0, 2 * MiB + 1), big.subarray(2 * MiB + 1)];
  t.same(
    crcOfConcatenation('CRC64NVME', halves.map((h) => ({ crc: crc64nvme(h), length: h.length }))),
    crc64nvme(big),
    'CRC64NVME combination over MiB-sized pieces',
  );
});

// ---------------------------------------------------------------------------------------------

const cluster = await startTestCluster({ segmentSize: SEGMENT_SIZE });
t.teardown(() => cluster.destroy());
const s3 = cluster.s3;
const namespace = new NamespaceClient(cluster.cluster.namespaceUrl, { secret: cluster.cluster.clusterSecret });
t.teardown(() => namespace.close());
await s3.send(new CreateBucketCommand({ Bucket }));

async function getBytes(input: Omit<GetObjectCommandInput, 'Bucket'>): Promise<{ bytes: Buffer; res: GetObjectCommandOutput }> {
  const res = await s3.send(new GetObjectCommand({ Bucket, ...input }));
  return { bytes: Buffer.from(await res.Body!.transformToByteArray()), res };
}

async function createUpload(Key: string, extra: Partial<ConstructorParameters<typeof CreateMultipartUploadCommand>[0]> = {}): Promise<string> {
  const res = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ...extra }));
  return res.UploadId!;
}

async function uploadPart(Key: string, UploadId: string, PartNumber: number, Body: Buffer, extra: Partial<ConstructorParameters<typeof UploadPartCommand>[0]> = {}) {
  return s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body, ...extra }));
}

async function complete(Key: string, UploadId: string, Parts: CompletedPart[], extra: Partial<ConstructorParameters<typeof CompleteMultipartUploadCommand>[0]> = {}) {
  return s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts }, ...extra }));
}

/** Shard files on every node's disk, by shard id. */
async function shardFiles(): Promise<Set<string>> {
  const out = new Set<string>();
  const nodes = path.join(cluster.dataDir, 'nodes');
  for (const node of await readdir(nodes)) {
    const root = path.join(nodes, node, 'shards');
    for (const fan of await readdir(root).catch(() => [])) for (const f of await readdir(path.join(root, fan))) out.add(f);
  }
  return out;
}

/** Shard ids in the namespace's GC queue. */
async function queuedGarbage(): Promise<Set<string>> {
  return new Set((await namespace.garbage(new Date(Date.now() + 60_000), 1000)).map((e) => e.shardId));
}

const difference = <T>(a: Set<T>, b: Set<T>): T[] => [...a].filter((x) => !b.has(x));

// ---------------------------------------------------------------------------------------------

const FORTY = randomBytes(40 * MiB);
const FORTY_PARTS = split(FORTY, 5 * MiB);

t.test('lib-storage Upload: 40 MiB in 5 MiB parts, 4 at a time, CRC32 composite by default', async (t) => {
  const upload = new Upload({
    client: s3,
    params: { Bucket, Key: 'big/forty', Body: FORTY, ContentType: 'application/x-forty', Metadata: { origin: 'lib-storage' } },
    partSize: 5 * MiB,
    queueSize: 4,
  });
  const done = await upload.done();
  t.equal(done.ETag, multipartEtag(FORTY_PARTS), 'ETag is md5 of the part MD5s, -8');
  t.match(done.ETag, /^"[0-9a-f]{32}-8"$/);
  const composite = compositeChecksum('CRC32', FORTY_PARTS.map((p) => checksumOf('CRC32', p)));
  t.equal(done.ChecksumCRC32, composite, 'Complete returns the composite CRC32, -8');
  t.equal(done.ChecksumType, 'COMPOSITE');

  const { bytes, res } = await getBytes({ Key: 'big/forty', ChecksumMode: 'ENABLED' });
  t.equal(sha256(bytes), sha256(FORTY), 'bytes round-trip (sha256)');
  t.equal(res.ETag, done.ETag);
  t.equal(res.ChecksumCRC32, composite, 'GET with ChecksumMode returns the composite checksum');
  t.equal(res.ContentType, 'application/x-forty', 'content type from CreateMultipartUpload');
  t.same(res.Metadata, { origin: 'lib-storage' }, 'metadata from CreateMultipartUpload');
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'big/forty' }));
  t.equal(head.ContentLength, FORTY.length);
  t.equal(head.PartsCount, undefined, 'no parts count without partNumber');
});

t.test('ranged GETs across part and segment boundaries', async (t) => {
  const ranges: [number, number][] = [
    [5 * MiB - 10, 5 * MiB + 10], // part 1 → part 2
    [3 * MiB - 1, 3 * MiB], // segment boundary inside part 1
    [4 * MiB, 16 * MiB + 5], // parts 1..4
    [0, 40 * MiB - 1],
    [40 * MiB - 100, 40 * MiB - 1],
  ];
  for (const [a, b] of ranges) {
    const { bytes, res } = await getBytes({ Key: 'big/forty', Range: `bytes=${a}-${b}` });
    t.equal(res.$metadata.httpStatusCode, 206);
    t.equal(res.ContentRange, `bytes ${a}-${b}/${FORTY.length}`);
    t.ok(bytes.equals(FORTY.subarray(a, b + 1)), `bytes ${a}-${b}`);
  }
});

t.test('GetObject and HeadObject by partNumber', async (t) => {
  const { bytes, res } = await getBytes({ Key: 'big/forty', PartNumber: 3, ChecksumMode: 'ENABLED' });
  t.equal(res.$metadata.httpStatusCode, 206, 'a part is a 206');
  t.equal(res.ContentRange, `bytes ${10 * MiB}-${15 * MiB - 1}/${FORTY.length}`);
  t.equal(res.PartsCount, 8, 'x-amz-mp-parts-count');
  t.equal(res.ContentLength, 5 * MiB);
  t.ok(bytes.equals(FORTY_PARTS[2]!), 'part 3 bytes');
  t.equal(res.ChecksumCRC32, checksumOf('CRC32', FORTY_PARTS[2]!), "the part's own checksum (validated by the SDK)");
  t.equal(res.ETag, multipartEtag(FORTY_PARTS), "the object's ETag");

  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'big/forty', PartNumber: 8 }));
  t.equal(head.$metadata.httpStatusCode, 206);
  t.equal(head.PartsCount, 8);
  t.equal(head.ContentLength, 5 * MiB);

  const err = await rejects(t, getBytes({ Key: 'big/forty', PartNumber: 9 }), 'InvalidPartNumber', 416, 'part 9 of 8');
  t.equal(err?.ActualPartCount, '8', 'error names the actual part count');
  await rejects(t, getBytes({ Key: 'big/forty', PartNumber: 0 }), 'InvalidArgument', 400, 'part 0');
  await rejects(t, getBytes({ Key: 'big/forty', PartNumber: 10001 }), 'InvalidArgument', 400, 'part 10001');
  await rejects(t, getBytes({ Key: 'big/forty', PartNumber: 1, Range: 'bytes=0-1' }), 'InvalidRequest', 400, 'Range with partNumber');

  const single = randomBytes(1000);
  await s3.send(new PutObjectCommand({ Bucket, Key: 'small/single', Body: single }));
  const one = await getBytes({ Key: 'small/single', PartNumber: 1 });
  t.ok(one.bytes.equals(single), 'partNumber=1 of a single-PUT object is the whole object');
  t.equal(one.res.PartsCount, undefined, 'no parts count for a single-PUT object');
  await rejects(t, getBytes({ Key: 'small/single', PartNumber: 2 }), 'InvalidPartNumber', 416, 'part 2 of a single-PUT object');
});

t.test('re-uploading a part replaces it; its old shards go to GC', async (t) => {
  const Key = 'replace/me';
  const [a, b, c] = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(MiB + 5)];
  const UploadId = await createUpload(Key);
  const pa = await uploadPart(Key, UploadId, 1, a);
  t.equal(pa.ETag, `"${md5Hex(a)}"`, 'part ETag is the quoted MD5');
  t.equal(pa.ChecksumCRC32, checksumOf('CRC32', a), "the SDK's default part checksum is echoed");
  const filesBefore = await shardFiles();
  const garbageBefore = await queuedGarbage();
  const pb = await uploadPart(Key, UploadId, 1, b);
  const newFiles = difference(await shardFiles(), filesBefore);
  t.equal(newFiles.length, 12, 'the new upload of part 1 wrote new shards (2 segments x 6)');
  const queued = difference(await queuedGarbage(), garbageBefore);
  t.equal(queued.length, 12, "the replaced part's 12 shards are queued for GC");
  t.same(queued.filter((id) => newFiles.includes(id)), [], 'no new shard is queued');
  const pc = await uploadPart(Key, UploadId, 2, c);

  const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
  t.same(
    listed.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size]),
    [
      [1, pb.ETag, b.length],
      [2, pc.ETag, c.length],
    ],
    'ListParts shows the replacement',
  );
  await rejects(t, complete(Key, UploadId, [{ PartNumber: 1, ETag: pa.ETag }, { PartNumber: 2, ETag: pc.ETag }]), 'InvalidPart', 400, "the replaced part's ETag");
  const done = await complete(Key, UploadId, [
    { PartNumber: 1, ETag: pb.ETag },
    { PartNumber: 2, ETag: pc.ETag },
  ]);
  t.equal(done.ETag, multipartEtag([b, c]));
  const { bytes } = await getBytes({ Key });
  t.equal(sha256(bytes), sha256(Buffer.concat([b, c])), 'the object is the replacement and part 2');
});

t.test('ListParts pages with max-parts and part-number-marker', async (t) => {
  const Key = 'list/parts';
  const UploadId = await createUpload(Key);
  const bodies = Array.from({ length: 5 }, (_, i) => randomBytes(1000 + i));
  const etags: string[] = [];
  for (const [i, body] of bodies.entries()) etags.push((await uploadPart(Key, UploadId, i + 1, body)).ETag!);
  const pages: number[][] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId, MaxParts: 2, PartNumberMarker: marker }));
    t.equal(page.MaxParts, 2);
    pages.push(page.Parts?.map((p) => p.PartNumber!) ?? []);
    if (!page.IsTruncated) break;
    t.equal(page.NextPartNumberMarker, String(page.Parts![page.Parts!.length - 1]!.PartNumber));
    marker = page.NextPartNumberMarker;
  }
  t.same(pages, [[1, 2], [3, 4], [5]], 'three pages');
  const all = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
  t.same(all.Parts?.map((p) => [p.ETag, p.Size]), bodies.map((b, i) => [etags[i], b.length]));
  t.equal(all.IsTruncated, false);
  await rejects(t, s3.send(new ListPartsCommand({ Bucket, Key, UploadId, MaxParts: -1 })), 'InvalidArgument', 400, 'max-parts -1');
  await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
});

t.test('ListMultipartUploads: prefix, markers, max-uploads, delimiter', async (t) => {
  const keys = ['lmu/a', 'lmu/a', 'lmu/b', 'lmu/dir/x', 'lmu/dir/y', 'lmu/dir2/z', 'other/q'];
  const ids: string[] = [];
  for (const key of keys) ids.push(await createUpload(key));
  const expected = keys.slice(0, 6).map((key, i) => [key, ids[i]]);

  const seen: string[][] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'lmu/', MaxUploads: 2, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
    pages++;
    seen.push(...(page.Uploads ?? []).map((u) => [u.Key!, u.UploadId!]));
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  t.equal(pages, 3, 'six uploads in pages of two');
  t.same(seen, expected, 'every upload under the prefix, in key then upload order');

  const after = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'lmu/', KeyMarker: 'lmu/a', UploadIdMarker: ids[0] }));
  t.same(after.Uploads?.map((u) => u.UploadId), ids.slice(1, 6), 'upload-id-marker resumes within a key');

  const rolled = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'lmu/', Delimiter: '/' }));
  t.same(rolled.Uploads?.map((u) => u.Key), ['lmu/a', 'lmu/a', 'lmu/b']);
  t.same(rolled.CommonPrefixes?.map((p) => p.Prefix), ['lmu/dir/', 'lmu/dir2/'], 'keys below the delimiter roll up');

  const first = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'lmu/', Delimiter: '/', MaxUploads: 4 }));
  t.equal(first.IsTruncated, true);
  t.equal((first.Uploads?.length ?? 0) + (first.CommonPrefixes?.length ?? 0), 4, 'a common prefix counts once');
  t.equal(first.NextKeyMarker, 'lmu/dir/');
  const second = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'lmu/', Delimiter: '/', MaxUploads: 4, KeyMarker: first.NextKeyMarker }));
  t.same(second.CommonPrefixes?.map((p) => p.Prefix), ['lmu/dir2/'], 'the next page does not repeat the prefix');
  t.equal(second.Uploads, undefined);
  t.equal(second.IsTruncated, false);

  for (const [i, key] of keys.entries()) await s3.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId: ids[i] }));
  const empty = await s3.send(new ListMultipartUploadsCommand({ Bucket }));
  t.same(empty.Uploads ?? [], [], 'aborted uploads are gone');
});

t.test('CompleteMultipartUpload errors, each with its code and status', async (t) => {
  const Key = 'errors/x';
  const bodies = [randomBytes(MiB), randomBytes(MiB), randomBytes(MiB)];
  const UploadId = await createUpload(Key);
  const parts: CompletedPart[] = [];
  for (const [i, body] of bodies.entries()) parts.push({ PartNumber: i + 1, ETag: (await uploadPart(Key, UploadId, i + 1, body)).ETag });

  await rejects(t, complete(Key, 'no-such-upload', parts), 'NoSuchUpload', 404, 'Complete of an unknown upload');
  await rejects(t, complete('errors/other-key', UploadId, parts), 'NoSuchUpload', 404, "Complete under another key");
  await rejects(t, uploadPart(Key, 'no-such-upload', 1, bodies[0]!), 'NoSuchUpload', 404, 'UploadPart to an unknown upload');
  await rejects(t, s3.send(new ListPartsCommand({ Bucket, Key, UploadId: 'no-such-upload' })), 'NoSuchUpload', 404, 'ListParts');
  await rejects(t, s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: 'no-such-upload' })), 'NoSuchUpload', 404, 'Abort');
  await rejects(t, uploadPart(Key, UploadId, 0, bodies[0]!), 'InvalidArgument', 400, 'part number 0');
  await rejects(t, uploadPart(Key, UploadId, 10001, bodies[0]!), 'InvalidArgument', 400, 'part number 10001');

  const unknown = await rejects(t, complete(Key, UploadId, [parts[0]!, { PartNumber: 4, ETag: parts[0]!.ETag }]), 'InvalidPart', 400, 'a part never uploaded');
  t.equal(unknown?.PartNumber, '4', 'InvalidPart names the part');
  t.equal(unknown?.UploadId, UploadId, 'and the upload');
  await rejects(t, complete(Key, UploadId, [{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }]), 'InvalidPart', 400, 'a wrong ETag');
  await rejects(t, complete(Key, UploadId, [parts[1]!, parts[0]!]), 'InvalidPartOrder', 400, 'descending parts');
  await rejects(t, complete(Key, UploadId, [parts[0]!, parts[0]!]), 'InvalidPartOrder', 400, 'a repeated part');
  const small = await rejects(t, complete(Key, UploadId, [parts[0]!, parts[1]!]), 'EntityTooSmall', 400, 'a 1 MiB part that is not the last');
  t.equal(small?.ProposedSize, String(MiB));
  t.equal(small?.MinSizeAllowed, String(5 * MiB));
  t.equal(small?.PartNumber, '1');
  await rejects(t, complete(Key, UploadId, []), 'MalformedXML', 400, 'no parts');
  await rejects(t, complete(Key, UploadId, [{ PartNumber: 1 }]), 'MalformedXML', 400, 'a part without an ETag');
  await rejects(t, complete(Key, UploadId, [parts[2]!], { MpuObjectSize: 5 }), 'InvalidRequest', 400, 'x-amz-mp-object-size mismatch');

  // Failed completions leave the upload intact: the last part alone may be small.
  const done = await complete(Key, UploadId, [parts[2]!], { MpuObjectSize: MiB });
  t.equal(done.ETag, multipartEtag([bodies[2]!]));
  const { bytes, res } = await getBytes({ Key });
  t.ok(bytes.equals(bodies[2]!), 'the object is the one part named');
  t.equal(res.ETag, multipartEtag([bodies[2]!]));
  await rejects(t, complete(Key, UploadId, [parts[2]!]), 'NoSuchUpload', 404, 'a completed upload is gone');
});

t.test('AbortMultipartUpload queues every shard of the upload for GC', async (t) => {
  const Key = 'abort/me';
  const filesBefore = await shardFiles();
  const UploadId = await createUpload(Key);
  await uploadPart(Key, UploadId, 1, randomBytes(2 * MiB));
  await uploadPart(Key, UploadId, 2, randomBytes(4 * MiB));
  const written = difference(await shardFiles(), filesBefore);
  t.equal(written.length, 18, 'three segments (1 + 2) of 6 shards on the nodes');
  const garbageBefore = await queuedGarbage();
  const res = await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
  t.equal(res.$metadata.httpStatusCode, 204);
  const queued = difference(await queuedGarbage(), garbageBefore);
  t.same(queued.sort(), written.sort(), "exactly the upload's shards are queued for GC");
  await rejects(t, s3.send(new ListPartsCommand({ Bucket, Key, UploadId })), 'NoSuchUpload', 404, 'ListParts after abort');
  await rejects(t, s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })), 'NoSuchUpload', 404, 'a second abort');
});

t.test('UploadPartCopy: whole objects and ranges, new shards, source conditions', async (t) => {
  const srcKey = 'copy/src ü';
  const src = randomBytes(12 * MiB);
  const small = randomBytes(100 * 1024);
  const put = await s3.send(new PutObjectCommand({ Bucket, Key: srcKey, Body: src }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'copy/small', Body: small }));
  const Key = 'copy/dst';
  const UploadId = await createUpload(Key);
  const copy = (PartNumber: number, CopySource: string, extra: Partial<ConstructorParameters<typeof UploadPartCopyCommand>[0]> = {}) =>
    s3.send(new UploadPartCopyCommand({ Bucket, Key, UploadId, PartNumber, CopySource, ...extra }));
  const encoded = `${Bucket}/${encodeURIComponent(srcKey)}`;

  const p1 = await copy(1, encoded, { CopySourceRange: `bytes=0-${5 * MiB - 1}` });
  t.equal(p1.CopyPartResult?.ETag, `"${md5Hex(src.subarray(0, 5 * MiB))}"`, 'the ETag of the copied range');
  const p2 = await copy(2, `/${encoded}`, { CopySourceRange: `bytes=${5 * MiB}-${12 * MiB - 1}`, CopySourceIfMatch: put.ETag });
  const p3 = await copy(3, `${Bucket}/copy/small?versionId=null`);
  t.equal(p3.CopyPartResult?.ETag, `"${md5Hex(small)}"`, 'a whole-object copy');

  await rejects(t, copy(4, encoded, { CopySourceRange: `bytes=0-${12 * MiB}` }), 'InvalidArgument', 400, 'a range past the end');
  await rejects(t, copy(4, encoded, { CopySourceRange: 'bytes=5-' }), 'InvalidArgument', 400, 'an open range');
  await rejects(t, copy(4, encoded, { CopySourceIfMatch: '"nope"' }), 'PreconditionFailed', 412, 'x-amz-copy-source-if-match');
  await rejects(t, copy(4, encoded, { CopySourceIfNoneMatch: put.ETag }), 'PreconditionFailed', 412, 'x-amz-copy-source-if-none-match');
  await rejects(t, copy(4, `${Bucket}/copy/missing`), 'NoSuchKey', 404, 'a missing source');
  await rejects(t, copy(4, 'just-a-bucket'), 'InvalidArgument', 400, 'a source without a key');

  const done = await complete(Key, UploadId, [
    { PartNumber: 1, ETag: p1.CopyPartResult!.ETag },
    { PartNumber: 2, ETag: p2.CopyPartResult!.ETag },
    { PartNumber: 3, ETag: p3.CopyPartResult!.ETag },
  ]);
  const whole = Buffer.concat([src, small]);
  t.equal(done.ETag, multipartEtag([src.subarray(0, 5 * MiB), src.subarray(5 * MiB), small]));
  // The copy owns its shards: deleting the sources must not touch it.
  await s3.send(new DeleteObjectCommand({ Bucket, Key: srcKey }));
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'copy/small' }));
  const { bytes } = await getBytes({ Key });
  t.equal(sha256(bytes), sha256(whole), 'the copy reads back after its sources are deleted');
});

t.test('conditional CompleteMultipartUpload', async (t) => {
  const Key = 'cond/existing';
  const existing = await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'already here' }));
  const body = randomBytes(1000);
  const UploadId = await createUpload(Key);
  const part = { PartNumber: 1, ETag: (await uploadPart(Key, UploadId, 1, body)).ETag };
  await rejects(t, complete(Key, UploadId, [part], { IfNoneMatch: '*' }), 'PreconditionFailed', 412, 'If-None-Match: * on an existing key');
  await rejects(t, complete(Key, UploadId, [part], { IfMatch: '"0123456789abcdef0123456789abcdef"' }), 'PreconditionFailed', 412, 'If-Match with another ETag');
  const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
  t.equal(listed.Parts?.length, 1, 'a failed condition leaves the upload in place');
  const done = await complete(Key, UploadId, [part], { IfMatch: existing.ETag });
  t.equal(done.ETag, multipartEtag([body]), 'If-Match with the current ETag completes');
  t.ok((await getBytes({ Key })).bytes.equals(body));

  // Two uploads race onto a fresh key with If-None-Match: *; the namespace lets exactly one win.
  const race = 'cond/race';
  const bodies = [randomBytes(2000), randomBytes(2000)];
  const uploads = await Promise.all(bodies.map(() => createUpload(race)));
  const racers = await Promise.all(
    bodies.map(async (b, i) => ({ PartNumber: 1, ETag: (await uploadPart(race, uploads[i]!, 1, b)).ETag })),
  );
  const results = await Promise.allSettled(racers.map((p, i) => complete(race, uploads[i]!, [p], { IfNoneMatch: '*' })));
  const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
  t.equal(winners.length, 1, 'exactly one completion wins');
  const loser = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.equal((loser?.reason as SdkError | undefined)?.name, 'PreconditionFailed');
  t.equal((loser?.reason as SdkError | undefined)?.$metadata?.httpStatusCode, 412);
  t.ok((await getBytes({ Key: race })).bytes.equals(bodies[winners[0]!]!), "the object is the winner's");
  const loserIndex = 1 - winners[0]!;
  await s3.send(new AbortMultipartUploadCommand({ Bucket, Key: race, UploadId: uploads[loserIndex]! }));
});

t.test('CRC64NVME is a full-object checksum, combined from the parts', async (t) => {
  const Key = 'sums/crc64nvme';
  const bodies = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(MiB + 3)];
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: 'CRC64NVME' }));
  t.equal(created.ChecksumAlgorithm, 'CRC64NVME');
  t.equal(created.ChecksumType, 'FULL_OBJECT', 'CRC64NVME defaults to FULL_OBJECT');
  const UploadId = created.UploadId!;
  const parts: CompletedPart[] = [];
  for (const [i, body] of bodies.entries()) {
    const res = await uploadPart(Key, UploadId, i + 1, body, { ChecksumAlgorithm: 'CRC64NVME' });
    t.equal(res.ChecksumCRC64NVME, crc64nvme(body).toString('base64'), `part ${i + 1} checksum echoed`);
    parts.push({ PartNumber: i + 1, ETag: res.ETag });
  }
  const whole = Buffer.concat(bodies);
  const expected = crc64nvme(whole).toString('base64');
  const done = await complete(Key, UploadId, parts);
  t.equal(done.ChecksumCRC64NVME, expected, 'the CRC64NVME of the whole object, without re-reading it');
  t.equal(done.ChecksumType, 'FULL_OBJECT');
  const { bytes, res } = await getBytes({ Key, ChecksumMode: 'ENABLED' });
  t.equal(res.ChecksumCRC64NVME, expected, 'GET returns it (and the SDK validates the body against it)');
  t.equal(sha256(bytes), sha256(whole));
});

t.test('FULL_OBJECT CRC32C, with the object checksum sent on Complete', async (t) => {
  const Key = 'sums/crc32c';
  const bodies = [randomBytes(5 * MiB), randomBytes(2 * MiB)];
  const UploadId = await createUpload(Key, { ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT' });
  const parts: CompletedPart[] = [];
  for (const [i, body] of bodies.entries()) {
    const res = await uploadPart(Key, UploadId, i + 1, body, { ChecksumAlgorithm: 'CRC32C' });
    parts.push({ PartNumber: i + 1, ETag: res.ETag, ChecksumCRC32C: res.ChecksumCRC32C });
  }
  const expected = checksumOf('CRC32C', Buffer.concat(bodies));
  await rejects(t, complete(Key, UploadId, parts, { ChecksumCRC32C: checksumOf('CRC32C', bodies[0]!) }), 'BadDigest', 400, 'a wrong object checksum');
  await rejects(t, complete(Key, UploadId, parts, { ChecksumType: 'COMPOSITE' }), 'InvalidRequest', 400, 'another checksum type');
  await rejects(t, complete(Key, UploadId, parts, { ChecksumCRC32: 'AAAAAA==' }), 'InvalidRequest', 400, 'another algorithm');
  const done = await complete(Key, UploadId, parts, { ChecksumCRC32C: expected, ChecksumType: 'FULL_OBJECT' });
  t.equal(done.ChecksumCRC32C, expected);
  t.equal(done.ChecksumType, 'FULL_OBJECT');
  const { res } = await getBytes({ Key, ChecksumMode: 'ENABLED' });
  t.equal(res.ChecksumCRC32C, expected, 'validated by the SDK on GET');
});

t.test('composite checksums need every part checksum; algorithms must match', async (t) => {
  const Key = 'sums/composite';
  const body = randomBytes(4000);
  const UploadId = await createUpload(Key, { ChecksumAlgorithm: 'SHA256' });
  await rejects(t, uploadPart(Key, UploadId, 1, body, { ChecksumAlgorithm: 'CRC32C' }), 'InvalidRequest', 400, 'a part with another algorithm');
  const part = await uploadPart(Key, UploadId, 1, body, { ChecksumAlgorithm: 'SHA256' });
  t.equal(part.ChecksumSHA256, checksumOf('SHA256', body));
  await rejects(t, complete(Key, UploadId, [{ PartNumber: 1, ETag: part.ETag }]), 'InvalidRequest', 400, 'a part listed without its checksum');
  await rejects(
    t,
    complete(Key, UploadId, [{ PartNumber: 1, ETag: part.ETag, ChecksumSHA256: checksumOf('SHA256', Buffer.from('other')) }]),
    'InvalidPart',
    400,
    'a part listed with a wrong checksum',
  );
  const done = await complete(Key, UploadId, [{ PartNumber: 1, ETag: part.ETag, ChecksumSHA256: part.ChecksumSHA256 }]);
  t.equal(done.ChecksumSHA256, compositeChecksum('SHA256', [part.ChecksumSHA256!]));
  t.equal(done.ChecksumType, 'COMPOSITE');

  await rejects(
    t,
    s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: 'SHA256', ChecksumType: 'FULL_OBJECT' })),
    'InvalidRequest',
    400,
    'SHA256 cannot be FULL_OBJECT',
  );
});
