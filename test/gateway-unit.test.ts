// Pure parts of the gateway: request targets, bucket names, conditional reads, stored headers,
// and the chunk source that cuts a body into segments.
import t from 'tap';
import { parseTarget, validateBucketName, validateKey } from '../gateway/request-target.js';
import { evaluateReadConditions, etagMatches } from '../gateway/conditions.js';
import { objectHeadersFrom } from '../gateway/metadata.js';
import { ChunkSource } from '../gateway/data/chunk-source.js';
import { S3Error } from '../gateway/s3/errors.js';
import { checkTags, parseTaggingDirective, parseTaggingHeader } from '../gateway/s3/tagging.js';
import { ownerOnlyAclXml, parseAccessControlPolicy, parseTagging, taggingXml } from '../gateway/s3/xml.js';
import { resolveOperation } from '../gateway/operations/index.js';
import { checkAssembledSizes } from '../gateway/multipart.js';
import { DamageReporter } from '../gateway/data/damage-reporter.js';
import { BucketRecords } from '../gateway/bucket-records.js';
import { NodeDirectory } from '../gateway/data/node-directory.js';
import type { NamespaceClient } from '../namespace/client.js';
import { ChunkedBytes } from '../gateway/data/chunked-bytes.js';
import { writeObject } from '../gateway/data/object-writer.js';
import type { WriterDeps } from '../gateway/data/writer.js';
import { checkClientCrc32c, objectCrc32c, checkSegmentChain, combineBlockCrcs, crcTap, decodeBlockCrcs, encodeBlockCrcs, extendWithZeros, IntegrityError } from '../gateway/data/integrity.js';
import { encodeStripes } from '../erasure/stream.js';
import { crc32c } from '@node-rs/crc32';
import { randomBytes } from 'node:crypto';
import { Counter, Registry } from '../common/metrics.js';
import { createLogger } from '../common/log.js';
import type { BucketRecord, DamageReport, ObjectRecord } from '../namespace/types.js';

function s3Code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof S3Error ? err.code : 'not an S3Error';
  }
  return undefined;
}

t.test('parseTarget splits bucket and key and decodes once', async (t) => {
  t.same(parseTarget('/'), {});
  t.same(parseTarget('/b'), { bucket: 'b' });
  t.same(parseTarget('/b/'), { bucket: 'b' });
  t.same(parseTarget('/b/a/b//c'), { bucket: 'b', key: 'a/b//c' });
  t.same(parseTarget('/b/a%20b%2Bc+d%25'), { bucket: 'b', key: 'a b+c+d%' }, '+ stays a plus in paths');
  t.same(parseTarget('/b/%E2%9C%93'), { bucket: 'b', key: '✓' });
  t.same(parseTarget('/b/..'), { bucket: 'b', key: '..' }, 'dot segments are keys, not path navigation');
  t.equal(s3Code(() => parseTarget('/b/%zz')), 'InvalidURI');
});

t.test('bucket names follow the S3 rules', async (t) => {
  for (const good of ['abc', 'my-bucket', 'my.bucket.01', 'a'.repeat(63)]) t.equal(s3Code(() => validateBucketName(good)), undefined, good);
  for (const bad of ['ab', 'a'.repeat(64), 'Upper', 'under_score', '-start', 'end-', 'a..b', '192.168.1.1', 'xn--abc', 'abc-s3alias', 'a.-b']) {
    t.equal(s3Code(() => validateBucketName(bad)), 'InvalidBucketName', bad);
  }
  t.equal(s3Code(() => validateKey('k'.repeat(1024))), undefined);
  t.equal(s3Code(() => validateKey('é'.repeat(513))), 'KeyTooLongError', 'the limit is 1024 UTF-8 bytes');
  t.equal(s3Code(() => validateKey('a\u0000b')), 'InvalidArgument', 'U+0000, which the namespace keys cannot hold');
  for (const opaque of ['../../etc/passwd', 'a/../../b', '//', '.', '\u0001\u001f\u007f', '/'.repeat(1024)]) {
    t.equal(s3Code(() => validateKey(opaque)), undefined, `${JSON.stringify(opaque.slice(0, 20))} is an ordinary key`);
  }
});

