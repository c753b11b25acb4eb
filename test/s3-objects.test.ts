// Object operations and integrity, end to end through the real cluster (namespace, 6 storage nodes,
// gateway, repair as processes; a second gateway for cross-gateway races): CopyObject,
// DeleteObjects, conditional writes, S3 checksums in every payload mode, header and metadata round
// trips, conditional GET/HEAD. Driven by @aws-sdk/client-s3 with its default settings; raw signed
// requests where the SDK cannot say what a test needs. Every S3 error is checked for its code and
// its HTTP status.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectCommand,
  DeleteObjectTaggingCommand,
  DeleteObjectsCommand,
  GetBucketAclCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutBucketAclCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type ChecksumAlgorithm as SdkChecksumAlgorithm,
  type Tag,
} from '@aws-sdk/client-s3';
import { startTestCluster, s3ClientFor, ACCESS_KEY_ID, SECRET_ACCESS_KEY, type TestCluster } from './helpers/cluster.js';
import {
  errorCode,
  rawRequest,
  send,
  sha256Hex,
  signRequest,
  signedChunkedBody,
  unsignedChunkedBody,
  type RawResponse,
} from './helpers/raw-s3.js';
import { NamespaceClient } from '../namespace/client.js';
import { StorageNodePool } from '../storage-node/client.js';
import { CHECKSUM_ALGORITHMS, checksumOf, type ChecksumAlgorithm } from '../gateway/s3/checksums.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BUCKET = 'objects';
const CREDS = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

t.setTimeout(180_000);

let tc: TestCluster;
let s3: S3Client;
let endpoint: string;
let namespace: NamespaceClient;
let pool: StorageNodePool;

t.before(async () => {
  // 1 MiB segments (the smallest that hold a 4 × 256 KiB stripe): a few MiB span several segments.
  tc = await startTestCluster({ segmentSize: MiB });
  s3 = tc.s3;
  endpoint = tc.cluster.endpoint;
  namespace = new NamespaceClient(tc.cluster.namespaceUrl, { secret: tc.cluster.clusterSecret });
  pool = new StorageNodePool({ secret: tc.cluster.clusterSecret });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

t.teardown(async () => {
  await namespace?.close();
  await pool?.close();
  await tc?.destroy();
});

// ---------------------------------------------------------------------------------------------
// helpers

function md5Etag(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

function sdkAlgorithm(a: ChecksumAlgorithm): SdkChecksumAlgorithm {
  return a as SdkChecksumAlgorithm;
}

type ChecksumFields = { ChecksumCRC32?: string; ChecksumCRC32C?: string; ChecksumCRC64NVME?: string; ChecksumSHA1?: string; ChecksumSHA256?: string };

function checksumField(output: ChecksumFields, algorithm: ChecksumAlgorithm): string | undefined {
  return output[`Checksum${algorithm}` as keyof ChecksumFields];
}

/** An SDK error must carry this S3 code (err.name) and HTTP status. */
async function rejectsS3(t: Test, promise: Promise<unknown>, code: string, status: number, message?: string): Promise<S3ServiceException | undefined> {
  try {
    await promise;
    t.fail(`expected ${code} (${status}), the request succeeded`);
    return undefined;
  } catch (err) {
    if (!(err instanceof S3ServiceException)) {
      t.fail(`expected ${code} (${status}), got ${String(err)}`);
      return undefined;
    }
    t.equal(err.name, code, message ? `${message}: code` : `code ${code}`);
    t.equal(err.$metadata.httpStatusCode, status, message ? `${message}: status` : `status ${status}`);
    t.match(err.$metadata.requestId, /^[0-9A-F]{16}$/, 'x-amz-request-id on the error');
    return err;
  }
}

function expectError(t: Test, res: RawResponse, code: string, status: number, message?: string): void {
  t.equal(res.status, status, message ? `${message}: status` : `status ${status}`);
  t.equal(errorCode(res), code, message ? `${message}: code` : `code ${code}`);
  t.ok(res.headers['x-amz-request-id'], 'x-amz-request-id on the error');
}

async function getBytes(key: string, client: S3Client = s3): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

async function exists(key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch (err) {
    if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return false;
    throw err;
  }
}

/** Version ids (the prefix of every shard id) of all shards on all storage nodes. */
async function storedVersions(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const node of await namespace.listNodes()) {
    let after: string | undefined;
    do {
      const page = await pool.get(node.url).listShards(after, 1000);
      for (const shard of page.shards) out.add(shard.id.split('.')[0]!);
      after = page.next;
    } while (after !== undefined);
  }
  return out;
}

/** Waits (GC of failed writes is asynchronous) until no versions beyond `allowed` hold shards. */
async function settlesTo(allowed: Set<string>, timeoutMs = 8000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const extra = [...(await storedVersions())].filter((v) => !allowed.has(v));
    if (extra.length === 0 || Date.now() > deadline) return extra;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const captures = new WeakMap<S3Client, { last: () => Record<string, string> }>();

/** Records the final request headers the SDK put on the wire (one recorder per client). */
function captureHeaders(client: S3Client): { last: () => Record<string, string> } {
  const existing = captures.get(client);
  if (existing) return existing;
  let last: Record<string, string> = {};
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      last = { ...(request.headers ?? {}) };
      return next(args);
    },
    { step: 'deserialize', name: 'captureRequestHeaders' },
  );
  const capture = { last: () => last };
  captures.set(client, capture);
  return capture;
}

function plainClient(): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: CREDS,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

// ---------------------------------------------------------------------------------------------
// checksums and payload modes

t.test('checksums: CRC64NVME by default, FULL_OBJECT, only on whole-object reads', async (t) => {
  const client = plainClient();
  t.teardown(() => client.destroy());
  const data = randomBytes(300 * KiB);
  const put = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'default-checksum', Body: data }));
  t.equal(put.ChecksumCRC64NVME, checksumOf('CRC64NVME', data), 'S3 computes CRC64NVME when the client sent none');
  t.equal(put.ChecksumType, 'FULL_OBJECT');
  t.equal(put.ETag, md5Etag(data));

  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'default-checksum', ChecksumMode: 'ENABLED' }));
  t.equal(head.ChecksumCRC64NVME, checksumOf('CRC64NVME', data));
  t.equal(head.ChecksumType, 'FULL_OBJECT');
  const noMode = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'default-checksum' }));
  t.equal(noMode.ChecksumCRC64NVME, undefined, 'no checksum without x-amz-checksum-mode');

  const get = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'default-checksum', ChecksumMode: 'ENABLED' }));
  t.equal(get.ChecksumCRC64NVME, checksumOf('CRC64NVME', data));
  t.ok(Buffer.from(await get.Body!.transformToByteArray()).equals(data), 'the SDK validated the checksum and the bytes match');
  const ranged = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'default-checksum', ChecksumMode: 'ENABLED', Range: 'bytes=10-99' }));
  t.equal(ranged.ChecksumCRC64NVME, undefined, 'a range gets no whole-object checksum');
  t.equal(ranged.ChecksumType, undefined);
  t.ok(Buffer.from(await ranged.Body!.transformToByteArray()).equals(data.subarray(10, 100)));
});

