// Small objects kept inline in the namespace (at most the gateway's --inline-max, default k × 4 KiB):
// they write no shard files, read back byte-exact (whole, ranged, copied), switch cleanly between
// inline and erasure-coded on overwrite, stay readable with storage nodes down, and the namespace
// refuses an inline record whose bytes do not match it. Driven by @aws-sdk/client-s3.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { startTestCluster, type TestCluster } from './helpers/cluster.js';
import { parseSeries } from '../bench/put-waits.js';
import { NamespaceClient } from '../namespace/client.js';
import { loadGatewayConfig } from '../gateway/config.js';
import { readObjectRange, type ReaderDeps } from '../gateway/data/reader.js';
import { IntegrityError } from '../gateway/data/integrity.js';
import type { ObjectRecord } from '../namespace/types.js';
import { NamespaceStore } from '../namespace/store.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { readPackedShards } from '../storage-node/pack-log.js';

const KiB = 1024;
const BUCKET = 'inline';
const INLINE_MAX = 16 * KiB; // the default for k = 4

t.setTimeout(120_000);

let tc: TestCluster;
let s3: S3Client;
let namespace: NamespaceClient;

t.before(async () => {
  tc = await startTestCluster({ repair: { interval: '1h' } });
  s3 = tc.s3;
  namespace = new NamespaceClient(tc.cluster.namespaceUrl, { secret: tc.cluster.clusterSecret });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

t.teardown(async () => {
  await tc?.destroy();
});

async function put(key: string, body: Buffer, extra: Partial<ConstructorParameters<typeof PutObjectCommand>[0]> = {}): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ...extra }));
}

async function get(key: string, range?: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: range }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** Every shard on every storage node: shard files, and records of the nodes' pack logs. */
async function storedShardCount(): Promise<number> {
  const entries = await readdir(tc.dataDir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile() && e.parentPath.split(path.sep).includes('shards')).length;
  const packDirs = entries.filter((e) => e.isDirectory() && e.name === 'packs').map((e) => path.join(e.parentPath, e.name));
  const packed = await Promise.all(packDirs.map(async (dir) => (await readPackedShards(dir)).size));
  return files + packed.reduce((a, b) => a + b, 0);
}

t.test('objects up to the threshold are inline: no shard files, bytes exact', async (t) => {
  const before = await storedShardCount();
  const sizes = [1, 4 * KiB, INLINE_MAX];
  for (const size of sizes) {
    const body = randomBytes(size);
    await put(`small-${size}`, body);
    t.same(await get(`small-${size}`), body, `${size} bytes read back`);
    const record = await namespace.getObject(BUCKET, `small-${size}`);
    t.equal(record.segments.length, 0, `${size} bytes: no segments`);
    t.equal(record.inline?.crc32c, crc32c(body) >>> 0, `${size} bytes: CRC32C kept with the record`);
  }
  t.equal(await storedShardCount(), before, 'no shard was stored');

  const listed = await namespace.listObjects(BUCKET, { prefix: 'small-' });
  t.same(listed.entries.map((e) => e.size).sort((a, b) => a - b), sizes, 'listing shows the sizes');
});

t.test('one byte over the threshold is erasure-coded', async (t) => {
  const body = randomBytes(INLINE_MAX + 1);
  const before = await storedShardCount();
  await put('just-over', body);
  const record = await namespace.getObject(BUCKET, 'just-over');
  t.equal(record.inline, undefined, 'not inline');
  t.equal(record.segments.length, 1, 'one segment');
  t.ok((await storedShardCount()) >= before + 4, 'shards stored (packed: they are small)');
  t.same(await get('just-over'), body);
});

t.test("the gateway's batching clients count their requests, items and time", async (t) => {
  const series = ['requests', 'items', 'queued_seconds', 'request_seconds'] as const;
  const kinds = [['namespace', 'commits'], ['namespace', 'records'], ['storage', 'small_shard_writes'], ['storage', 'small_shard_reads']] as const;
  // A series the gateway does not serve reads NaN, which fails every comparison below.
  const read = async (): Promise<Map<string, number>> => {
    const served = parseSeries(await (await fetch(`${tc.cluster.endpoint}/-/metrics`)).text());
    const values = new Map<string, number>();
    for (const [to, kind] of kinds) {
      for (const name of series) values.set(`${kind} ${name}`, served.get(`cairn_batched_${name}_total{kind="${kind}",to="${to}"}`) ?? NaN);
    }
    return values;
  };
  const before = await read();
  const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(i % 2 === 0 ? 4 * KiB : 64 * KiB));
  await Promise.all(bodies.map((body, i) => put(`counted-${i}`, body)));
  for (const [i, body] of bodies.entries()) t.same(await get(`counted-${i}`), body, `counted-${i} reads back`);
  const after = await read();
  const delta = (kind: string, name: (typeof series)[number]): number => after.get(`${kind} ${name}`)! - before.get(`${kind} ${name}`)!;
  t.ok(delta('commits', 'items') >= 8, `8 commits counted (${delta('commits', 'items')})`);
  t.ok(delta('records', 'items') >= 8, `8 record reads counted (${delta('records', 'items')})`);
  t.ok(delta('small_shard_writes', 'items') >= 4 * 4, `the 64 KiB objects' shards counted (${delta('small_shard_writes', 'items')})`);
  t.ok(delta('small_shard_reads', 'items') >= 4, `their shard reads counted (${delta('small_shard_reads', 'items')})`);
  for (const [, kind] of kinds) {
    const requests = delta(kind, 'requests');
    t.ok(requests >= 1 && requests <= delta(kind, 'items'), `${kind}: ${requests} requests, never more than items`);
    t.ok(delta(kind, 'request_seconds') > 0, `${kind}: round trips timed (${delta(kind, 'request_seconds').toFixed(4)} s)`);
    t.ok(delta(kind, 'queued_seconds') >= 0, `${kind}: time queued served (${delta(kind, 'queued_seconds').toFixed(4)} s)`);
  }
});