/** The S3 error a call throws, with its message and extra elements. */
function s3Failure(fn: () => unknown): { code: string; message: string; extra: Record<string, string | number> } | undefined {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof S3Error)) throw err;
    return { code: err.code, message: err.message, extra: { ...err.extra } };
  }
  return undefined;
}

t.test('object tags: the x-amz-tagging header, the Tagging document and S3\'s rules', async (t) => {
  const pairs = (header: string): string[][] => parseTaggingHeader(header).map((tag) => [tag.key, tag.value]);
  t.same(pairs('a=1&b=2'), [['a', '1'], ['b', '2']]);
  t.same(pairs('a&b='), [['a', ''], ['b', '']], 'a tag without "=" has an empty value');
  t.same(pairs('a%20b=c%2Bd&e+f=g=h'), [['a b', 'c+d'], ['e f', 'g=h']], '"+" is a space; the value runs to the end');
  t.same(pairs('%C3%BC=%E6%96%87&&k'), [['ü', '文'], ['k', '']], 'UTF-8 escapes; empty pairs are skipped');
  t.same(parseTaggingHeader(undefined), []);
  t.same(parseTaggingHeader(''), []);
  const headerError = (value: string) => ({
    code: 'InvalidArgument',
    message: "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
    extra: { ArgumentName: 'x-amz-tagging', ArgumentValue: value },
  });
  for (const bad of ['a=1&a=2', '=1', 'a=%FF', 'a=%zz', '%E6%96=1']) t.same(s3Failure(() => parseTaggingHeader(bad)), headerError(bad), bad);
  t.same(s3Failure(() => parseTaggingHeader('a,b=1')), { code: 'InvalidTag', message: 'The TagKey you have provided is invalid', extra: { TagKey: 'a,b' } });

  const tag = (key: string, value = 'v') => [{ key, value }];
  const eleven = Array.from({ length: 11 }, (_, i) => ({ key: `key-${i}`, value: '' }));
  t.same(s3Failure(() => checkTags(eleven)), { code: 'BadRequest', message: 'Object tags cannot be greater than 10', extra: {} });
  t.equal(s3Failure(() => checkTags(eleven.slice(0, 10))), undefined, 'ten tags are allowed');
  const invalidKey = (TagKey: string) => ({ code: 'InvalidTag', message: 'The TagKey you have provided is invalid', extra: { TagKey } });
  const invalidValue = (TagValue: string) => ({ code: 'InvalidTag', message: 'The TagValue you have provided is invalid', extra: { TagKey: 'k', TagValue } });
  t.same(s3Failure(() => checkTags(tag('k'.repeat(129)))), invalidKey('k'.repeat(129)));
  t.same(s3Failure(() => checkTags(tag(''))), invalidKey(''));
  t.same(s3Failure(() => checkTags(tag('k', 'v'.repeat(257)))), invalidValue('v'.repeat(257)));
  for (const bad of ['a,b', 'a;b', 'a?b', 'a!b', 'a*b', 'a#b', 'a%b', 'a(b)', 'a\tb', '😀']) {
    t.same(s3Failure(() => checkTags(tag(bad))), invalidKey(bad), `key ${JSON.stringify(bad)}`);
    t.same(s3Failure(() => checkTags(tag('k', bad))), invalidValue(bad), `value ${JSON.stringify(bad)}`);
  }
  for (const key of ['aws:cost', 'AWS:cost']) {
    t.same(s3Failure(() => checkTags(tag(key))), { code: 'InvalidTag', message: 'System tags cannot be added/updated by requester', extra: { TagKey: key } });
  }
  t.same(s3Failure(() => checkTags([...tag('a', '1'), ...tag('a', '2')])), { code: 'InvalidTag', message: 'Cannot provide multiple Tags with the same key', extra: { TagKey: 'a' } });
  const fine = [...tag('k'.repeat(128), 'v'.repeat(256)), ...tag('Straße 1 ü文 +-=._:/@', ''), ...tag('文'.repeat(128))];
  t.same(checkTags(fine), fine, 'letters and digits of any script, spaces and + - = . _ : / @; lengths in UTF-16 units');

  const doc = '<Tagging><TagSet><Tag><Key>a b</Key><Value> x&amp;y </Value></Tag><Tag><Key>c</Key><Value/></Tag></TagSet></Tagging>';
  t.same(parseTagging(doc), [{ key: 'a b', value: ' x&y ' }, { key: 'c', value: '' }], 'texts as sent, entities decoded');
  t.same(parseTagging('<Tagging><TagSet/></Tagging>'), []);
  for (const bad of ['<Tagging><TagSet>', '<Tagging></Tagging>', '<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>', '<Tags><TagSet></TagSet></Tags>']) {
    t.equal(s3Code(() => parseTagging(bad)), 'MalformedXML', bad);
  }
  const xml = taggingXml([{ key: 'a<b', value: 'c&d' }]);
  t.match(xml, '<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a&lt;b</Key><Value>c&amp;d</Value></Tag></TagSet></Tagging>');
  t.same(parseTagging(xml), [{ key: 'a<b', value: 'c&d' }], 'what GetObjectTagging writes, PutObjectTagging reads back');

  t.equal(parseTaggingDirective(undefined), 'COPY');
  t.equal(parseTaggingDirective(' replace '), 'REPLACE');
  t.same(s3Failure(() => parseTaggingDirective('MOVE')), {
    code: 'InvalidArgument',
    message: 'Unknown tagging directive.',
    extra: { ArgumentName: 'x-amz-tagging-directive', ArgumentValue: 'MOVE' },
  });
  t.equal(resolveOperation('GET', { bucket: 'b', key: 'k' }, { tagging: '' }).name, 'GetObjectTagging');
  t.equal(resolveOperation('PUT', { bucket: 'b', key: 'k' }, { tagging: '' }).name, 'PutObjectTagging');
  t.equal(resolveOperation('DELETE', { bucket: 'b', key: 'k' }, { tagging: '' }).name, 'DeleteObjectTagging');
  t.equal(s3Code(() => resolveOperation('POST', { bucket: 'b', key: 'k' }, { tagging: '' })), 'MethodNotAllowed');
});