t.test('checksums: every algorithm in header form (Buffer body) and trailer form (stream body)', async (t) => {
  const captured = captureHeaders(s3);
  const data = randomBytes(200 * KiB + 3);
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const expected = checksumOf(algorithm, data);
    const header = `x-amz-checksum-${algorithm.toLowerCase()}`;

    const key = `alg/${algorithm}/header`;
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: data, ChecksumAlgorithm: sdkAlgorithm(algorithm) }));
    t.equal(captured.last()[header], expected, `${algorithm}: sent in a header`);
    t.equal(checksumField(put, algorithm), expected, `${algorithm}: PutObject echoes the checksum`);

    const streamKey = `alg/${algorithm}/trailer`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: streamKey, Body: Readable.from([data.subarray(0, 70_000), data.subarray(70_000)]), ContentLength: data.length, ChecksumAlgorithm: sdkAlgorithm(algorithm) }));
    t.equal(captured.last()['x-amz-content-sha256'], 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', `${algorithm}: stream sent as aws-chunked with a trailer`);
    t.equal(captured.last()['x-amz-trailer'], header);

    for (const k of [key, streamKey]) {
      const get = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: k, ChecksumMode: 'ENABLED' }));
      t.equal(checksumField(get, algorithm), expected, `${k}: stored checksum returned`);
      t.equal(get.ChecksumType, 'FULL_OBJECT');
      t.equal(sha256Hex(Buffer.from(await get.Body!.transformToByteArray())), sha256Hex(data), `${k}: stored bytes are exactly the payload`);
    }
  }
});

t.test('payload modes: signed chunks, signed chunks with trailer, unsigned trailer, UNSIGNED-PAYLOAD', async (t) => {
  const data = randomBytes(150 * KiB + 11);

  // STREAMING-AWS4-HMAC-SHA256-PAYLOAD, built by hand.
  const streamingHeaders = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'content-type': 'text/plain' };
  const signedReq = await signRequest(endpoint, CREDS, {
    method: 'PUT',
    path: `/${BUCKET}/modes/signed`,
    payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    headers: { ...streamingHeaders, 'content-length': String(signedChunkedBody(data, 64 * KiB, { signingKey: Buffer.alloc(32), amzDate: '', scope: '', seedSignature: '' }).length) },
  });
  const wire = signedChunkedBody(data, 64 * KiB, signedReq);
  let res = await send('PUT', signedReq.url, signedReq.headers, wire);
  t.equal(res.status, 200, 'signed chunks accepted');
  t.equal(res.headers['etag'], md5Etag(data));
  t.equal(res.headers['x-amz-checksum-crc64nvme'], checksumOf('CRC64NVME', data), 'default checksum over the decoded bytes');

  // STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER with a CRC32C trailer.
  const trailer = { name: 'x-amz-checksum-crc32c', value: checksumOf('CRC32C', data) };
  const trailerHeaders = { ...streamingHeaders, 'x-amz-trailer': trailer.name };
  const lengthProbe = signedChunkedBody(data, 64 * KiB, { signingKey: Buffer.alloc(32), amzDate: '', scope: '', seedSignature: '' }, trailer).length;
  const trailerReq = await signRequest(endpoint, CREDS, {
    method: 'PUT',
    path: `/${BUCKET}/modes/signed-trailer`,
    payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
    headers: { ...trailerHeaders, 'content-length': String(lengthProbe) },
  });
  res = await send('PUT', trailerReq.url, trailerReq.headers, signedChunkedBody(data, 64 * KiB, trailerReq, trailer));
  t.equal(res.status, 200, 'signed chunks with a signed trailer accepted');
  t.equal(res.headers['x-amz-checksum-crc32c'], trailer.value);

  // A chunk whose signature does not chain is refused, and nothing is stored.
  const badReq = await signRequest(endpoint, CREDS, {
    method: 'PUT',
    path: `/${BUCKET}/modes/bad-chunk`,
    payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    headers: { ...streamingHeaders, 'content-length': String(wire.length) },
  });
  res = await send('PUT', badReq.url, badReq.headers, signedChunkedBody(data, 64 * KiB, { ...badReq, seedSignature: 'f'.repeat(64) }));
  expectError(t, res, 'SignatureDoesNotMatch', 403, 'chunk signed with the wrong seed');
  t.notOk(await exists('modes/bad-chunk'));

  // STREAMING-UNSIGNED-PAYLOAD-TRAILER: the SDK's default for a stream body.
  const captured = captureHeaders(s3);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'modes/unsigned-trailer', Body: Readable.from([data]), ContentLength: data.length }));
  t.equal(captured.last()['x-amz-content-sha256'], 'STREAMING-UNSIGNED-PAYLOAD-TRAILER');
  t.equal(captured.last()['content-encoding'], 'aws-chunked');

  // UNSIGNED-PAYLOAD: the SDK with checksums only when required and a stream body.
  const plain = plainClient();
  t.teardown(() => plain.destroy());
  const plainCaptured = captureHeaders(plain);
  await plain.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'modes/unsigned', Body: Readable.from([data]), ContentLength: data.length }));
  t.equal(plainCaptured.last()['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');

  for (const key of ['modes/signed', 'modes/signed-trailer', 'modes/unsigned-trailer', 'modes/unsigned']) {
    const got = await getBytes(key);
    t.equal(got.length, data.length, `${key}: no chunk framing or trailer in the stored bytes`);
    t.equal(sha256Hex(got), sha256Hex(data), `${key}: sha256 of the stored bytes`);
  }
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'modes/signed' }));
  t.equal(head.ContentEncoding, undefined, 'aws-chunked is not stored as the Content-Encoding');
  t.equal(head.ContentType, 'text/plain');

  // A plain payload whose x-amz-content-sha256 does not match the body.
  res = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}/modes/sha-mismatch`, body: data, payloadHash: sha256Hex(Buffer.from('other')) });
  expectError(t, res, 'XAmzContentSHA256Mismatch', 400);
  t.notOk(await exists('modes/sha-mismatch'));
});

t.test('bad digests: BadDigest or InvalidDigest, no object and no leftover shards', async (t) => {
  const data = randomBytes(2 * MiB + 5); // several segments are written before the digest is known
  const other = Buffer.from('not the payload');
  const before = await storedVersions();

  let res = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}/bad/header`, body: data, headers: { 'x-amz-checksum-sha256': checksumOf('SHA256', other) } });
  expectError(t, res, 'BadDigest', 400, 'wrong x-amz-checksum-sha256');

  const wrongTrailer = unsignedChunkedBody(data, 64 * KiB, { name: 'x-amz-checksum-crc32', value: checksumOf('CRC32', other) });
  res = await rawRequest(endpoint, CREDS, {
    method: 'PUT',
    path: `/${BUCKET}/bad/trailer`,
    body: wrongTrailer,
    payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'x-amz-trailer': 'x-amz-checksum-crc32' },
  });
  expectError(t, res, 'BadDigest', 400, 'wrong trailing x-amz-checksum-crc32');

  // Every algorithm, in a header and in an unsigned and a signed trailer.
  const small = randomBytes(20 * KiB);
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const name = `x-amz-checksum-${algorithm.toLowerCase()}`;
    const wrong = checksumOf(algorithm, other);
    res = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}/bad/h-${algorithm}`, body: small, headers: { [name]: wrong } });
    expectError(t, res, 'BadDigest', 400, `${algorithm} header`);
    t.match(res.body.toString(), `The ${algorithm} you specified did not match the calculated checksum.`);
    res = await rawRequest(endpoint, CREDS, {
      method: 'PUT',
      path: `/${BUCKET}/bad/t-${algorithm}`,
      body: unsignedChunkedBody(small, 8 * KiB, { name, value: wrong }),
      payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(small.length), 'x-amz-trailer': name },
    });
    expectError(t, res, 'BadDigest', 400, `${algorithm} unsigned trailer`);
    const probe = signedChunkedBody(small, 8 * KiB, { signingKey: Buffer.alloc(32), amzDate: '', scope: '', seedSignature: '' }, { name, value: wrong });
    const signed = await signRequest(endpoint, CREDS, {
      method: 'PUT',
      path: `/${BUCKET}/bad/s-${algorithm}`,
      payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(small.length), 'x-amz-trailer': name, 'content-length': String(probe.length) },
    });
    res = await send('PUT', signed.url, signed.headers, signedChunkedBody(small, 8 * KiB, signed, { name, value: wrong }));
    expectError(t, res, 'BadDigest', 400, `${algorithm} signed trailer`);
    for (const prefix of ['h', 't', 's']) t.notOk(await exists(`bad/${prefix}-${algorithm}`), `bad/${prefix}-${algorithm}: no object`);
  }

  const wrongMd5 = createHash('md5').update(other).digest('base64');
  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/md5', Body: data, ContentMD5: wrongMd5 })), 'BadDigest', 400, 'Content-MD5 mismatch');
  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/md5-malformed', Body: data, ContentMD5: 'not-base64-md5' })), 'InvalidDigest', 400, 'malformed Content-MD5');
  const goodMd5 = createHash('md5').update(data).digest('base64');
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/md5-good', Body: data, ContentMD5: goodMd5 }));

  for (const key of ['bad/header', 'bad/trailer', 'bad/md5', 'bad/md5-malformed']) t.notOk(await exists(key), `${key}: no object`);
  const good = await namespace.getObject(BUCKET, 'bad/md5-good');
  const leftovers = await settlesTo(new Set([...before, good.versionId]));
  t.same(leftovers, [], 'the failed uploads left no shards behind');
});

// ---------------------------------------------------------------------------------------------
// conditional writes

t.test('conditional writes: If-None-Match and If-Match', async (t) => {
  const a = Buffer.from('first');
  const b = Buffer.from('second');
  const first = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/key', Body: a, IfNoneMatch: '*' }));
  t.equal(first.ETag, md5Etag(a), 'If-None-Match: * creates an absent key');
  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/key', Body: b, IfNoneMatch: '*' })), 'PreconditionFailed', 412, 'If-None-Match: * on an existing key');
  t.ok((await getBytes('cond/key')).equals(a), 'the existing object is unchanged');

  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/key', Body: b, IfMatch: md5Etag(b) })), 'PreconditionFailed', 412, 'If-Match with another ETag');
  const second = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/key', Body: b, IfMatch: first.ETag }));
  t.equal(second.ETag, md5Etag(b), 'If-Match with the current ETag overwrites');
  const unquoted = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/key', Body: a, IfMatch: second.ETag!.replace(/"/g, '') }));
  t.equal(unquoted.ETag, md5Etag(a), 'an unquoted ETag matches too');
  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/absent', Body: a, IfMatch: first.ETag })), 'NoSuchKey', 404, 'If-Match on a missing key');
  t.notOk(await exists('cond/absent'));

  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/other', Body: a, IfNoneMatch: md5Etag(a) })), 'NotImplemented', 501, 'If-None-Match with an ETag');
  const both = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}/cond/both`, body: a, headers: { 'if-match': md5Etag(a), 'if-none-match': '*' } });
  expectError(t, both, 'NotImplemented', 501, 'If-Match with If-None-Match');
  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: 'no-such-bucket-cond', Key: 'k', Body: a, IfNoneMatch: '*' })), 'NoSuchBucket', 404);
});

