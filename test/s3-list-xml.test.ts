// The listing XML fast paths (gateway/s3/xml.ts): namespace timestamps passed through, etags and
// keys escaped only when needed, owners rendered once, keys needing no URL encoding kept as is.
// Each case is checked against the element as the generic leaf()/escapeXml() path writes it.
import t from 'tap';
import { escapeXml, listObjectsV1Xml, listObjectsV2Xml, parseXml, s3UrlEncode, type ObjectEntry } from '../gateway/s3/xml.js';

function contents(entries: ObjectEntry[], encodingType?: 'url'): string {
  return listObjectsV2Xml({ name: 'b', maxKeys: 1000, isTruncated: false, encodingType, contents: entries, commonPrefixes: [] }).toString('utf8');
}

const entry = (over: Partial<ObjectEntry> = {}): ObjectEntry => ({ key: 'k', lastModified: '2024-05-06T07:08:09.123Z', etag: '"abc"', size: 1, ...over });

t.test('timestamps: the namespace form as is, anything else through Date', async (t) => {
  t.match(contents([entry()]), '<LastModified>2024-05-06T07:08:09.123Z</LastModified>');
  t.match(contents([entry({ lastModified: '2024-05-06T07:08:09Z' })]), '<LastModified>2024-05-06T07:08:09.000Z</LastModified>', 'no milliseconds: normalised');
  t.match(contents([entry({ lastModified: 'Mon, 06 May 2024 07:08:09 GMT' })]), '<LastModified>2024-05-06T07:08:09.000Z</LastModified>');
  t.match(contents([entry({ lastModified: '2024-05-06T07:08:09.123+00:00' })]), '<LastModified>2024-05-06T07:08:09.123Z</LastModified>', 'an offset: normalised');
  t.match(contents([entry({ lastModified: Date.UTC(2009, 9, 12, 17, 50, 30) })]), '<LastModified>2009-10-12T17:50:30.000Z</LastModified>');
  t.match(contents([entry({ lastModified: new Date(Date.UTC(2009, 9, 12)) })]), '<LastModified>2009-10-12T00:00:00.000Z</LastModified>');
});

t.test('etags and keys are escaped exactly as escapeXml does', async (t) => {
  for (const etag of ['"abc"', '"a&b<c"', 'abc', '"', '""', '"x\u0001"', "'q'", '"abc-3"']) {
    t.match(contents([entry({ etag })]), `<ETag>${escapeXml(etag)}</ETag>`, `etag ${JSON.stringify(etag)}`);
  }
  for (const key of ['plain/key.txt', 'a&b', '<x>', 'ü😀', 'tab\there', '\uffff']) {
    t.match(contents([entry({ key })]), `<Key>${escapeXml(key)}</Key>`, `key ${JSON.stringify(key)}`);
  }
  const v1 = listObjectsV1Xml({ name: 'b', maxKeys: 1, isTruncated: false, contents: [], commonPrefixes: ['a&b/', 'c d/'] }).toString('utf8');
  t.match(v1, '<CommonPrefixes><Prefix>a&amp;b/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>c d/</Prefix></CommonPrefixes>');
});

t.test('url encoding: safe keys kept, the rest encoded as S3 does', async (t) => {
  t.equal(s3UrlEncode('dir-0001/obj_2.txt*'), 'dir-0001/obj_2.txt*');
  t.equal(s3UrlEncode(''), '');
  t.equal(s3UrlEncode('a b+c~'), 'a+b%2Bc%7E');
  t.equal(s3UrlEncode('한/x'), '%ED%95%9C/x');
  t.match(contents([entry({ key: 'a b/ü' })], 'url'), '<Key>a+b/%C3%BC</Key>');
});

t.test('owners, storage classes and checksums per entry', async (t) => {
  const a = { id: 'o1', displayName: 'me&you' };
  const b = { id: 'o2' };
  const xml = contents([entry({ owner: a }), entry({ owner: a, storageClass: 'GLACIER' }), entry({ owner: b, checksumAlgorithm: 'CRC32' }), entry()]);
  const parts = xml.split('<Contents>').slice(1);
  t.equal(parts.length, 4);
  t.match(parts[0], '<Size>1</Size><Owner><ID>o1</ID><DisplayName>me&amp;you</DisplayName></Owner><StorageClass>STANDARD</StorageClass>');
  t.match(parts[1], '<Owner><ID>o1</ID><DisplayName>me&amp;you</DisplayName></Owner><StorageClass>GLACIER</StorageClass>');
  t.match(parts[2], '<ETag>&quot;abc&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>1</Size><Owner><ID>o2</ID></Owner>');
  t.notMatch(parts[3], '<Owner>', 'no owner, no element');
});

t.test('a page far larger than its first buffer: every entry and prefix intact, in order', async (t) => {
  // ~1 KB keys of 4-byte and 3-byte characters: four times the per-entry estimate, so the buffer grows.
  const keys = Array.from({ length: 300 }, (_, i) => `${String(i).padStart(4, '0')}/${'😀'.repeat(200)}${'한'.repeat(60)}&<`);
  const prefixes = Array.from({ length: 50 }, (_, i) => `p${i}/${'ü'.repeat(300)}/`);
  const bytes = listObjectsV2Xml({ name: 'b', maxKeys: 1000, isTruncated: false, contents: keys.map((key) => entry({ key })), commonPrefixes: prefixes });
  const text = bytes.toString('utf8');
  t.equal(Buffer.byteLength(text), bytes.length, 'valid UTF-8 throughout (no cut characters)');
  const doc = parseXml(text);
  t.same(doc.children.filter((c) => c.name === 'Contents').map((c) => c.children.find((k) => k.name === 'Key')?.text), keys);
  t.same(doc.children.filter((c) => c.name === 'CommonPrefixes').map((c) => c.children[0]?.text), prefixes);
  t.ok(text.endsWith('</ListBucketResult>'));
});