t.test('ACL documents: the owner-only policy Cairn shows, read back as one FULL_CONTROL grant; other shapes are MalformedACLError', async (t) => {
  const xml = ownerOnlyAclXml({ id: 'alice', displayName: 'A & B' });
  t.match(xml, '<Owner><ID>alice</ID><DisplayName>A &amp; B</DisplayName></Owner>');
  t.match(xml, '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>alice</ID>');
  t.same(parseAccessControlPolicy(xml), [{ granteeId: 'alice', granteeUri: undefined, granteeEmail: undefined, permission: 'FULL_CONTROL' }]);
  const group = '<AccessControlPolicy><AccessControlList><Grant><Grantee><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>';
  t.same(parseAccessControlPolicy(group), [{ granteeId: undefined, granteeUri: 'http://acs.amazonaws.com/groups/global/AllUsers', granteeEmail: undefined, permission: 'READ' }]);
  for (const bad of ['<AccessControlPolicy/>', '<Other><AccessControlList/></Other>', '<AccessControlPolicy><AccessControlList><Grant><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>', 'not xml']) {
    t.equal(s3Code(() => parseAccessControlPolicy(bad)), 'MalformedACLError', bad);
  }
});

t.test('conditional reads follow S3 precedence', async (t) => {
  const etag = '"abc"';
  const modified = new Date('2026-01-01T12:00:00.500Z');
  const before = 'Wed, 31 Dec 2025 12:00:00 GMT';
  const after = 'Fri, 02 Jan 2026 12:00:00 GMT';
  const same = modified.toUTCString();
  const cases: [Record<string, string>, string][] = [
    [{}, 'proceed'],
    [{ 'if-match': '"abc"' }, 'proceed'],
    [{ 'if-match': 'abc' }, 'proceed'],
    [{ 'if-match': '"x", "abc"' }, 'proceed'],
    [{ 'if-match': '*' }, 'proceed'],
    [{ 'if-match': '"x"' }, 'precondition-failed'],
    [{ 'if-none-match': '"abc"' }, 'not-modified'],
    [{ 'if-none-match': '"x"' }, 'proceed'],
    [{ 'if-modified-since': after }, 'not-modified'],
    [{ 'if-modified-since': same }, 'not-modified'],
    [{ 'if-modified-since': before }, 'proceed'],
    [{ 'if-unmodified-since': before }, 'precondition-failed'],
    [{ 'if-unmodified-since': after }, 'proceed'],
    [{ 'if-match': '"abc"', 'if-unmodified-since': before }, 'proceed'],
    [{ 'if-none-match': '"x"', 'if-modified-since': after }, 'proceed'],
    [{ 'if-modified-since': 'not a date' }, 'proceed'],
  ];
  for (const [headers, expected] of cases) t.equal(evaluateReadConditions(headers, etag, modified), expected, JSON.stringify(headers));
  t.ok(etagMatches('W/"abc"', etag), 'weak comparison');
});