t.test('conditional writes: concurrent If-None-Match: * through one and two gateways, exactly one wins', async (t) => {
  const second = await tc.cluster.startGateway('gateway-b', 0);
  const other = s3ClientFor(second.ready.url);
  t.teardown(() => other.destroy());
  const N = 8;
  const runs: [string, S3Client[]][] = [
    ['one gateway', [s3]],
    ['two gateways', [s3, other]],
  ];
  for (const [label, clients] of runs) {
    const key = `race/${label.replace(' ', '-')}`;
    const bodies = Array.from({ length: N }, () => randomBytes(300 * KiB));
    const before = await storedVersions();
    const outcomes = await Promise.allSettled(
      bodies.map((body, i) => clients[i % clients.length]!.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, IfNoneMatch: '*' }))),
    );
    const uploaded = [...(await storedVersions())].filter((v) => !before.has(v)).length;
    t.comment(`${label}: ${uploaded} of ${N} writers had stored shards when the race ended (the rest lost before uploading)`);
    const winners = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
    t.equal(winners.length, 1, `${label}: exactly one PUT succeeded`);
    for (const o of outcomes) {
      if (o.status === 'rejected') {
        const err = o.reason as S3ServiceException;
        t.equal(`${err.name} ${err.$metadata.httpStatusCode}`, 'PreconditionFailed 412', `${label}: a loser gets 412 PreconditionFailed`);
      }
    }
    const winner = winners[0]!;
    t.ok((await getBytes(key, clients[clients.length - 1])).equals(bodies[winner]!), `${label}: the object holds the winner's bytes`);
    const record = await namespace.getObject(BUCKET, key);
    t.same(await settlesTo(new Set([...before, record.versionId])), [], `${label}: the losers' shards were discarded`);
  }
  t.ok((await getBytes('cond/key', other)).length > 0, 'the second gateway reads what the first wrote');
});

// ---------------------------------------------------------------------------------------------
// CopyObject