t.test('ranged GETs of an inline object', async (t) => {
  const body = randomBytes(4 * KiB);
  await put('ranged', body);
  t.same(await get('ranged', 'bytes=100-199'), body.subarray(100, 200), 'middle');
  t.same(await get('ranged', 'bytes=-10'), body.subarray(body.length - 10), 'suffix');
  t.same(await get('ranged', 'bytes=4000-'), body.subarray(4000), 'open-ended');
  t.same(await get('ranged', 'bytes=0-0'), body.subarray(0, 1), 'first byte');
});

t.test('overwrites switch between inline and coded; delete removes the bytes', async (t) => {
  const small1 = randomBytes(3000);
  const large = randomBytes(100 * KiB);
  const small2 = randomBytes(5000);
  await put('flip', small1);
  t.same(await get('flip'), small1, 'inline');
  await put('flip', large);
  t.same(await get('flip'), large, 'coded replaces inline');
  t.equal((await namespace.getObject(BUCKET, 'flip')).inline, undefined);
  await put('flip', small2);
  t.same(await get('flip'), small2, 'inline replaces coded');
  const garbage = await namespace.garbage(new Date(Date.now() + 3_600_000), 1000);
  const version = (await namespace.getObject(BUCKET, 'flip')).versionId;
  t.ok(garbage.length >= 6, 'the coded version’s shards are queued for GC');
  t.notOk(garbage.some((g) => g.shardId.startsWith(version)), 'nothing of the inline version is garbage');
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'flip' }));
  await t.rejects(namespace.getObject(BUCKET, 'flip'), { code: 'NoSuchKey' });
  await put('flip', small1);
  t.same(await get('flip'), small1, 'a new inline object under the deleted key');
});

t.test('copies: inline to inline, and a copy that crosses the threshold by REPLACE keeps exact bytes', async (t) => {
  const body = randomBytes(2 * KiB);
  await put('copy-src', body, { ContentType: 'text/plain', Metadata: { colour: 'blue' } });
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy-dst', CopySource: `${BUCKET}/copy-src` }));
  t.same(await get('copy-dst'), body);
  const copied = await namespace.getObject(BUCKET, 'copy-dst');
  t.ok(copied.inline, 'the copy is inline too');
  t.same(copied.userMetadata, { colour: 'blue' });
  const large = randomBytes(40 * KiB);
  await put('copy-large', large);
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy-large-dst', CopySource: `${BUCKET}/copy-large` }));
  t.same(await get('copy-large-dst'), large);
  t.equal((await namespace.getObject(BUCKET, 'copy-large-dst')).inline, undefined, 'a large copy is coded');
});

t.test('an inline object as a ranged UploadPartCopy source, and GetObject partNumber=1 of it', async (t) => {
  const body = randomBytes(10 * KiB);
  await put('part-src', body);
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'from-parts' }));
  const part = await s3.send(
    new UploadPartCopyCommand({ Bucket: BUCKET, Key: 'from-parts', UploadId, PartNumber: 1, CopySource: `${BUCKET}/part-src`, CopySourceRange: 'bytes=1000-8999' }),
  );
  await s3.send(
    new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'from-parts', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.CopyPartResult!.ETag }] } }),
  );
  t.same(await get('from-parts'), body.subarray(1000, 9000), 'the copied range, as a (coded) multipart object');
  const first = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'part-src', PartNumber: 1 }));
  t.same(Buffer.from(await first.Body!.transformToByteArray()), body, 'part 1 of a single-PUT inline object is the whole object');
});

t.test('client checksums are proven against inline bytes', async (t) => {
  const body = randomBytes(1234);
  await put('checked', body, { ChecksumAlgorithm: 'CRC32C' });
  t.same(await get('checked'), body);
  const wrong = Buffer.alloc(4);
  wrong.writeUInt32BE((crc32c(body) ^ 1) >>> 0);
  await t.rejects(put('checked-bad', body, { ChecksumCRC32C: wrong.toString('base64') }), { name: 'BadDigest' });
  await t.rejects(namespace.getObject(BUCKET, 'checked-bad'), { code: 'NoSuchKey' }, 'nothing committed');
});