t.test('object headers: metadata, stored headers, limits', async (t) => {
  const h = objectHeadersFrom({
    'content-type': 'text/plain',
    'content-encoding': 'aws-chunked,gzip',
    'cache-control': 'max-age=60',
    'x-amz-meta-color': 'blue',
    'x-amz-meta-empty': '',
    'x-amz-date': 'ignored',
  });
  t.equal(h.contentType, 'text/plain');
  t.same(h.userMetadata, { color: 'blue', empty: '' });
  t.same(h.headers, { 'content-encoding': 'gzip', 'cache-control': 'max-age=60' }, 'aws-chunked is framing, not an encoding to store');
  t.equal(objectHeadersFrom({}).contentType, 'binary/octet-stream', 'S3 default content type');
  const odd = objectHeadersFrom({ 'x-amz-meta-__proto__': 'kept', 'x-amz-meta-constructor': 'too' }).userMetadata;
  t.same(Object.entries(odd), [['__proto__', 'kept'], ['constructor', 'too']], 'metadata named like Object\'s own properties is kept');
  t.same(objectHeadersFrom({ 'content-encoding': 'aws-chunked' }).headers, {});
  t.equal(s3Code(() => objectHeadersFrom({ 'x-amz-meta-big': 'x'.repeat(2046) })), 'MetadataTooLarge');
  t.equal(s3Code(() => objectHeadersFrom({ 'x-amz-meta-big': 'x'.repeat(2045) })), undefined, '2 KB counts names and values');
});

t.test('operations resolve by method, target and sub-resource', async (t) => {
  t.equal(resolveOperation('GET', {}, {}).name, 'ListBuckets');
  t.equal(resolveOperation('GET', { bucket: 'b' }, { 'list-type': '2' }).name, 'ListObjectsV2');
  t.equal(resolveOperation('GET', { bucket: 'b' }, {}).name, 'ListObjects');
  t.equal(resolveOperation('GET', { bucket: 'b' }, { location: '' }).name, 'GetBucketLocation');
  t.equal(resolveOperation('HEAD', { bucket: 'b', key: 'k' }, {}).name, 'HeadObject');
  t.equal(resolveOperation('PUT', { bucket: 'b', key: 'k' }, { 'x-id': 'PutObject' }).name, 'PutObject');
  const lifecycle = resolveOperation('GET', { bucket: 'b' }, { lifecycle: '' });
  await t.rejects(lifecycle.handler({} as never, {} as never), { code: 'NotImplemented', status: 501 });
  t.equal(resolveOperation('GET', { bucket: 'b' }, { versioning: '' }).name, 'GetBucketVersioning');
  await t.rejects(resolveOperation('PUT', { bucket: 'b' }, { versioning: '' }).handler({} as never, {} as never), { code: 'NotImplemented', status: 501 });
  t.equal(resolveOperation('GET', { bucket: 'b' }, { versions: '' }).name, 'ListObjectVersions');
  t.equal(s3Code(() => resolveOperation('PUT', { bucket: 'b' }, { versions: '' })), 'MethodNotAllowed');
  const otherVersion = resolveOperation('GET', { bucket: 'b', key: 'k' }, { versionId: 'abc' });
  t.equal(otherVersion.name, 'GetObject', 'a version id keeps the operation (and its authorization)');
  await t.rejects(otherVersion.handler({} as never, {} as never), { code: 'InvalidArgument', message: 'Invalid version id specified' });
  for (const [method, name] of [['GET', 'GetBucketTagging'], ['PUT', 'PutBucketTagging'], ['DELETE', 'DeleteBucketTagging']]) {
    t.equal(resolveOperation(method!, { bucket: 'b' }, { tagging: '' }).name, name);
  }
  t.equal(s3Code(() => resolveOperation('POST', {}, {})), 'MethodNotAllowed');
});