t.test('CopyObject', async (t) => {
  const data = randomBytes(2 * MiB + 12_345);
  const srcKey = 'copy/src ü+?#.bin';
  const encodedSrc = `${BUCKET}/${encodeURIComponent(srcKey)}`;
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: srcKey,
      Body: data,
      ChecksumAlgorithm: 'SHA256',
      ContentType: 'application/x-test',
      CacheControl: 'max-age=60',
      ContentDisposition: 'attachment; filename="a.bin"',
      Metadata: { colour: 'blue', 'two-words': 'x y' },
    }),
  );

  // COPY (the default): metadata, content type, stored headers and checksum follow the source.
  const copy = await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/dst', CopySource: encodedSrc, Metadata: { ignored: 'yes' }, ContentType: 'text/ignored' }));
  t.equal(copy.CopyObjectResult?.ETag, put.ETag, 'the copy has the MD5 ETag of the same bytes');
  t.equal(copy.CopyObjectResult?.ChecksumSHA256, checksumOf('SHA256', data), "the source's checksum algorithm is kept");
  t.ok(copy.CopyObjectResult?.LastModified instanceof Date);
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy/dst', ChecksumMode: 'ENABLED' }));
  t.equal(head.ContentType, 'application/x-test');
  t.equal(head.CacheControl, 'max-age=60');
  t.equal(head.ContentDisposition, 'attachment; filename="a.bin"');
  t.same(head.Metadata, { colour: 'blue', 'two-words': 'x y' }, 'metadata copied, request metadata ignored');
  t.equal(head.ChecksumSHA256, checksumOf('SHA256', data));
  t.ok((await getBytes('copy/dst')).equals(data), 'the copy holds the same bytes');

  // New shards: nothing shared, and the copy outlives its source.
  const [srcRecord, dstRecord] = await Promise.all([namespace.getObject(BUCKET, srcKey), namespace.getObject(BUCKET, 'copy/dst')]);
  t.equal(dstRecord.segments.length, 3, 'a multi-segment copy');
  const srcShards = new Set(srcRecord.segments.flatMap((s) => s.placements.map((p) => p.shardId)));
  t.notOk(dstRecord.segments.some((s) => s.placements.some((p) => srcShards.has(p.shardId))), 'no shard is shared between source and copy');

  // Leading slash, and an explicit ChecksumAlgorithm.
  const crc = await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/crc32c', CopySource: `/${encodedSrc}`, ChecksumAlgorithm: 'CRC32C' }));
  t.equal(crc.CopyObjectResult?.ChecksumCRC32C, checksumOf('CRC32C', data), 'x-amz-checksum-algorithm computes a new checksum');
  const crcHead = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy/crc32c', ChecksumMode: 'ENABLED' }));
  t.equal(crcHead.ChecksumCRC32C, checksumOf('CRC32C', data));

  // REPLACE: everything from the request.
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/replaced', CopySource: encodedSrc, MetadataDirective: 'REPLACE', ContentType: 'text/plain', ContentLanguage: 'fr', Metadata: { fresh: '1' } }));
  const replaced = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy/replaced' }));
  t.equal(replaced.ContentType, 'text/plain');
  t.equal(replaced.ContentLanguage, 'fr');
  t.equal(replaced.CacheControl, undefined, 'stored headers are replaced too');
  t.same(replaced.Metadata, { fresh: '1' });

  // Onto itself: only with REPLACE.
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: srcKey, CopySource: encodedSrc })), 'InvalidRequest', 400, 'self-copy without REPLACE');
  const selfRaw = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}/copy/dst`, headers: { 'x-amz-copy-source': `${BUCKET}/copy/dst` } });
  expectError(t, selfRaw, 'InvalidRequest', 400);
  t.match(selfRaw.body.toString(), "This copy request is illegal because it is trying to copy an object to itself without changing the object&apos;s metadata, storage class, website redirect location or encryption attributes.");
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: srcKey, CopySource: encodedSrc, MetadataDirective: 'REPLACE', Metadata: { colour: 'red' }, ContentType: 'application/x-test' }));
  const self = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: srcKey }));
  t.same(self.Metadata, { colour: 'red' }, 'self-copy with REPLACE updates the metadata');
  t.ok((await getBytes(srcKey)).equals(data), 'and keeps the bytes');

  // Source conditions.
  const etag = put.ETag!;
  const past = new Date(Date.now() - 3600_000);
  const future = new Date(Date.now() + 3600_000);
  const copyWith = (extra: Partial<ConstructorParameters<typeof CopyObjectCommand>[0]>) =>
    s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/cond', CopySource: encodedSrc, ...extra }));
  await copyWith({ CopySourceIfMatch: etag });
  await rejectsS3(t, copyWith({ CopySourceIfMatch: '"0123456789abcdef0123456789abcdef"' }), 'PreconditionFailed', 412, 'copy-source-if-match false');
  await rejectsS3(t, copyWith({ CopySourceIfNoneMatch: etag }), 'PreconditionFailed', 412, 'copy-source-if-none-match false');
  await rejectsS3(t, copyWith({ CopySourceIfModifiedSince: future }), 'PreconditionFailed', 412, 'copy-source-if-modified-since false');
  await rejectsS3(t, copyWith({ CopySourceIfUnmodifiedSince: past }), 'PreconditionFailed', 412, 'copy-source-if-unmodified-since false');
  await copyWith({ CopySourceIfMatch: etag, CopySourceIfUnmodifiedSince: past });
  t.pass('if-match true wins over if-unmodified-since false');
  await copyWith({ CopySourceIfNoneMatch: '"0123456789abcdef0123456789abcdef"', CopySourceIfModifiedSince: past });
  await copyWith({ CopySourceIfModifiedSince: past, CopySourceIfUnmodifiedSince: future });
  await rejectsS3(t, copyWith({ CopySourceIfNoneMatch: etag, CopySourceIfModifiedSince: past }), 'PreconditionFailed', 412, 'if-none-match false and if-modified-since true');

  // Destination conditions.
  await rejectsS3(t, copyWith({ IfNoneMatch: '*' }), 'PreconditionFailed', 412, 'If-None-Match: * on an existing destination');
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/new-only', CopySource: encodedSrc, IfNoneMatch: '*' }));

  // Missing things.
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/x', CopySource: `${BUCKET}/copy/absent` })), 'NoSuchKey', 404, 'missing source key');
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/x', CopySource: 'no-such-source-bucket/k' })), 'NoSuchBucket', 404, 'missing source bucket');
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: 'no-such-dest-bucket', Key: 'copy/x', CopySource: encodedSrc })), 'NoSuchBucket', 404, 'missing destination bucket');
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/x', CopySource: 'just-a-bucket' })), 'InvalidArgument', 400, 'copy source without a key');
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/x', CopySource: encodedSrc, MetadataDirective: 'MERGE' as 'COPY' })), 'InvalidArgument', 400, 'unknown metadata directive');

  // An empty object copies to an empty object.
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'copy/empty', Body: Buffer.alloc(0) }));
  const empty = await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/empty-copy', CopySource: `${BUCKET}/copy/empty` }));
  t.equal(empty.CopyObjectResult?.ETag, md5Etag(Buffer.alloc(0)));
  t.equal((await getBytes('copy/empty-copy')).length, 0);

  // The copy survives the deletion of its source.
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: srcKey }));
  t.ok((await getBytes('copy/dst')).equals(data), 'the copy is readable after its source is deleted');
});

// ---------------------------------------------------------------------------------------------
// DeleteObjects

t.test('DeleteObjects', async (t) => {
  const keys = ['del/a', 'del/b', 'del/c', 'del/keep'];
  for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));

  const captured = captureHeaders(s3);
  const verbose = await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: 'del/a' }, { Key: 'del/b' }, { Key: 'del/missing' }] } }));
  t.ok(Object.keys(captured.last()).some((h) => h.startsWith('x-amz-checksum-') || h === 'content-md5'), 'the SDK protects the body with a checksum');
  t.same(verbose.Deleted?.map((d) => d.Key).sort(), ['del/a', 'del/b', 'del/missing'], 'a missing key is reported as deleted');
  t.equal(verbose.Errors, undefined);
  t.notOk(await exists('del/a'));
  t.notOk(await exists('del/b'));
  t.ok(await exists('del/keep'));

  const quiet = await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Quiet: true, Objects: [{ Key: 'del/c' }] } }));
  t.equal(quiet.Deleted, undefined, 'quiet mode lists no deletions');
  t.notOk(await exists('del/c'));

  const versioned = await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Quiet: true, Objects: [{ Key: 'del/keep', VersionId: 'v123' }, { Key: 'del/none', VersionId: 'null' }] } }));
  t.same(versioned.Errors?.map((e) => [e.Key, e.Code]), [['del/keep', 'NoSuchVersion']], 'a per-key error, reported even in quiet mode');
  t.ok(await exists('del/keep'));

  // 1000 keys at once.
  const many = Array.from({ length: 1000 }, (_, i) => ({ Key: `del/many/${i}` }));
  await Promise.all(many.slice(0, 20).map((o) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: o.Key, Body: 'x' }))));
  const all = await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: many } }));
  t.equal(all.Deleted?.length, 1000);
  t.notOk(await exists('del/many/7'));

  const xml = (n: number) => Buffer.from(`<Delete>${Array.from({ length: n }, (_, i) => `<Object><Key>k${i}</Key></Object>`).join('')}</Delete>`);
  const withMd5 = (body: Buffer) => ({ 'content-md5': createHash('md5').update(body).digest('base64') });
  const post = (body: Buffer, headers: Record<string, string>, bucket = BUCKET) =>
    rawRequest(endpoint, CREDS, { method: 'POST', path: `/${bucket}`, query: { delete: '' }, body, headers });

  expectError(t, await post(xml(1), {}), 'InvalidRequest', 400, 'no Content-MD5 and no checksum');
  t.match((await post(xml(1), {})).body.toString(), 'Missing required header for this request: Content-MD5 OR x-amz-checksum-*');
  t.equal((await post(xml(1), withMd5(xml(1)))).status, 200, 'Content-MD5 alone is enough');
  t.equal((await post(xml(1), { 'x-amz-checksum-sha256': checksumOf('SHA256', xml(1)) })).status, 200, 'a checksum header alone is enough');
  expectError(t, await post(xml(1), withMd5(xml(2))), 'BadDigest', 400, 'Content-MD5 of another body');
  expectError(t, await post(xml(1001), withMd5(xml(1001))), 'MalformedXML', 400, 'more than 1000 keys');
  expectError(t, await post(xml(0), withMd5(xml(0))), 'MalformedXML', 400, 'no keys');
  const broken = Buffer.from('<Delete><Object><Key>a</Key></Delete>');
  expectError(t, await post(broken, withMd5(broken)), 'MalformedXML', 400, 'not well-formed');
  expectError(t, await post(xml(1), withMd5(xml(1)), 'no-such-bucket-del'), 'NoSuchBucket', 404);
  await rejectsS3(t, s3.send(new DeleteObjectsCommand({ Bucket: 'no-such-bucket-del', Delete: { Objects: [{ Key: 'a' }] } })), 'NoSuchBucket', 404);
});

// ---------------------------------------------------------------------------------------------
// headers, metadata, conditional reads

t.test('headers and metadata round trip', async (t) => {
  const data = Buffer.from('{"hello":"world"}');
  const expires = new Date('2030-01-02T03:04:05Z');
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: 'meta/doc.json',
      Body: data,
      ContentType: 'application/json; charset=utf-8',
      ContentEncoding: 'identity',
      ContentDisposition: 'inline; filename="doc.json"',
      CacheControl: 'no-cache',
      Expires: expires,
      ContentLanguage: 'en-GB',
      Metadata: { Owner: 'Alice', 'x-trace': 'abc-123', mime: '=?UTF-8?B?w6l0w6k=?=' },
    }),
  );
  for (const command of [new HeadObjectCommand({ Bucket: BUCKET, Key: 'meta/doc.json' }), new GetObjectCommand({ Bucket: BUCKET, Key: 'meta/doc.json' })]) {
    const res = await s3.send(command as GetObjectCommand);
    const label = command instanceof HeadObjectCommand ? 'HEAD' : 'GET';
    t.equal(res.ContentType, 'application/json; charset=utf-8', `${label} Content-Type`);
    t.equal(res.ContentEncoding, 'identity', `${label} Content-Encoding`);
    t.equal(res.ContentDisposition, 'inline; filename="doc.json"', `${label} Content-Disposition`);
    t.equal(res.CacheControl, 'no-cache', `${label} Cache-Control`);
    t.equal(res.Expires?.getTime(), expires.getTime(), `${label} Expires`);
    t.equal(res.ContentLanguage, 'en-GB', `${label} Content-Language`);
    t.same(res.Metadata, { owner: 'Alice', 'x-trace': 'abc-123', mime: '=?UTF-8?B?w6l0w6k=?=' }, `${label} metadata (names lower-cased)`);
    t.equal(res.ETag, put.ETag, `${label} ETag`);
    t.equal(res.AcceptRanges, 'bytes', `${label} Accept-Ranges`);
    t.ok(res.LastModified instanceof Date && Math.abs(res.LastModified.getTime() - Date.now()) < 60_000, `${label} Last-Modified`);
    t.equal(res.ContentLength, data.length, `${label} Content-Length`);
    t.match(res.$metadata.requestId, /^[0-9A-F]{16}$/, `${label} x-amz-request-id`);
    if (res.Body) t.ok(Buffer.from(await res.Body.transformToByteArray()).equals(data));
  }

  // Non-ASCII metadata: raw UTF-8 and Q-encoded words are stored as text and returned as one
  // UTF-8 B encoded-word; pure ASCII comes back as it was.
  const utf8 = 'héllo wörld ✓';
  const res = await rawRequest(endpoint, CREDS, {
    method: 'PUT',
    path: `/${BUCKET}/meta/unicode`,
    body: data,
    headers: { 'x-amz-meta-raw': Buffer.from(utf8, 'utf8').toString('latin1'), 'x-amz-meta-q': '=?UTF-8?Q?h=C3=A9llo_w=C3=B6rld_=E2=9C=93?=' },
  });
  t.equal(res.status, 200);
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'meta/unicode' }));
  const encoded = `=?UTF-8?B?${Buffer.from(utf8).toString('base64')}?=`;
  t.same(head.Metadata, { raw: encoded, q: encoded });

  // response-* overrides on a (signed) GET.
  const overridden = await s3.send(
    new GetObjectCommand({
      Bucket: BUCKET,
      Key: 'meta/doc.json',
      ResponseContentType: 'text/plain',
      ResponseContentDisposition: 'attachment; filename="x.txt"',
      ResponseCacheControl: 'max-age=5',
      ResponseContentLanguage: 'de',
      ResponseContentEncoding: 'gzip',
      ResponseExpires: new Date('2031-01-01T00:00:00Z'),
    }),
  );
  t.equal(overridden.ContentType, 'text/plain');
  t.equal(overridden.ContentDisposition, 'attachment; filename="x.txt"');
  t.equal(overridden.CacheControl, 'max-age=5');
  t.equal(overridden.ContentLanguage, 'de');
  t.equal(overridden.ContentEncoding, 'gzip');
  t.equal(overridden.Expires?.toISOString(), '2031-01-01T00:00:00.000Z');
  await overridden.Body!.transformToByteArray();
  const after = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'meta/doc.json' }));
  t.equal(after.ContentType, 'application/json; charset=utf-8', 'overrides change only that response');

  // x-amz-request-id on errors, for GET (XML body) and HEAD (no body).
  const missing = await rawRequest(endpoint, CREDS, { method: 'GET', path: `/${BUCKET}/meta/absent` });
  expectError(t, missing, 'NoSuchKey', 404);
  const missingHead = await rawRequest(endpoint, CREDS, { method: 'HEAD', path: `/${BUCKET}/meta/absent` });
  t.equal(missingHead.status, 404);
  t.ok(missingHead.headers['x-amz-request-id']);
  t.equal(missingHead.body.length, 0);
});

t.test('a segment that fails its end-to-end CRC32C cuts the GET short: the segments before it, never its bytes', async (t) => {
  // Segments are 1 MiB here, one window each. The record's CRC of the middle segment is forged, so
  // its blocks pass every check on the nodes while the segment as a whole does not.
  const body = randomBytes(3 * MiB);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'forged-crc', Body: body }));
  const record = await namespace.getObject(BUCKET, 'forged-crc');
  t.equal(record.segments.length, 3);
  const segments = record.segments.map((s, i) => (i === 1 ? { ...s, crc32c: (s.crc32c! ^ 1) >>> 0 } : s));
  await namespace.commitObject({ record: { ...record, segments } });
  t.teardown(() => s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'forged-crc' })));

  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'forged-crc' }));
  t.equal(res.$metadata.httpStatusCode, 200, 'the status line went out with the first segment');
  const received: Buffer[] = [];
  let failure: unknown;
  try {
    for await (const chunk of res.Body as AsyncIterable<Uint8Array>) received.push(Buffer.from(chunk));
  } catch (err) {
    failure = err;
  }
  const got = Buffer.concat(received);
  t.ok(failure, 'the body ends in an error, not as a complete response');
  t.ok(got.length <= MiB, `at most the first segment arrived (${got.length} bytes)`);
  t.ok(got.equals(body.subarray(0, got.length)), 'what arrived is the object\'s first bytes');
  const ranged = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'forged-crc', Range: `bytes=${MiB + 10}-${MiB + 99}` }));
  t.ok(Buffer.from(await ranged.Body!.transformToByteArray()).equals(body.subarray(MiB + 10, MiB + 100)), 'a range within it is checked by its blocks alone');
});

t.test('a client that hangs up mid-GET: the gateway stops sending and serves the next request', async (t) => {
  const sent = async (): Promise<number> => {
    const text = await (await fetch(`${endpoint}/-/metrics`)).text();
    // No line until the first byte is sent.
    return Number(/^cairn_s3_bytes_sent_total(?:\{[^}]*\})? ([\d.e+]+)$/m.exec(text)?.[1] ?? 0);
  };
  const body = randomBytes(32 * MiB);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'hang-up', Body: body }));
  t.teardown(() => s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'hang-up' })));
  const before = await sent();
  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'hang-up' }));
  const stream = res.Body as Readable;
  const [first] = (await once(stream, 'data')) as [Buffer];
  t.ok(first.equals(body.subarray(0, first.length)), 'the first bytes arrived');
  stream.destroy();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const afterHangUp = await sent();
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(await sent(), afterHangUp, 'nothing more is sent once the client is gone');
  // Socket buffers on both ends hold a few MiB; the rest of the object is never read.
  t.ok(afterHangUp - before < 24 * MiB, `sent ${((afterHangUp - before) / MiB).toFixed(1)} MiB of 32`);
  t.ok((await getBytes('hang-up')).equals(body), 'the next GET reads the whole object');
});

t.test('conditional GET and HEAD', async (t) => {
  const data = Buffer.from('conditional');
  const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cget/k', Body: data }));
  const etag = put.ETag!;
  const other = '"0123456789abcdef0123456789abcdef"';
  const past = new Date(Date.now() - 3600_000);
  const future = new Date(Date.now() + 3600_000);
  type Conditions = { IfMatch?: string; IfNoneMatch?: string; IfModifiedSince?: Date; IfUnmodifiedSince?: Date };
  const cases: [string, Conditions, number][] = [
    ['If-Match true', { IfMatch: etag }, 200],
    ['If-Match false', { IfMatch: other }, 412],
    ['If-Match *', { IfMatch: '*' }, 200],
    ['If-None-Match true', { IfNoneMatch: other }, 200],
    ['If-None-Match false', { IfNoneMatch: etag }, 304],
    ['If-Modified-Since past', { IfModifiedSince: past }, 200],
    ['If-Modified-Since future', { IfModifiedSince: future }, 304],
    ['If-Unmodified-Since future', { IfUnmodifiedSince: future }, 200],
    ['If-Unmodified-Since past', { IfUnmodifiedSince: past }, 412],
    ['If-Match true + If-Unmodified-Since false', { IfMatch: etag, IfUnmodifiedSince: past }, 200],
    ['If-None-Match false + If-Modified-Since true', { IfNoneMatch: etag, IfModifiedSince: past }, 304],
    ['If-None-Match true + If-Modified-Since false', { IfNoneMatch: other, IfModifiedSince: future }, 200],
  ];
  for (const [label, conditions, status] of cases) {
    for (const method of ['GET', 'HEAD'] as const) {
      const send = () =>
        method === 'GET'
          ? s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cget/k', ...conditions })).then(async (r) => {
              t.ok(Buffer.from(await r.Body!.transformToByteArray()).equals(data));
              return r;
            })
          : s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'cget/k', ...conditions }));
      if (status === 200) {
        const res = await send();
        t.equal(res.$metadata.httpStatusCode, 200, `${method} ${label}: 200`);
      } else {
        try {
          await send();
          t.fail(`${method} ${label}: expected ${status}`);
        } catch (err) {
          const e = err as S3ServiceException;
          t.equal(e.$metadata.httpStatusCode, status, `${method} ${label}: ${status}`);
          // 304 and HEAD answers have no body, so there is no code for the SDK to read.
          if (status === 412 && method === 'GET') t.equal(e.name, 'PreconditionFailed', `${method} ${label}: PreconditionFailed`);
        }
      }
    }
  }
  const failed = await rawRequest(endpoint, CREDS, { method: 'GET', path: `/${BUCKET}/cget/k`, headers: { 'if-match': other } });
  expectError(t, failed, 'PreconditionFailed', 412, 'raw GET with a false If-Match');
  const failedHead = await rawRequest(endpoint, CREDS, { method: 'HEAD', path: `/${BUCKET}/cget/k`, headers: { 'if-unmodified-since': past.toUTCString() } });
  t.equal(failedHead.status, 412);
  t.equal(failedHead.body.length, 0, 'HEAD errors have no body');
  const notModified = await rawRequest(endpoint, CREDS, { method: 'GET', path: `/${BUCKET}/cget/k`, headers: { 'if-none-match': etag } });
  t.equal(notModified.status, 304);
  t.equal(notModified.headers['etag'], etag, '304 carries the ETag');
  t.equal(notModified.body.length, 0);
});

t.test('ListObjectsV2 paging: later pages come from read-ahead, yet a write between pages is listed', async (t) => {
  const readAheads = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`${tc.cluster.namespaceUrl}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^cairn_namespace_list_read_ahead_total\{result="(\w+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
    return out;
  };
  const put = (key: string) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
  for (const key of ['ra/a0', 'ra/a1', 'ra/a2', 'ra/a3', 'ra/a4', 'ra/a5']) await put(key);
  const page = (token?: string) => s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'ra/', MaxKeys: 2, ContinuationToken: token }));
  const keysOf = (p: { Contents?: { Key?: string }[] }) => (p.Contents ?? []).map((c) => c.Key);

  const before = await readAheads();
  const p1 = await page();
  const p2 = await page(p1.NextContinuationToken);
  const p3 = await page(p2.NextContinuationToken);
  t.same([keysOf(p1), keysOf(p2), keysOf(p3)], [['ra/a0', 'ra/a1'], ['ra/a2', 'ra/a3'], ['ra/a4', 'ra/a5']]);
  t.notOk(p3.IsTruncated);
  const served = await readAheads();
  t.equal(served.hit! - (before.hit ?? 0), 2, 'pages 2 and 3 were read ahead');

  const q1 = await page();
  await put('ra/a1x');
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'ra/a3' }));
  const q2 = await page(q1.NextContinuationToken);
  const q3 = await page(q2.NextContinuationToken);
  t.same([keysOf(q1), keysOf(q2), keysOf(q3)], [['ra/a0', 'ra/a1'], ['ra/a1x', 'ra/a2'], ['ra/a4', 'ra/a5']], 'the PUT and the DELETE between pages show');
  const after = await readAheads();
  t.ok(after.stale! > (served.stale ?? 0), 'the page read ahead before the writes was dropped');

  // ListObjects v1 pages by marker (the last key, as the SDK's v1 callers do): read ahead as well.
  const v1 = (marker?: string) => s3.send(new ListObjectsCommand({ Bucket: BUCKET, Prefix: 'ra/', MaxKeys: 2, Marker: marker }));
  const m1 = await v1();
  const m2 = await v1(m1.Contents!.at(-1)!.Key);
  const m3 = await v1(m2.Contents!.at(-1)!.Key);
  t.same([keysOf(m1), keysOf(m2), keysOf(m3)], [['ra/a0', 'ra/a1'], ['ra/a1x', 'ra/a2'], ['ra/a4', 'ra/a5']]);
  t.equal((await readAheads()).hit! - after.hit!, 2, 'v1 pages 2 and 3 were read ahead');
});