t.test('the namespace refuses inline records that do not match their bytes', async (t) => {
  const good = await namespace.getObject(BUCKET, 'small-4096');
  const data = good.inline!.bytes!;
  t.ok(Buffer.isBuffer(data) && data.length === 4096, 'the client reads inline bytes raw');
  const attempt = (patch: Partial<ObjectRecord>): Promise<unknown> =>
    namespace.commitObject({ record: { ...good, key: 'forged', versionId: `${good.versionId.slice(0, 9)}ffffffffffffffff`, ...patch } });
  const flipped = Buffer.from(data);
  flipped[7]! ^= 0x40;
  await t.rejects(attempt({ inline: { crc32c: good.inline!.crc32c, data: flipped.toString('base64') } }), { code: 'InvalidArgument' }, 'bytes differ from CRC');
  await t.rejects(attempt({ size: data.length + 1 }), { code: 'InvalidArgument' }, 'size differs');
  await t.rejects(attempt({ inline: { crc32c: good.inline!.crc32c } }), { code: 'InvalidArgument' }, 'no bytes');
  const big = randomBytes(64 * KiB + 1);
  await t.rejects(attempt({ size: big.length, inline: { crc32c: crc32c(big) >>> 0, data: big.toString('base64') } }), { code: 'InvalidArgument' }, 'over 64 KiB');
  const coded = await namespace.getObject(BUCKET, 'just-over');
  await t.rejects(attempt({ segments: coded.segments, size: coded.size }), { code: 'InvalidArgument' }, 'inline with segments');
  await t.rejects(namespace.getObject(BUCKET, 'forged'), { code: 'NoSuchKey' }, 'nothing stored');
});

t.test('inline objects need no storage node: readable with two nodes down', async (t) => {
  const body = randomBytes(8 * KiB);
  await put('no-nodes', body);
  await tc.cluster.kill('node-1');
  await tc.cluster.kill('node-2');
  t.same(await get('no-nodes'), body);
});

t.test('the reader refuses inline bytes that do not match the record', async (t) => {
  const bytes = randomBytes(100);
  const record = { bucket: 'b', key: 'k', size: 100, segments: [], inline: { crc32c: (crc32c(bytes) ^ 1) >>> 0, bytes } } as unknown as ObjectRecord;
  const read = async (): Promise<void> => {
    for await (const _ of readObjectRange(record, 0, 99, {} as ReaderDeps)) void _;
  };
  await t.rejects(read(), IntegrityError);
});

t.test('--inline-max: default k × 4 KiB, 0 disables, at most 64 KiB', async (t) => {
  const base = ['--namespace', 'http://127.0.0.1:1'];
  t.equal(loadGatewayConfig(base).inlineMaxBytes, 16 * KiB);
  t.equal(loadGatewayConfig([...base, '--k', '8', '--m', '3']).inlineMaxBytes, 32 * KiB);
  t.equal(loadGatewayConfig([...base, '--inline-max', '0']).inlineMaxBytes, 0);
  t.throws(() => loadGatewayConfig([...base, '--inline-max', String(64 * KiB + 1)]));
});

t.test('lock-free reads never pair a record with another version’s bytes (overwrites and deletes racing reads)', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-inline-race-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = await NamespaceStore.open(dir, { sync: false });
  t.teardown(() => store.close());
  await store.createBucket('race', 'root');
  const layout = { k: 4, m: 2, blockSize: 256 * KiB };
  let n = 0;
  const record = (size: number): ObjectRecord => {
    const bytes = randomBytes(size);
    return {
      bucket: 'race', key: 'k', versionId: `v${String(n++).padStart(8, '0')}`, size, etag: '"e"', lastModified: new Date().toISOString(),
      contentType: 'application/octet-stream', userMetadata: {}, headers: {}, checksums: {}, layout, segments: [],
      inline: { crc32c: crc32c(bytes) >>> 0, data: bytes.toString('base64') },
    };
  };
  const empty = (): ObjectRecord => ({ ...record(1), size: 0, segments: [], inline: undefined });
  let writing = true;
  const writer = (async () => {
    for (let i = 0; i < 300; i++) {
      if (i % 7 === 6) await store.deleteObject('race', 'k');
      else if (i % 5 === 4) await store.commitObject({ record: empty() });
      else await store.commitObject({ record: record(100 + (i % 50)) });
    }
    writing = false;
  })();
  let reads = 0;
  let torn = 0;
  const readers = Array.from({ length: 4 }, async () => {
    while (writing) {
      // Point reads answer without a trip through the event loop (the engine reads on the calling
      // thread), as requests arrive through it: a loop of bare reads would starve the writer.
      await new Promise(setImmediate);
      const got = await store.getObject('race', 'k').catch((err: { code?: string }) => {
        if (err.code !== 'NoSuchKey') throw err;
        return undefined;
      });
      reads++;
      if (!got?.inline) continue;
      const bytes = got.inline.bytes!;
      if (bytes.length !== got.size || crc32c(bytes) >>> 0 !== got.inline.crc32c) torn++;
    }
  });
  await Promise.all([writer, ...readers]);
  t.ok(reads > 100, `${reads} reads raced 300 writes`);
  t.equal(torn, 0, 'every inline read is whole and of one version');
});