t.test('a completion is at least 5 MiB per part but the last, and at most 5 TiB in all', async (t) => {
  const part = (partNumber: number, size: number) => ({ partNumber, size, etag: '"e"' });
  const MiB = 1024 * 1024;
  t.doesNotThrow(() => checkAssembledSizes([part(1, 5 * MiB), part(2, 1)]), 'a small last part is fine');
  t.equal(s3Code(() => checkAssembledSizes([part(1, 5 * MiB - 1), part(2, 1)])), 'EntityTooSmall');
  t.doesNotThrow(() => checkAssembledSizes(Array.from({ length: 1024 }, (_, i) => part(i + 1, 5 * 1024 ** 3))), 'exactly 5 TiB');
  t.equal(s3Code(() => checkAssembledSizes([...Array.from({ length: 1024 }, (_, i) => part(i + 1, 5 * 1024 ** 3)), part(1025, 1)])), 'EntityTooLarge', 'one byte more');
});

t.test('ChunkSource hands out bounded pieces and finds the end', async (t) => {
  async function* chunks(): AsyncGenerator<Buffer> {
    yield Buffer.from('abcde');
    yield Buffer.alloc(0);
    yield Buffer.from('fghij');
  }
  const source = new ChunkSource(chunks());
  const parts: string[] = [];
  while (!(await source.atEnd())) {
    let part = '';
    for await (const piece of source.take(3)) part += piece.toString();
    parts.push(part);
  }
  t.same(parts, ['abc', 'def', 'ghi', 'j']);
  const empty = new ChunkSource((async function* () {})());
  t.ok(await empty.atEnd(), 'an empty body yields no segment at all');
  const exact = new ChunkSource((async function* () { yield Buffer.from('abcdef'); })());
  let count = 0;
  while (!(await exact.atEnd())) {
    for await (const _ of exact.take(3)) void _;
    count++;
  }
  t.equal(count, 2, 'a body ending on a boundary makes no empty trailing segment');
});