t.test('object tags: with a write, on their own, through copies and multipart uploads; the object itself never changes', async (t) => {
  const tagsOf = async (key: string): Promise<Tag[]> => (await s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }))).TagSet ?? [];
  const body = randomBytes(3 * MiB + 5); // several segments: shards a tag change must leave alone
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tags/big', Body: body, Tagging: 'team=blue&stage=raw%2Fin&empty' }));
  t.same(await tagsOf('tags/big'), [{ Key: 'team', Value: 'blue' }, { Key: 'stage', Value: 'raw/in' }, { Key: 'empty', Value: '' }], 'x-amz-tagging of PutObject, in order');
  const before = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'tags/big' }));
  const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'tags/big' }));
  t.equal(got.TagCount, 3, 'GET tells the tag count');
  t.same(Buffer.from(await got.Body!.transformToByteArray()), body);
  const record = await namespace.getObject(BUCKET, 'tags/big');

  const replaced = [{ Key: 'team', Value: 'red' }, { Key: 'Straße ü文', Value: 'a b+c=d.e_f:g/h@i' }];
  await s3.send(new PutObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/big', Tagging: { TagSet: replaced } }));
  t.same(await tagsOf('tags/big'), replaced, 'PutObjectTagging replaces the whole set');
  const after = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'tags/big' }));
  t.equal(after.ETag, before.ETag, 'the ETag stays');
  t.equal(after.LastModified?.getTime(), before.LastModified?.getTime(), 'Last-Modified stays');
  t.same({ ...(await namespace.getObject(BUCKET, 'tags/big')), tags: undefined }, { ...record, tags: undefined }, 'the version and its shards stay');
  t.same(Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'tags/big' }))).Body!.transformToByteArray()), body);

  // Copies keep the source's tags unless told to replace them.
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'tags/copy', CopySource: `${BUCKET}/tags/big`, Tagging: 'ignored=1' }));
  t.same(await tagsOf('tags/copy'), replaced, 'COPY (the default) keeps the source tags and ignores x-amz-tagging');
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'tags/copy', CopySource: `${BUCKET}/tags/big`, TaggingDirective: 'REPLACE', Tagging: 'new=1' }));
  t.same(await tagsOf('tags/copy'), [{ Key: 'new', Value: '1' }], 'REPLACE takes x-amz-tagging');
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'tags/copy', CopySource: `${BUCKET}/tags/big`, TaggingDirective: 'REPLACE' }));
  t.same(await tagsOf('tags/copy'), [], 'REPLACE without tags leaves none');
  t.equal((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'tags/copy' }))).ETag, before.ETag);

  // A multipart upload gets the tags it was created with when it completes.
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'tags/multi', Tagging: 'phase=upload' }));
  const part = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'tags/multi', UploadId, PartNumber: 1, Body: body.subarray(0, 1000) }));
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'tags/multi', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
  t.same(await tagsOf('tags/multi'), [{ Key: 'phase', Value: 'upload' }]);

  // A small (inline) object, a key that is not a path segment, and deleting tags.
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: '..', Body: 'tiny', Tagging: 'a=1' }));
  await s3.send(new PutObjectTaggingCommand({ Bucket: BUCKET, Key: '..', Tagging: { TagSet: [{ Key: 'b', Value: '2' }] } }));
  t.same(await tagsOf('..'), [{ Key: 'b', Value: '2' }]);
  const deleted = await s3.send(new DeleteObjectTaggingCommand({ Bucket: BUCKET, Key: '..' }));
  t.equal(deleted.$metadata.httpStatusCode, 204);
  t.same(await tagsOf('..'), [], 'no tags is an empty TagSet');
  const small = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: '..' }));
  t.equal(small.TagCount, undefined, 'no x-amz-tagging-count without tags');
  t.equal(await small.Body!.transformToString(), 'tiny');

  // Refusals, with S3's codes; none changes anything.
  await rejectsS3(t, s3.send(new PutObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/big', Tagging: { TagSet: Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: '' })) } })), 'BadRequest', 400, '11 tags');
  await rejectsS3(t, s3.send(new PutObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/big', Tagging: { TagSet: [{ Key: 'a', Value: '1' }, { Key: 'a', Value: '2' }] } })), 'InvalidTag', 400, 'a repeated key');
  await rejectsS3(t, s3.send(new PutObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/big', Tagging: { TagSet: [{ Key: 'aws:x', Value: '1' }] } })), 'InvalidTag', 400, 'a system tag');
  await rejectsS3(t, s3.send(new PutObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/none', Tagging: { TagSet: [] } })), 'NoSuchKey', 404, 'no such key');
  await rejectsS3(t, s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/none' })), 'NoSuchKey', 404, 'no such key');
  await rejectsS3(t, s3.send(new DeleteObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/none' })), 'NoSuchKey', 404, 'no such key');
  await rejectsS3(t, s3.send(new GetObjectTaggingCommand({ Bucket: 'no-such-bucket', Key: 'k' })), 'NoSuchBucket', 404, 'no such bucket');
  await rejectsS3(t, s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tags/refused', Body: 'x', Tagging: 'a=1&a=2' })), 'InvalidArgument', 400, 'a repeated key in x-amz-tagging');
  await rejectsS3(t, s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'tags/refused', CopySource: `${BUCKET}/tags/big`, TaggingDirective: 'REPLACE', Tagging: 'a,b=1' })), 'InvalidTag', 400, 'a bad key in a copy');
  await rejectsS3(t, s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'tags/refused', Tagging: Array.from({ length: 11 }, (_, i) => `k${i}=`).join('&') })), 'BadRequest', 400, '11 tags for an upload');
  await rejectsS3(t, s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'tags/refused' })), 'NotFound', 404, 'nothing refused was stored');
  t.same(await tagsOf('tags/big'), replaced);

  // The raw protocol: S3 wants the document protected by Content-MD5 or a checksum, and a document at all.
  const doc = Buffer.from('<Tagging><TagSet><Tag><Key>raw</Key><Value>1</Value></Tag></TagSet></Tagging>');
  const put = (headers: Record<string, string>, payload: Buffer) => rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}/tags/big`, query: { tagging: '' }, headers, body: payload });
  const unprotected = await put({}, doc);
  t.equal(unprotected.status, 400);
  t.equal(errorCode(unprotected), 'InvalidRequest', 'no Content-MD5 or checksum');
  const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');
  const wrong = await put({ 'content-md5': md5(Buffer.from('other')) }, doc);
  t.equal(errorCode(wrong), 'BadDigest', 'a Content-MD5 that does not match');
  const empty = await put({ 'content-md5': md5(Buffer.alloc(0)) }, Buffer.alloc(0));
  t.equal(errorCode(empty), 'MissingRequestBodyError');
  const malformed = Buffer.from('<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>');
  t.equal(errorCode(await put({ 'content-md5': md5(malformed) }, malformed)), 'MalformedXML');
  t.same(await tagsOf('tags/big'), replaced, 'no refused document changed the tags');
  const ok = await put({ 'content-md5': md5(doc) }, doc);
  t.equal(ok.status, 200);
  t.same(await tagsOf('tags/big'), [{ Key: 'raw', Value: '1' }]);
  const raw = await rawRequest(endpoint, CREDS, { method: 'GET', path: `/${BUCKET}/tags/big`, query: { tagging: '' } });
  t.equal(raw.headers['content-type'], 'application/xml');
  t.equal(raw.body.toString(), '<?xml version="1.0" encoding="UTF-8"?>\n<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>raw</Key><Value>1</Value></Tag></TagSet></Tagging>');
});

t.test('bucket tags, and the versioning state of a bucket that cannot be versioned', async (t) => {
  const bucket = 'tagged-bucket';
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  t.teardown(() => s3.send(new DeleteBucketCommand({ Bucket: bucket })).then(() => undefined));
  await rejectsS3(t, s3.send(new GetBucketTaggingCommand({ Bucket: bucket })), 'NoSuchTagSet', 404, 'a bucket without tags');
  const tags = Array.from({ length: 50 }, (_, i) => ({ Key: `cost-centre-${i}`, Value: i % 2 ? 'lake' : '' }));
  await s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: tags } }));
  t.same((await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet, tags, 'fifty tags, in order');
  await rejectsS3(t, s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [...tags, { Key: 'one-more', Value: '' }] } })), 'BadRequest', 400, '51 tags');
  await rejectsS3(t, s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [{ Key: 'a!', Value: '' }] } })), 'InvalidTag', 400, 'a bad key');
  t.equal((await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet?.length, 50, 'refused sets changed nothing');
  const removed = await s3.send(new DeleteBucketTaggingCommand({ Bucket: bucket }));
  t.equal(removed.$metadata.httpStatusCode, 204);
  await rejectsS3(t, s3.send(new GetBucketTaggingCommand({ Bucket: bucket })), 'NoSuchTagSet', 404, 'after DeleteBucketTagging');
  await s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [{ Key: 'env', Value: 'test' }] } }));
  await s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [] } }));
  await rejectsS3(t, s3.send(new GetBucketTaggingCommand({ Bucket: bucket })), 'NoSuchTagSet', 404, 'an empty set removes them');
  await rejectsS3(t, s3.send(new GetBucketTaggingCommand({ Bucket: 'no-such-bucket' })), 'NoSuchBucket', 404, 'no such bucket');

  const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
  t.equal(versioning.Status, undefined, 'never versioned: no Status');
  t.equal(versioning.MFADelete, undefined);
  await rejectsS3(t, s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } })), 'NotImplemented', 501, 'Cairn keeps one version');
  await rejectsS3(t, s3.send(new GetBucketVersioningCommand({ Bucket: 'no-such-bucket' })), 'NoSuchBucket', 404, 'no such bucket');
  const raw = await rawRequest(endpoint, CREDS, { method: 'GET', path: `/${bucket}`, query: { versioning: '' } });
  t.equal(raw.body.toString(), '<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></VersioningConfiguration>');
});

t.test('ACLs as in an S3 bucket whose ACLs are off: they read as the owner\'s full control, and only that may be set', async (t) => {
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'acl/object', Body: 'x' }));
  const bucketAcl = await s3.send(new GetBucketAclCommand({ Bucket: BUCKET }));
  const ownerOnly = { Owner: bucketAcl.Owner, Grants: bucketAcl.Grants };
  t.equal(bucketAcl.Grants?.length, 1);
  t.equal(bucketAcl.Grants?.[0]?.Permission, 'FULL_CONTROL');
  t.equal(bucketAcl.Grants?.[0]?.Grantee?.Type, 'CanonicalUser');
  t.equal(bucketAcl.Grants?.[0]?.Grantee?.ID, bucketAcl.Owner?.ID, 'the grantee is the bucket owner');
  t.not(bucketAcl.Owner?.ID, undefined);
  const objectAcl = await s3.send(new GetObjectAclCommand({ Bucket: BUCKET, Key: 'acl/object' }));
  t.same({ Owner: objectAcl.Owner, Grants: objectAcl.Grants }, ownerOnly, "an object's ACL is the bucket owner's too");

  // Setting what is already true is accepted; anything more is AccessControlListNotSupported.
  for (const ACL of ['private', 'bucket-owner-full-control'] as const) {
    t.equal((await s3.send(new PutObjectAclCommand({ Bucket: BUCKET, Key: 'acl/object', ACL }))).$metadata.httpStatusCode, 200, `canned ${ACL}`);
  }
  t.equal((await s3.send(new PutBucketAclCommand({ Bucket: BUCKET, ACL: 'private' }))).$metadata.httpStatusCode, 200, 'canned private on the bucket');
  await s3.send(new PutBucketAclCommand({ Bucket: BUCKET, AccessControlPolicy: ownerOnly }));
  await s3.send(new PutObjectAclCommand({ Bucket: BUCKET, Key: 'acl/object', AccessControlPolicy: ownerOnly }));
  t.pass('the document GetBucketAcl returns is taken back');
  const allUsers = { Grantee: { Type: 'Group' as const, URI: 'http://acs.amazonaws.com/groups/global/AllUsers' }, Permission: 'READ' as const };
  const refused: [string, () => Promise<unknown>][] = [
    ['canned public-read', () => s3.send(new PutObjectAclCommand({ Bucket: BUCKET, Key: 'acl/object', ACL: 'public-read' }))],
    ['canned public-read-write on the bucket', () => s3.send(new PutBucketAclCommand({ Bucket: BUCKET, ACL: 'public-read-write' }))],
    ['a grant header', () => s3.send(new PutBucketAclCommand({ Bucket: BUCKET, GrantRead: 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' }))],
    ['a grant to everyone', () => s3.send(new PutObjectAclCommand({ Bucket: BUCKET, Key: 'acl/object', AccessControlPolicy: { Owner: ownerOnly.Owner, Grants: [...ownerOnly.Grants!, allUsers] } }))],
    ['full control for someone else', () => s3.send(new PutBucketAclCommand({ Bucket: BUCKET, AccessControlPolicy: { Owner: ownerOnly.Owner, Grants: [{ Grantee: { Type: 'CanonicalUser', ID: 'someone-else' }, Permission: 'FULL_CONTROL' }] } }))],
    ['only READ for the owner', () => s3.send(new PutBucketAclCommand({ Bucket: BUCKET, AccessControlPolicy: { Owner: ownerOnly.Owner, Grants: [{ ...ownerOnly.Grants![0], Permission: 'READ' }] } }))],
  ];
  for (const [what, attempt] of refused) await rejectsS3(t, attempt(), 'AccessControlListNotSupported', 400, what);
  await rejectsS3(t, s3.send(new GetObjectAclCommand({ Bucket: BUCKET, Key: 'acl/none' })), 'NoSuchKey', 404, 'no such key');
  await rejectsS3(t, s3.send(new PutObjectAclCommand({ Bucket: BUCKET, Key: 'acl/none', ACL: 'private' })), 'NoSuchKey', 404, 'no such key');
  await rejectsS3(t, s3.send(new GetBucketAclCommand({ Bucket: 'no-such-bucket' })), 'NoSuchBucket', 404, 'no such bucket');
  const malformed = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}`, query: { acl: '' }, body: Buffer.from('<AccessControlPolicy><Owner/></AccessControlPolicy>') });
  t.equal(errorCode(malformed), 'MalformedACLError', 'a document without an AccessControlList');
  const empty = await rawRequest(endpoint, CREDS, { method: 'PUT', path: `/${BUCKET}`, query: { acl: '' } });
  t.equal(errorCode(empty), 'MalformedACLError', 'neither a canned ACL nor a document');
  t.same((await s3.send(new GetObjectAclCommand({ Bucket: BUCKET, Key: 'acl/object' }))).Grants, ownerOnly.Grants, 'nothing refused changed anything');
});

