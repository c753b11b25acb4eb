// Pure parts of the gateway: request targets, bucket names, conditional reads, stored headers,
// and the chunk source that cuts a body into segments.
import t from 'tap';
import { parseTarget, validateBucketName, validateKey } from '../gateway/request-target.js';
import { evaluateReadConditions, etagMatches } from '../gateway/conditions.js';
import { objectHeadersFrom } from '../gateway/metadata.js';
import { ChunkSource } from '../gateway/data/chunk-source.js';
import { S3Error } from '../gateway/s3/errors.js';
import { resolveOperation } from '../gateway/operations/index.js';

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
  const versioning = resolveOperation('GET', { bucket: 'b' }, { versioning: '' });
  await t.rejects(versioning.handler({} as never, {} as never), { code: 'NotImplemented', status: 501 });
  t.equal(s3Code(() => resolveOperation('POST', {}, {})), 'MethodNotAllowed');
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