t.test('DamageReporter sends shard-level damage in batches, once per shard, and retries', async (t) => {
  const sent: DamageReport[][] = [];
  let failNext = true;
  const namespace = {
    async reportDamage(reports: DamageReport[]): Promise<void> {
      if (failNext) {
        failNext = false;
        throw new Error('namespace unavailable');
      }
      sent.push(reports);
    },
  };
  const dropped = new Counter('dropped', 'test');
  const reporter = new DamageReporter(namespace, createLogger('test', 'error'), dropped);
  const record = { bucket: 'b', key: 'k', versionId: 'v1' } as ObjectRecord;
  reporter.report({ record, segment: 0, index: 1, nodeId: 'n1', code: 'CorruptBlock', reason: 'crc' });
  reporter.report({ record, segment: 0, index: 1, nodeId: 'n1', code: 'CorruptBlock', reason: 'crc again' });
  reporter.report({ record, segment: 2, index: 0, nodeId: 'n2', code: 'NoSuchShard', reason: 'gone' });
  reporter.report({ record, segment: 3, index: 0, nodeId: 'n3', code: 'Unavailable', reason: 'node down: not shard damage' });
  reporter.report({ record, segment: 3, index: 1, nodeId: null, code: 'NotPlaced', reason: 'already queued by the commit' });
  await reporter.flush();
  t.same(sent, [], 'the first attempt failed');
  await reporter.flush();
  t.equal(sent.length, 1);
  t.same(
    sent[0]!.map((r) => [r.segment, r.shardIndex, r.reason]),
    [[0, 1, 'corrupt'], [2, 0, 'unreadable']],
    'one report per shard, node outages and unplaced shards left to other mechanisms',
  );
  for (let i = 0; i < 1005; i++) reporter.report({ record, segment: i, index: 0, nodeId: 'n', code: 'CorruptBlock', reason: '' });
  t.equal(dropped.get(), 5, 'a bounded queue: overflow is counted, not kept');
  await reporter.flush();
  t.equal(sent[1]!.length, 1000);
});

t.test('the integrity chain proves a segment from its block CRCs and catches in-memory corruption', async (t) => {
  const layout = { k: 4, m: 2, blockSize: 4096 };
  for (const size of [1, 4095, 16384, 16385, 50_000]) {
    const data = randomBytes(size);
    const tap = crcTap((async function* () { yield data.subarray(0, 1000); yield data.subarray(1000); })());
    const crcs: number[] = [];
    const lengths: number[] = [];
    const blocks: Buffer[] = [];
    for await (const stripe of encodeStripes(tap.bytes, layout)) {
      for (let i = 0; i < layout.k; i++) {
        crcs.push(stripe.crcs[i]!);
        lengths.push(stripe.blockLength);
        blocks.push(Buffer.from(stripe.blocks[i]!));
      }
    }
    t.equal(tap.crc(), crc32c(data) >>> 0, `${size}: the tap sees the client's bytes`);
    t.doesNotThrow(() => checkSegmentChain(tap.crc(), tap.length(), crcs, lengths), `${size}: chain holds`);
    t.same(decodeBlockCrcs(encodeBlockCrcs(crcs)), crcs);
    // A block corrupted before it was checksummed carries a CRC that matches its own bytes...
    const victim = Math.floor(blocks.length / 2);
    blocks[victim]![0]! ^= 1;
    const forged = crcs.slice();
    forged[victim] = crc32c(blocks[victim]!) >>> 0;
    // ...but no longer the bytes the client sent.
    t.throws(() => checkSegmentChain(tap.crc(), tap.length(), forged, lengths), IntegrityError, `${size}: corruption breaks the chain`);
  }
  t.equal(combineBlockCrcs([], []), 0);
  const whole = randomBytes(1000);
  const segs = [whole.subarray(0, 300), whole.subarray(300)].map((b) => ({ size: b.length, crc32c: crc32c(b) >>> 0 }));
  const b64 = (n: number) => { const x = Buffer.alloc(4); x.writeUInt32BE(n >>> 0); return x.toString('base64'); };
  t.equal(objectCrc32c(segs), crc32c(whole) >>> 0, 'the object CRC32C follows from the segment CRCs');
  t.doesNotThrow(() => checkClientCrc32c(b64(crc32c(whole)), segs));
  t.throws(() => checkClientCrc32c(b64(crc32c(whole) ^ 1), segs), IntegrityError);
  t.equal(extendWithZeros(crc32c(Buffer.from('abc')), 5), crc32c(Buffer.from('abc\0\0\0\0\0')) >>> 0);
});