t.test('versions of a bucket that keeps one per key: ListObjectVersions, and versionId=null names the object', async (t) => {
  const bucket = 'versions-bucket';
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const keys = ['a/1', 'a/2', 'a/3', 'b/1', 'c', 'd e+f'];
  for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` }));

  const all = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
  t.same(all.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest, v.Size]), keys.map((k) => [k, 'null', true, `body of ${k}`.length]), 'every object is its own latest version "null"');
  t.equal(all.Versions?.[0]?.ETag, md5Etag(Buffer.from('body of a/1')));
  t.equal(all.IsTruncated, false);
  t.same(all.DeleteMarkers, undefined, 'no delete markers');

  // Paging by key, as the SDK's paginator and Terraform do.
  const seen: string[] = [];
  let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
  for (let pages = 0; pages < 10; pages++) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 4, ...markers }));
    seen.push(...(page.Versions ?? []).map((v) => v.Key!));
    if (!page.IsTruncated) break;
    t.equal(page.NextVersionIdMarker, 'null');
    markers = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
  }
  t.same(seen, keys, 'pages of 4 cover every key once');
  const grouped = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Delimiter: '/', Prefix: '' }));
  t.same(grouped.CommonPrefixes?.map((p) => p.Prefix), ['a/', 'b/']);
  t.same(grouped.Versions?.map((v) => v.Key), ['c', 'd e+f']);

  // versionId=null reads and deletes the one version; another id is refused.
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'c', VersionId: 'null' }));
  t.equal(await got.Body!.transformToString(), 'body of c');
  t.equal(got.VersionId, 'null');
  t.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'c', VersionId: 'null' }))).ContentLength, 'body of c'.length);
  await rejectsS3(t, s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'c', VersionId: '3HL4kqtJlcpXroDTDmjVBH40Nrjfkd' })), 'InvalidArgument', 400, 'a version id that is not "null"');
  await rejectsS3(t, s3.send(new ListObjectVersionsCommand({ Bucket: bucket, KeyMarker: 'a', VersionIdMarker: 'abc' })), 'InvalidArgument', 400, 'a version id marker that is not "null"');
  await rejectsS3(t, s3.send(new ListObjectVersionsCommand({ Bucket: bucket, VersionIdMarker: 'null' })), 'InvalidArgument', 400, 'a version id marker without a key marker');
  // Emptying the bucket the way version-aware tools do: each listed version deleted by its id.
  for (const v of all.Versions ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId }));
  t.same((await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }))).Versions, undefined, 'every version deleted');
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  await rejectsS3(t, s3.send(new ListObjectVersionsCommand({ Bucket: bucket })), 'NoSuchBucket', 404, 'no such bucket');
});