t.test('BucketRecords: asks once per TTL, never caches a miss, forgets on delete, keeps what this gateway set', async (t) => {
  let clock = 0;
  const asked: string[] = [];
  const stored = new Map<string, BucketRecord>([['a', { name: 'a', createdAt: '', owner: 'alice' }]]);
  const ns = {
    getBucket: async (name: string) => {
      asked.push(name);
      const record = stored.get(name);
      if (record === undefined) throw Object.assign(new Error('no'), { code: 'NoSuchBucket' });
      return { ...record };
    },
  };
  const buckets = new BucketRecords(ns, { ttlMs: 2_000, maxEntries: 10, now: () => clock });
  t.equal((await buckets.get('a')).owner, 'alice');
  t.equal((await buckets.get('a')).owner, 'alice');
  t.same(asked, ['a'], 'second lookup answered from the cache');
  await t.rejects(buckets.get('b'), { code: 'NoSuchBucket' });
  stored.set('b', { name: 'b', createdAt: '', owner: 'bob' });
  t.equal((await buckets.get('b')).owner, 'bob', 'a bucket created elsewhere is seen at once: misses are not cached');
  t.same(asked, ['a', 'b', 'b']);
  stored.set('a', { name: 'a', createdAt: '', owner: 'alice', policy: '{}' });
  t.equal((await buckets.get('a')).policy, undefined, 'a change made elsewhere is not seen within the TTL');
  clock = 2_000;
  t.equal((await buckets.get('a')).policy, '{}', 'but after it');
  buckets.remember({ name: 'a', createdAt: '', owner: 'alice', policy: '{"new":1}' });
  t.equal((await buckets.get('a')).policy, '{"new":1}', 'a change made here is used at once');
  t.equal(asked.length, 4);
  buckets.forget('a');
  stored.delete('a');
  await t.rejects(buckets.get('a'), { code: 'NoSuchBucket' }, 'a forgotten bucket is asked about at once');
});

t.test('NodeDirectory.place: up nodes only, never a draining or lately refused one, from a list at most ttlMs old', async (t) => {
  const node = (id: string, more: Record<string, unknown> = {}) => ({ id, url: `http://${id}`, freeBytes: 1 << 30, state: 'up', ...more });
  let listed = [node('a'), node('b'), node('c', { state: 'down' }), node('d', { mode: 'draining' }), node('e'), node('f'), node('full', { freeBytes: 0 })];
  let calls = 0;
  const namespace = { listNodes: async () => (calls++, listed) } as unknown as NamespaceClient;
  const directory = new NodeDirectory(namespace, 200);
  const ids = async (count: number) => (await directory.place(count)).map((n) => n.id).sort();
  t.same(await ids(6), ['a', 'b', 'e', 'f', 'full'], 'up and not draining; a full node only when nothing else is left');
  for (let i = 0; i < 20; i++) t.notOk((await ids(4)).includes('full'), 'a node with no free space is not chosen while others are');
  t.equal(calls, 1, 'one listing serves every placement within the TTL');
  directory.noteRefused('e', 'http://e');
  t.same(await ids(6), ['a', 'b', 'f', 'full'], 'a node that refused a connection lately is left out');
  listed = [node('a'), node('b', { state: 'down' }), node('g')];
  t.same(await ids(6), ['a', 'b', 'f', 'full'], 'the old list until the TTL has passed');
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.same(await ids(6), ['a', 'g'], 'then the namespace is asked again');
  t.equal(calls, 2);
});

t.test('writeObject keeps small bodies inline whatever their chunking, and hands larger ones to the writer', async (t) => {
  const unusedDeps = {} as WriterDeps; // the inline path must not touch the writer
  const body = randomBytes(5000);
  async function* chunked(size: number): AsyncGenerator<Buffer> {
    for (let at = 0; at < body.length; at += size) yield body.subarray(at, at + size);
  }
  for (const size of [1, 777, 5000]) {
    const written = await writeObject(chunked(size), {} as never, unusedDeps, 5000);
    t.equal(written.size, 5000);
    t.same(written.inline!.bytes, body, `chunks of ${size}`);
    t.equal(written.inline!.crc32c, crc32c(body) >>> 0);
  }
  const empty = await writeObject((async function* () {})(), {} as never, unusedDeps, 5000);
  t.same(empty, { size: 0, segments: [] }, 'an empty body is neither inline nor coded');
  const placed: number[] = [];
  const coderDeps = {
    namespace: { listNodes: async () => [] },
    directory: { place: async (count: number) => (placed.push(count), []) },
    log: { warn: () => undefined },
  } as unknown as WriterDeps;
  const opts = { layout: { k: 4, m: 2, blockSize: 1024 }, segmentSize: 8192, versionId: 'v', writeQuorum: 4, stallTimeoutMs: 1000 };
  await t.rejects(writeObject(chunked(1000), opts, coderDeps, 4999), { code: 'ServiceUnavailable' }, 'one byte over goes to the writer');
  t.same(placed, [6], 'the writer asked for k+m placements');
});

t.test('ChunkedBytes: views and copies across chunk boundaries equal the gathered bytes', async (t) => {
  const whole = randomBytes(5000);
  const cuts = [0, 1, 2, 700, 701, 2048, 4999, 5000];
  const chunks = cuts.slice(1).map((end, i) => whole.subarray(cuts[i], end));
  const bytes = new ChunkedBytes(chunks);
  t.equal(bytes.length, whole.length);
  let checked = 0;
  for (const from of [0, 1, 2, 3, 699, 700, 701, 702, 2047, 2048, 4998, 4999]) {
    for (const to of [from, from + 1, from + 2, 701, 2049, 5000]) {
      if (to < from || to > 5000) continue;
      const expected = whole.subarray(from, to);
      const views = bytes.views(from, to);
      t.ok(Buffer.concat(views).equals(expected), `views ${from}-${to}`);
      t.ok(views.every((v) => v.length > 0), 'no empty views');
      const target = Buffer.alloc(to - from + 3);
      t.equal(bytes.copy(target, 3, from, to), to - from);
      t.ok(target.subarray(3).equals(expected), `copy ${from}-${to}`);
      checked++;
    }
  }
  t.ok(checked > 40);
  t.same(new ChunkedBytes([]).views(0, 0), []);
});

t.test('every registry reports CPU time and recent event loop delay', async (t) => {
  const registry = new Registry('unit');
  const value = (name: string): number => {
    const line = registry.render().split('\n').find((l) => l.startsWith(name));
    t.ok(line, `${name} is rendered`);
    return Number(line?.split(' ').pop());
  };
  // The monitor's first tick only sets its baseline: let it tick before blocking.
  await new Promise((resolve) => setTimeout(resolve, 30));
  const cpuBefore = value('cairn_process_cpu_seconds{service="unit"}');
  // Block the loop for 60 ms: the monitor (20 ms ticks) must see a delay of at least 40 ms.
  const until = Date.now() + 60;
  while (Date.now() < until);
  await new Promise((resolve) => setTimeout(resolve, 30));
  t.ok(value('cairn_process_cpu_seconds{service="unit"}') >= cpuBefore + 0.04, 'CPU time grew by the busy wait');
  const max = value('cairn_event_loop_delay_seconds{quantile="1",service="unit"}');
  t.ok(max >= 0.04 && max < 5, `the blocked loop shows as a delay of ${max} s`);
  t.ok(value('cairn_event_loop_delay_seconds{quantile="0.5",service="unit"}') <= max, 'the median is at most the maximum');
  t.equal(registry.render().match(/# TYPE cairn_event_loop_delay_seconds gauge/g)?.length, 1, 'one TYPE line for the three quantiles');
  const held = Buffer.alloc(8 * 1024 * 1024, 1);
  const external = value('cairn_process_memory_bytes{kind="external",service="unit"}');
  t.ok(external >= held.length, `memory outside the heap counts an 8 MiB Buffer (${external} bytes)`);
  t.ok(value('cairn_process_memory_bytes{kind="array_buffers",service="unit"}') >= held.length, 'and so do array buffers');
  t.ok(value('cairn_process_memory_bytes{kind="heap_used",service="unit"}') > 0, 'the heap in use is reported');
  t.ok(value('cairn_process_resident_bytes{service="unit"}') > external, 'resident bytes include it all');
});
