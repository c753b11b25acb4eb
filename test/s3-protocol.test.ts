// The pure S3 protocol layer: errors, XML, ranges, CRC64NVME, SigV4 verification and the
// payload decoder (aws-chunked, signatures, digests). Signatures are produced by the
// SDK's own signer (@smithy/signature-v4) and by the AWS documentation's published
// examples, so the verifier is not only checked against itself.
import { signedChunkedBody, splitEvery, unsignedChunkedBody } from './helpers/aws-chunked.js';
import t from 'tap';
import { createHash, createHmac, randomBytes, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { S3Error, S3_ERROR_CODES, defaultMessage, s3Error, statusOf, toS3Error } from '../gateway/s3/errors.js';
import {
  completeMultipartUploadXml,
  copyObjectResultXml,
  copyPartResultXml,
  deleteResultXml,
  errorXml,
  escapeXml,
  initiateMultipartUploadXml,
  isoTimestamp,
  listAllMyBucketsXml,
  listMultipartUploadsXml,
  listObjectsV1Xml,
  listObjectsV2Xml,
  listPartsXml,
  locationConstraintXml,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteRequest,
  parseXml,
  s3UrlEncode,
} from '../gateway/s3/xml.js';
import { contentRange, parseRange, unsatisfiedContentRange } from '../gateway/s3/range.js';
import { Crc64Nvme, crc64nvme } from '../gateway/s3/crc64nvme.js';
import { CHECKSUM_ALGORITHMS, checksumOf, isValidChecksumValue, type ChecksumAlgorithm } from '../gateway/s3/checksums.js';
import { verifyRequest, type AuthContext, type SignedRequestInput } from '../gateway/auth/sigv4.js';
import { canonicalQuery, canonicalUri, decodePath, parseRawQuery, splitRawUrl } from '../gateway/auth/canonical.js';
import { cachedSigningKey, signaturesEqual } from '../gateway/auth/signing.js';
import { digestThreadStats } from '../gateway/s3/digest-thread.js';
import { seededRandom } from '../common/placement.js';
import {
  decodePayload,
  readPayload,
  storedContentEncoding,
  type DecodedPayload,
  type PayloadOptions,
} from '../gateway/auth/payload.js';

type Headers = Record<string, string>;

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Deterministic pseudo-random numbers, so a failing split can be reproduced. */
const rng = seededRandom;

function splitRandom(buf: Buffer, seed: number, max = 5000): Buffer[] {
  const next = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(next() * max);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

async function* stream(pieces: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const p of pieces) yield p;
}

async function drain(payload: DecodedPayload): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const piece of payload) parts.push(piece);
  return Buffer.concat(parts);
}

// =============================================================================================
// Errors

t.test('errors: one table, S3Error and the factory', async (t) => {
  for (const code of S3_ERROR_CODES) {
    t.ok(statusOf(code) >= 400 && statusOf(code) < 600, `${code} has an error status`);
    t.ok(defaultMessage(code).length > 0, `${code} has a message`);
  }
  const expected: [string, number][] = [
    ['AccessDenied', 403],
    ['BadDigest', 400],
    ['BucketAlreadyExists', 409],
    ['BucketAlreadyOwnedByYou', 409],
    ['BucketNotEmpty', 409],
    ['InvalidRange', 416],
    ['MethodNotAllowed', 405],
    ['MissingContentLength', 411],
    ['NoSuchKey', 404],
    ['NotImplemented', 501],
    ['PreconditionFailed', 412],
    ['RequestTimeTooSkewed', 403],
    ['SignatureDoesNotMatch', 403],
    ['SlowDown', 503],
    ['InvalidChunkSizeError', 403],
    ['XAmzContentSHA256Mismatch', 400],
    ['InternalError', 500],
  ];
  for (const [code, status] of expected) t.equal(statusOf(code as never), status, `${code} is ${status}`);
  const e = s3Error('NoSuchKey', undefined, { Key: 'a/b' });
  t.ok(e instanceof Error && e instanceof S3Error);
  t.equal(e.code, 'NoSuchKey');
  t.equal(e.status, 404);
  t.equal(e.message, 'The specified key does not exist.');
  t.same(e.extra, { Key: 'a/b' });
  t.equal(s3Error('InvalidArgument', 'Custom').message, 'Custom');
  const internal = toS3Error(new TypeError('boom'));
  t.equal(internal.code, 'InternalError');
  t.equal(internal.status, 500);
  t.ok(internal.cause instanceof TypeError);
  t.equal(toS3Error(e), e);
});

// =============================================================================================
// XML

t.test('xml: escaping of markup and control characters', async (t) => {
  t.equal(escapeXml(`a&b<c>d"e'f`), 'a&amp;b&lt;c&gt;d&quot;e&apos;f');
  t.equal(escapeXml('tab\tnl\ncr\r'), 'tab&#x9;nl&#xA;cr&#xD;');
  t.equal(escapeXml('\u0000\u0001\u001f\u007f'), '&#x0;&#x1;&#x1F;&#x7F;');
  t.equal(escapeXml('ü中😀'), 'ü中😀', 'non-ASCII passes as UTF-8');
  // What the escaper writes, the parser reads back, for every code point class.
  const nasty = `k &<>"' \t\n\r ü中😀 \u0001\u001b`;
  const doc = parseXml(`<Delete><Object><Key>${escapeXml(nasty)}</Key></Object></Delete>`);
  t.equal(doc.children[0]!.children[0]!.text, nasty);
});

t.test('xml: encoding-type=url as S3 applies it', async (t) => {
  t.equal(s3UrlEncode('a b.txt'), 'a+b.txt');
  t.equal(s3UrlEncode('a+b.txt'), 'a%2Bb.txt');
  t.equal(s3UrlEncode('100%.csv'), '100%25.csv');
  t.equal(s3UrlEncode('한글/x.txt'), '%ED%95%9C%EA%B8%80/x.txt');
  t.equal(s3UrlEncode('run books/x.txt'), 'run+books/x.txt');
  t.equal(s3UrlEncode('\u0001&<'), '%01%26%3C');
});

t.test('xml: error document', async (t) => {
  const err = s3Error('InvalidRange', undefined, { RangeRequested: 'bytes=5-9', ActualObjectSize: 3 });
  err.resource = '/b/k&1';
  t.equal(
    errorXml(err, 'REQ1', 'HOST'),
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRange</Code>' +
      '<Message>The requested range is not satisfiable</Message><Resource>/b/k&amp;1</Resource>' +
      '<RangeRequested>bytes=5-9</RangeRequested><ActualObjectSize>3</ActualObjectSize>' +
      '<RequestId>REQ1</RequestId><HostId>HOST</HostId></Error>',
  );
  const plain = errorXml(s3Error('NoSuchBucket'), 'R');
  t.notMatch(plain, /Resource|HostId|xmlns/);
  t.ok(parseXml(plain).name === 'Error', 'the parser reads what the builder writes');
});

t.test('xml: ListObjectsV2 and V1', async (t) => {
  const when = Date.UTC(2009, 9, 12, 17, 50, 30);
  t.equal(isoTimestamp(when), '2009-10-12T17:50:30.000Z');
  const contents = [
    { key: 'a b/x+y', lastModified: when, etag: '"abc"', size: 3 },
    { key: 'ü', lastModified: new Date(when), etag: '"def"', size: 0, storageClass: 'REDUCED_REDUNDANCY', owner: { id: 'o1', displayName: 'me' } },
  ];
  const v2 = listObjectsV2Xml({
    name: 'bkt',
    prefix: 'a b/',
    delimiter: '/',
    maxKeys: 1000,
    isTruncated: true,
    encodingType: 'url',
    continuationToken: 'tok+/=',
    nextContinuationToken: 'next+/=',
    startAfter: 'a b',
    contents,
    commonPrefixes: ['a b/c d/'],
  }).toString('utf8');
  t.match(v2, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<ListBucketResult xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/">/);
  for (const piece of [
    '<Name>bkt</Name>',
    '<Prefix>a+b/</Prefix>',
    '<ContinuationToken>tok+/=</ContinuationToken>',
    '<NextContinuationToken>next+/=</NextContinuationToken>',
    '<KeyCount>3</KeyCount>',
    '<MaxKeys>1000</MaxKeys>',
    '<Delimiter>/</Delimiter>',
    '<EncodingType>url</EncodingType>',
    '<IsTruncated>true</IsTruncated>',
    '<StartAfter>a+b</StartAfter>',
    '<Key>a+b/x%2By</Key>',
    '<LastModified>2009-10-12T17:50:30.000Z</LastModified>',
    '<ETag>&quot;abc&quot;</ETag>',
    '<Size>3</Size>',
    '<StorageClass>STANDARD</StorageClass>',
    '<Key>%C3%BC</Key>',
    '<Owner><ID>o1</ID><DisplayName>me</DisplayName></Owner>',
    '<StorageClass>REDUCED_REDUNDANCY</StorageClass>',
    '<CommonPrefixes><Prefix>a+b/c+d/</Prefix></CommonPrefixes>',
  ]) {
    t.ok(v2.includes(piece), `V2 has ${piece}`);
  }
  const parsed = parseXml(v2);
  t.equal(parsed.children.filter((c) => c.name === 'Contents').length, 2);

  const plain = listObjectsV2Xml({ name: 'b', maxKeys: 2, isTruncated: false, delimiter: '', contents: [], commonPrefixes: [] }).toString('utf8');
  t.ok(plain.includes('<Prefix></Prefix>'), 'Prefix is always present');
  t.notMatch(plain, /Delimiter|EncodingType|StartAfter|ContinuationToken|Contents/);
  t.ok(plain.includes('<KeyCount>0</KeyCount>'));

  const rawKey = listObjectsV2Xml({ name: 'b', maxKeys: 1, isTruncated: false, contents: [{ ...contents[0]!, key: 'a&b<\u0001' }], commonPrefixes: [] }).toString('utf8');
  t.ok(rawKey.includes('<Key>a&amp;b&lt;&#x1;</Key>'), 'without encoding-type keys are XML-escaped');

  const v1 = listObjectsV1Xml({
    name: 'b',
    prefix: 'p',
    marker: 'm m',
    nextMarker: 'n n',
    delimiter: '/',
    maxKeys: 5,
    isTruncated: true,
    encodingType: 'url',
    contents,
    commonPrefixes: [],
  }).toString('utf8');
  for (const piece of ['<Marker>m+m</Marker>', '<NextMarker>n+n</NextMarker>', '<MaxKeys>5</MaxKeys>', '<Delimiter>/</Delimiter>']) {
    t.ok(v1.includes(piece), `V1 has ${piece}`);
  }
  t.notMatch(v1, /KeyCount/);
  const v1plain = listObjectsV1Xml({ name: 'b', maxKeys: 5, isTruncated: false, contents: [], commonPrefixes: [] }).toString('utf8');
  t.ok(v1plain.includes('<Marker></Marker>'), 'V1 always has Marker');
  t.notMatch(v1plain, /NextMarker/);
});

t.test('xml: the other response documents', async (t) => {
  const when = Date.UTC(2020, 0, 2, 3, 4, 5, 6);
  const buckets = listAllMyBucketsXml({ owner: { id: 'id1', displayName: 'n' }, buckets: [{ name: 'b1', creationDate: when }] });
  t.ok(buckets.includes('<Owner><ID>id1</ID><DisplayName>n</DisplayName></Owner><Buckets><Bucket><Name>b1</Name><CreationDate>2020-01-02T03:04:05.006Z</CreationDate></Bucket></Buckets>'));
  t.equal(locationConstraintXml(undefined), '<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>');
  t.ok(locationConstraintXml('eu-west-1').includes('>eu-west-1</LocationConstraint>'));
  t.ok(locationConstraintXml('us-east-1').includes('></LocationConstraint>'), 'us-east-1 is the empty constraint');
  const copyPart = copyPartResultXml({ etag: '"p"', lastModified: when });
  t.ok(copyPart.includes('<CopyPartResult xmlns=') && copyPart.includes('<ETag>&quot;p&quot;</ETag><LastModified>2020-01-02T03:04:05.006Z</LastModified>'));
  const copy = copyObjectResultXml({ etag: '"e"', lastModified: when, checksums: { CRC32: 'AAAAAA==' } });
  t.ok(copy.includes('<CopyObjectResult xmlns=') && copy.includes('<ChecksumCRC32>AAAAAA==</ChecksumCRC32>'));
  const init = initiateMultipartUploadXml({ bucket: 'b', key: 'k<', uploadId: 'u' });
  t.ok(init.includes('<Bucket>b</Bucket><Key>k&lt;</Key><UploadId>u</UploadId>'));
  const complete = completeMultipartUploadXml({ location: 'http://h/b/k', bucket: 'b', key: 'k', etag: '"x-2"' });
  t.ok(complete.includes('<Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key><ETag>&quot;x-2&quot;</ETag>'));
  const parts = listPartsXml({
    bucket: 'b', key: 'k', uploadId: 'u', partNumberMarker: 0, nextPartNumberMarker: 2, maxParts: 2, isTruncated: true,
    parts: [{ partNumber: 1, lastModified: when, etag: '"p1"', size: 5 }, { partNumber: 2, lastModified: when, etag: '"p2"', size: 6 }],
  });
  t.equal(parseXml(parts).children.filter((c) => c.name === 'Part').length, 2);
  t.ok(parts.includes('<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>'));
  const uploads = listMultipartUploadsXml({
    bucket: 'b', maxUploads: 10, isTruncated: false, encodingType: 'url', prefix: 'a b',
    uploads: [{ key: 'a b', uploadId: 'u1', initiated: when }], commonPrefixes: ['a b/'],
  });
  t.ok(uploads.includes('<Key>a+b</Key>') && uploads.includes('<KeyMarker></KeyMarker>') && uploads.includes('<Prefix>a+b/</Prefix>'));
  const del = deleteResultXml({ deleted: [{ key: 'a' }], errors: [{ key: 'b', code: 'AccessDenied', message: 'Access Denied' }] });
  t.ok(del.includes('<Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'));
});

t.test('xml: request-body parsers', async (t) => {
  const complete = parseCompleteMultipartUpload(
    '<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      '<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>' +
      '<Part><ETag>"b"</ETag><PartNumber> 2 </PartNumber></Part></CompleteMultipartUpload>',
  );
  t.same(complete, [
    { partNumber: 1, etag: '"a"', checksums: { CRC32: 'AAAAAA==' } },
    { partNumber: 2, etag: '"b"', checksums: {} },
  ]);
  const del = parseDeleteRequest(
    '<Delete><Quiet>true</Quiet><Object><Key> spaced &amp; </Key></Object><Object><Key><![CDATA[a<b]]></Key><VersionId>v</VersionId></Object></Delete>',
  );
  t.same(del, { quiet: true, objects: [{ key: ' spaced & ' }, { key: 'a<b', versionId: 'v' }] });
  t.same(parseDeleteRequest('<s3:Delete xmlns:s3="x"><s3:Object><s3:Key>k</s3:Key></s3:Object></s3:Delete>').objects, [{ key: 'k' }]);
  t.same(parseCreateBucketConfiguration(Buffer.from('<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>')), {
    locationConstraint: 'eu-west-1',
  });
  t.same(parseCreateBucketConfiguration('<CreateBucketConfiguration/>'), { locationConstraint: undefined });
  t.equal(parseXml('<a>&#x1F600;&#65;</a>').text, '😀A', 'numeric references');

  const bad: [string, string | Buffer][] = [
    ['a DOCTYPE', '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><Delete/>'],
    ['an entity declaration inside', '<Delete><!ENTITY x "y"></Delete>'],
    ['an unknown entity', '<Delete><Object><Key>&x;</Key></Object></Delete>'],
    ['an external entity', '<Delete><Object><Key>&xxe;</Key></Object></Delete>'],
    ['a bare ampersand', '<Delete><Object><Key>a & b</Key></Object></Delete>'],
    ['a processing instruction', '<Delete><?php x ?><Object><Key>k</Key></Object></Delete>'],
    ['mismatched tags', '<Delete><Object><Key>k</Object></Key></Delete>'],
    ['an unclosed root', '<Delete><Object><Key>k</Key></Object>'],
    ['two roots', '<Delete><Object><Key>k</Key></Object></Delete><Delete/>'],
    ['text after the root', '<Delete><Object><Key>k</Key></Object></Delete>junk'],
    ['garbage', 'not xml at all'],
    ['an empty body', ''],
    ['the wrong root', '<Remove><Object><Key>k</Key></Object></Remove>'],
    ['no objects', '<Delete><Quiet>true</Quiet></Delete>'],
    ['an object without key', '<Delete><Object><VersionId>v</VersionId></Object></Delete>'],
    ['a bad Quiet', '<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>'],
    ['a NUL reference', '<Delete><Object><Key>&#0;</Key></Object></Delete>'],
    ['a raw control character', '<Delete><Object><Key>a\u0001</Key></Object></Delete>'],
    ['invalid UTF-8', Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e])],
    ['an unquoted attribute', '<Delete a=b><Object><Key>k</Key></Object></Delete>'],
    ['a duplicate attribute', '<Delete a="1" a="2"><Object><Key>k</Key></Object></Delete>'],
  ];
  for (const [name, body] of bad) {
    t.throws(() => parseDeleteRequest(body), { name: 'S3Error', code: 'MalformedXML' }, `rejects ${name}`);
  }
  t.throws(() => parseCompleteMultipartUpload('<CompleteMultipartUpload></CompleteMultipartUpload>'), { code: 'MalformedXML' }, 'no parts');
  t.throws(() => parseCompleteMultipartUpload('<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>'), { code: 'MalformedXML' });
  t.throws(() => parseXml('<a>' + 'x'.repeat(100) + '</a>', { maxBytes: 50 }), { code: 'MalformedXML' }, 'size limit');
  t.throws(() => parseXml('<a>'.repeat(40) + '</a>'.repeat(40)), { code: 'MalformedXML' }, 'depth limit');
  t.throws(() => parseXml('<a>' + '<b/>'.repeat(100) + '</a>', { maxNodes: 50 }), { code: 'MalformedXML' }, 'node limit');
  const thousand = '<Delete>' + '<Object><Key>k</Key></Object>'.repeat(1001) + '</Delete>';
  t.throws(() => parseDeleteRequest(thousand), { code: 'MalformedXML' }, 'more than 1000 objects');
});

t.test('xml: fuzzed bodies fail only with MalformedXML', async (t) => {
  const seeds = [
    '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="x"><Quiet>false</Quiet><Object><Key>a&amp;b</Key><VersionId>1</VersionId></Object><!-- c --><Object><Key><![CDATA[x]]></Key></Object></Delete>',
    '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e&quot;</ETag></Part></CompleteMultipartUpload>',
  ];
  const alphabet = '<>/&;#x![]-?="\' aZ09\u0000\u00e9CDATA';
  const next = rng(7);
  let accepted = 0;
  let unexpected = 0;
  for (let i = 0; i < 3000; i++) {
    let doc = seeds[i % seeds.length]!;
    for (let m = 1 + Math.floor(next() * 4); m > 0; m--) {
      const at = Math.floor(next() * doc.length);
      const ch = alphabet[Math.floor(next() * alphabet.length)]!;
      const op = next();
      doc = op < 0.33 ? doc.slice(0, at) + doc.slice(at + 1) : op < 0.66 ? doc.slice(0, at) + ch + doc.slice(at) : doc.slice(0, at) + ch + doc.slice(at + 1);
    }
    try {
      parseXml(doc);
      accepted++;
    } catch (e) {
      if (!(e instanceof S3Error && e.code === 'MalformedXML')) unexpected++;
    }
  }
  t.equal(unexpected, 0, 'no other kind of failure');
  t.ok(accepted > 0, `some mutations stay well-formed (${accepted})`);
});

// =============================================================================================
// Range

t.test('range: S3 semantics', async (t) => {
  const cases: [string | undefined, number, { start: number; end: number } | undefined | 'InvalidRange'][] = [
    [undefined, 100, undefined],
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=10-', 100, { start: 10, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
    ['bytes=90-1000', 100, { start: 90, end: 99 }],
    ['bytes=99-99', 100, { start: 99, end: 99 }],
    ['bytes=0-0', 1, { start: 0, end: 0 }],
    ['BYTES=1-2', 100, { start: 1, end: 2 }],
    [' bytes=1-2 ', 100, { start: 1, end: 2 }],
    ['bytes=0-99999999999999999999', 100, { start: 0, end: 99 }],
    ['bytes=100-', 100, 'InvalidRange'],
    ['bytes=100-200', 100, 'InvalidRange'],
    ['bytes=99999999999999999999-', 100, 'InvalidRange'],
    ['bytes=-0', 100, 'InvalidRange'],
    ['bytes=0-', 0, 'InvalidRange'],
    ['bytes=0-0', 0, 'InvalidRange'],
    ['bytes=-5', 0, undefined],
    ['bytes=5-1', 100, undefined],
    ['bytes=0-1,5-6', 100, undefined],
    ['bytes=-', 100, undefined],
    ['bytes=a-b', 100, undefined],
    ['items=0-1', 100, undefined],
    ['bytes 0-1', 100, undefined],
    ['', 100, undefined],
  ];
  for (const [header, size, expected] of cases) {
    const name = `${JSON.stringify(header)} of ${size}`;
    if (expected === 'InvalidRange') {
      t.throws(() => parseRange(header, size), { code: 'InvalidRange', status: 416, extra: { RangeRequested: header!.trim(), ActualObjectSize: size } }, name);
    } else {
      t.same(parseRange(header, size), expected, name);
    }
  }
  t.equal(contentRange(0, 9, 100), 'bytes 0-9/100');
  t.equal(unsatisfiedContentRange(100), 'bytes */100');
});

// =============================================================================================
// Checksums

t.test('checksums: check values, streaming equality, CRC64NVME speed', async (t) => {
  const check = Buffer.from('123456789');
  t.equal(crc64nvme(check).toString('hex'), 'ae8b14860a799888', 'CRC64NVME check value');
  const expected: Record<ChecksumAlgorithm, string> = {
    CRC32: 'cbf43926',
    CRC32C: 'e3069283',
    CRC64NVME: 'ae8b14860a799888',
    SHA1: 'f7c3bc1d808e04732adf679965ccc34ca7ae3441',
    SHA256: '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225',
  };
  for (const alg of CHECKSUM_ALGORITHMS) {
    const value = checksumOf(alg, check);
    t.equal(Buffer.from(value, 'base64').toString('hex'), expected[alg], `${alg} check value`);
    t.ok(isValidChecksumValue(alg, value));
    t.notOk(isValidChecksumValue(alg, value.replace(/=+$/, '')), `${alg} unpadded is invalid`);
    t.notOk(isValidChecksumValue(alg, expected[alg]), `${alg} in hex is invalid`);
  }
  t.equal(checksumOf('CRC32', Buffer.from('hello world')), 'DUoRhQ==', 'the SDK value from PACKAGES.md');

  const data = randomBytes(300_000);
  const whole = crc64nvme(data).toString('hex');
  for (const seed of [1, 2, 3]) {
    const c = new Crc64Nvme();
    for (const piece of splitRandom(data, seed, 37)) c.update(piece);
    t.equal(c.digest().toString('hex'), whole, `split ${seed} equals whole`);
  }
  // Against the definition, bit by bit: every tail length, the 64 KiB chunk edges, unaligned views.
  for (const n of [0, 1, 7, 8, 15, 16, 17, 31, 33, 100, 65535, 65536, 65537, 131_073]) {
    const view = randomBytes(n + 3).subarray(3);
    t.equal(crc64nvme(view).toString('hex'), bitwiseCrc64nvme(view), `${n} bytes, unaligned`);
  }
  const bytewise = new Crc64Nvme();
  for (const piece of splitEvery(data.subarray(0, 5000), 1)) bytewise.update(piece);
  t.equal(bytewise.digest().toString('hex'), crc64nvme(data.subarray(0, 5000)).toString('hex'), '1-byte pieces');

  const big = randomBytes(32 * 1024 * 1024);
  const started = process.hrtime.bigint();
  const c = new Crc64Nvme();
  for (const piece of splitEvery(big, 65536)) c.update(piece);
  c.digest();
  const mbps = big.length / 1e6 / (Number(process.hrtime.bigint() - started) / 1e9);
  t.comment(`CRC64NVME: ${mbps.toFixed(0)} MB/s`);
  t.ok(mbps > 100, 'fast enough to keep up with a network upload');
});

/** CRC-64/NVME straight from its definition (reflected, poly 0x9a6c9329ac4bc9b5, init and xorout all ones). */
function bitwiseCrc64nvme(data: Uint8Array): string {
  let crc = 0xffffffffffffffffn;
  for (const byte of data) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ 0x9a6c9329ac4bc9b5n : crc >> 1n;
  }
  return (crc ^ 0xffffffffffffffffn).toString(16).padStart(16, '0');
}

// =============================================================================================
// SigV4

const DOC_KEY = 'AKIAIOSFODNN7EXAMPLE';
const DOC_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const DOC_NOW = new Date('2013-05-24T00:00:00Z');
const docLookup = (id: string) => (id === DOC_KEY ? DOC_SECRET : undefined);
const docAuth = (signed: string, signature: string) =>
  `AWS4-HMAC-SHA256 Credential=${DOC_KEY}/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signed},Signature=${signature}`;
const DOC_BASE = { host: 'examplebucket.s3.amazonaws.com', 'x-amz-date': '20130524T000000Z', 'x-amz-content-sha256': EMPTY };
const DOC_CHUNKED: Headers = {
  host: 's3.amazonaws.com',
  'x-amz-date': '20130524T000000Z',
  'x-amz-storage-class': 'REDUCED_REDUNDANCY',
  'content-encoding': 'aws-chunked',
  'x-amz-decoded-content-length': '66560',
};
const DOC_SIGNED_CHUNKS: Headers = {
  ...DOC_CHUNKED,
  'content-length': '66824',
  'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  authorization: docAuth(
    'content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class',
    '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
  ),
};
const DOC_SIGNED_TRAILER: Headers = {
  ...DOC_CHUNKED,
  'x-amz-trailer': 'x-amz-checksum-crc32c',
  'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  authorization: docAuth(
    'content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer',
    '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e',
  ),
};

t.test('sigv4: the examples of the AWS documentation verify', async (t) => {
  const examples: [string, SignedRequestInput, string][] = [
    ['GET Object with Range', { method: 'GET', rawPath: '/test.txt', rawQuery: '', headers: { ...DOC_BASE, range: 'bytes=0-9', authorization: docAuth('host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41') } }, 'sha256'],
    ['PUT Object with Date', { method: 'PUT', rawPath: '/test%24file.text', rawQuery: '', headers: { ...DOC_BASE, date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY', 'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072', authorization: docAuth('date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class', '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd') } }, 'sha256'],
    ['GET Bucket Lifecycle', { method: 'GET', rawPath: '/', rawQuery: 'lifecycle', headers: { ...DOC_BASE, authorization: docAuth('host;x-amz-content-sha256;x-amz-date', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543') } }, 'sha256'],
    ['GET Bucket (list)', { method: 'GET', rawPath: '/', rawQuery: 'max-keys=2&prefix=J', headers: { ...DOC_BASE, authorization: docAuth('host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7') } }, 'sha256'],
    ['presigned GET', { method: 'GET', rawPath: '/test.txt', rawQuery: `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${DOC_KEY}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`, headers: { host: 'examplebucket.s3.amazonaws.com' } }, 'unsigned'],
    ['chunked PUT (seed)', { method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers: DOC_SIGNED_CHUNKS }, 'streaming-signed'],
    ['chunked PUT with trailer (seed)', { method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers: DOC_SIGNED_TRAILER }, 'streaming-signed-trailer'],
  ];
  for (const [name, req, mode] of examples) {
    const auth = verifyRequest(req, docLookup, DOC_NOW);
    t.equal(auth.payloadMode, mode, `${name}: ${mode}`);
    t.equal(auth.accessKeyId, DOC_KEY);
    t.equal(auth.scope, '20130524/us-east-1/s3/aws4_request');
  }
  const seed = verifyRequest({ method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers: DOC_SIGNED_CHUNKS }, docLookup, DOC_NOW);
  t.equal(seed.seedSignature, '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9');
  const upper = { ...DOC_BASE, authorization: docAuth('host;x-amz-content-sha256;x-amz-date', '34B48302E7B5FA45BDE8084F4B7868A86F0A534BC59DB6670ED5711EF69DC6F7') };
  t.ok(verifyRequest({ method: 'GET', rawPath: '/', rawQuery: 'max-keys=2&prefix=J', headers: upper }, docLookup, DOC_NOW), 'uppercase hex signature accepted');
});

/** @smithy/signature-v4 wants a hash class; node:crypto does the work. */
class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

const AK = 'AKIDCAIRNTEST';
const SK = 'secret/with+chars=';
const lookup = (id: string) => (id === AK ? SK : undefined);
const HOST = '127.0.0.1:9000';
const NOW = new Date('2026-01-01T12:00:00Z');

function signer(secret = SK, region = 'us-east-1'): SignatureV4 {
  return new SignatureV4({
    service: 's3',
    region,
    credentials: { accessKeyId: AK, secretAccessKey: secret },
    sha256: Sha256,
    uriEscapePath: false, // like the S3 client: the path is signed exactly as it is sent
    applyChecksum: false,
  });
}

/** How the SDK escapes a key: every segment with encodeURIComponent plus !'()*. */
function sdkPath(bucket: string, key: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `/${bucket}/${key.split('/').map(enc).join('/')}`;
}

function sdkQuery(query: Record<string, string | string[]>): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return Object.entries(query)
    .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${enc(k)}=${enc(x)}`))
    .join('&');
}

interface SignInput {
  method?: string;
  path: string;
  query?: Record<string, string>;
  headers?: Headers;
  payloadHash?: string;
  date?: Date;
  secret?: string;
  region?: string;
}

async function signHeaders(input: SignInput): Promise<SignedRequestInput> {
  const headers: Headers = { host: HOST, 'x-amz-content-sha256': input.payloadHash ?? EMPTY, ...input.headers };
  const signed = await signer(input.secret, input.region).sign(
    { method: input.method ?? 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 9000, path: input.path, query: input.query ?? {}, headers },
    { signingDate: input.date ?? NOW },
  );
  const out: Headers = {};
  for (const [k, v] of Object.entries(signed.headers)) out[k.toLowerCase()] = String(v);
  return { method: signed.method, rawPath: signed.path, rawQuery: sdkQuery((signed.query ?? {}) as Record<string, string>), headers: out };
}

async function presign(input: SignInput & { expiresIn?: number }): Promise<SignedRequestInput> {
  const headers: Headers = { host: HOST, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...input.headers };
  const signed = await signer(input.secret, input.region).presign(
    { method: input.method ?? 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 9000, path: input.path, query: input.query ?? {}, headers },
    { signingDate: input.date ?? NOW, expiresIn: input.expiresIn ?? 900 },
  );
  const out: Headers = {};
  for (const [k, v] of Object.entries(signed.headers)) out[k.toLowerCase()] = String(v);
  return { method: signed.method, rawPath: signed.path, rawQuery: sdkQuery((signed.query ?? {}) as Record<string, string>), headers: out };
}

function withHeaders(req: SignedRequestInput, change: Record<string, string | undefined>): SignedRequestInput {
  const headers: Record<string, string | undefined> = { ...(req.headers as Headers), ...change };
  for (const k of Object.keys(headers)) if (headers[k] === undefined) delete headers[k];
  return { ...req, headers };
}

function withAuthorization(req: SignedRequestInput, from: string | RegExp, to: string): SignedRequestInput {
  return withHeaders(req, { authorization: String(req.headers['authorization']).replace(from, to) });
}

function withParam(req: SignedRequestInput, name: string, value: string | undefined): SignedRequestInput {
  const params = new URLSearchParams(req.rawQuery);
  if (value === undefined) params.delete(name);
  else params.set(name, value);
  return { ...req, rawQuery: params.toString().replace(/\+/g, '%20') };
}

const KEYS = [
  'plain.txt',
  'with space.txt',
  'plus+sign',
  'percent%20literal%',
  'tilde~and-dot.and_underscore',
  'ünïcödé/中文/😀',
  'a//double//slash/',
  "!*'()$&,;=:@",
  'dir/./dot/../dots',
  'question?hash#',
];

t.test('sigv4: header-signed requests from the SDK signer verify', async (t) => {
  for (const key of KEYS) {
    const req = await signHeaders({ method: 'PUT', path: sdkPath('bkt', key), query: { 'x-id': 'PutObject' }, payloadHash: sha256('x'), headers: { 'x-amz-meta-note': '  a   b ', 'content-type': 'text/plain' } });
    const auth = verifyRequest(req, lookup, NOW, { region: 'us-east-1' });
    t.equal(auth.payloadMode, 'sha256', `key ${JSON.stringify(key)}`);
    t.equal(auth.payloadHash, sha256('x'));
    t.equal(auth.seedSignature, /Signature=([0-9a-f]{64})/.exec(String(req.headers['authorization']))![1]);
  }
  const list = await signHeaders({ path: '/bkt', query: { 'list-type': '2', prefix: 'a b+c/ü', delimiter: '/', 'continuation-token': 'x/y+z=', 'encoding-type': 'url' } });
  t.ok(verifyRequest(list, lookup, NOW), 'query parameters with reserved characters');
  const uploads = await signHeaders({ method: 'POST', path: '/bkt/k', query: { uploads: '' } });
  t.ok(verifyRequest({ ...uploads, rawQuery: 'uploads' }, lookup, NOW), '"?uploads" without "=" is the empty value');
  t.ok(verifyRequest({ ...uploads, rawQuery: 'uploads=' }, lookup, NOW));
  // A client that escapes differently from the SDK (e.g. leaves '!' or '$' raw) still matches.
  const bang = await signHeaders({ path: '/bkt/a%21b%24c' });
  t.ok(verifyRequest({ ...bang, rawPath: '/bkt/a!b$c' }, lookup, NOW), 'raw reserved characters are canonicalised');
  const lower = await signHeaders({ path: '/bkt/%C3%BC' });
  t.ok(verifyRequest({ ...lower, rawPath: '/bkt/%c3%bc' }, lookup, NOW), 'lowercase escapes are canonicalised');
  // A client that signed its raw, non-canonical path is accepted too.
  const rawSigned = await signHeaders({ path: '/bkt/a+b!' });
  t.ok(verifyRequest(rawSigned, lookup, NOW), 'a raw-signed path verifies');
  const meta = await signHeaders({ path: '/bkt/k', headers: { 'x-amz-meta-a': 'x' } });
  t.ok(verifyRequest(withHeaders(meta, { 'user-agent': 'x', 'content-type': 'y' }), lookup, NOW), 'unsigned non-amz headers are fine');
});

t.test('sigv4: canonical forms', async (t) => {
  t.equal(canonicalUri('/bkt/a%20b/a+b'), '/bkt/a%20b/a%2Bb');
  t.equal(canonicalUri('/bkt/%c3%bc/%E4%B8%AD'), '/bkt/%C3%BC/%E4%B8%AD');
  t.equal(canonicalUri("/bkt/!*'()~=&:@$,;"), '/bkt/%21%2A%27%28%29~%3D%26%3A%40%24%2C%3B');
  t.equal(canonicalUri('/bkt/%21%2A%27%28%29%7E'), '/bkt/%21%2A%27%28%29~');
  t.equal(canonicalUri('/bkt/100%25'), '/bkt/100%25');
  t.equal(canonicalUri('/bkt//a//b/'), '/bkt//a//b/');
  t.equal(canonicalUri('/bkt/./a/../b'), '/bkt/./a/../b', 'S3 paths are not normalised');
  t.throws(() => canonicalUri('/bkt/100%'), { code: 'InvalidURI' });
  t.throws(() => canonicalUri('/bkt/%ff'), { code: 'InvalidURI' }, 'invalid UTF-8');
  t.same(splitRawUrl('/b/k%20x?a=1&b'), { rawPath: '/b/k%20x', rawQuery: 'a=1&b' });
  t.same(splitRawUrl('/b/k'), { rawPath: '/b/k', rawQuery: '' });
  t.equal(decodePath('/b/a%20b+c/%2F/%C3%BC'), '/b/a b+c///ü', "'+' is literal in a path, %2F decodes inside a segment");
  t.same(parseRawQuery('a=1&&b&c=x+y%2B&d=%3D='), [
    { name: 'a', value: '1' },
    { name: 'b', value: '' },
    { name: 'c', value: 'x y+' },
    { name: 'd', value: '==' },
  ]);
  t.throws(() => parseRawQuery('a=%zz'), { code: 'InvalidURI', status: 400 });
  const q = (raw: string) => canonicalQuery(parseRawQuery(raw));
  t.equal(q('b=2&a=1'), 'a=1&b=2');
  t.equal(q('a=2&a=1&a=&A=3'), 'A=3&a=&a=1&a=2');
  t.equal(q('acl&b='), 'acl=&b=');
  t.equal(q('a=b+c&d=e%2Bf&g=%20'), 'a=b%20c&d=e%2Bf&g=%20', "'+' in a query is a space");
  t.equal(q('k=1&k-x=2&k.y=3&k0=4'), 'k=1&k-x=2&k.y=3&k0=4', 'sorted by name, not by pair');
  t.equal(q("k=%c3%bc~!*'()&l=a=b&m=a:b/c"), 'k=%C3%BC~%21%2A%27%28%29&l=a%3Db&m=a%3Ab%2Fc');
});

t.test('sigv4: tampering and wrong secrets are SignatureDoesNotMatch', async (t) => {
  const req = await signHeaders({ method: 'PUT', path: sdkPath('bkt', 'k ey'), query: { 'x-id': 'PutObject' }, payloadHash: sha256('body'), headers: { 'x-amz-meta-color': 'red' } });
  t.ok(verifyRequest(req, lookup, NOW));
  const mismatch = { name: 'S3Error', code: 'SignatureDoesNotMatch', status: 403 };
  t.throws(() => verifyRequest({ ...req, rawPath: '/bkt/k%20ez' }, lookup, NOW), mismatch, 'path');
  t.throws(() => verifyRequest({ ...req, method: 'POST' }, lookup, NOW), mismatch, 'method');
  t.throws(() => verifyRequest({ ...req, rawQuery: 'x-id=GetObject' }, lookup, NOW), mismatch, 'query value');
  t.throws(() => verifyRequest({ ...req, rawQuery: req.rawQuery + '&versionId=1' }, lookup, NOW), mismatch, 'extra query parameter');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-meta-color': 'blue' }), lookup, NOW), mismatch, 'signed header value');
  t.throws(() => verifyRequest(withHeaders(req, { host: 'evil:9000' }), lookup, NOW), mismatch, 'host');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-content-sha256': sha256('other') }), lookup, NOW), mismatch, 'payload hash');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-date': '20260101T120001Z' }), lookup, NOW), mismatch, 'date');
  t.throws(() => verifyRequest(withAuthorization(req, /Signature=\w+/, 'Signature=00'), lookup, NOW), mismatch, 'short signature');
  const other = await signHeaders({ method: 'PUT', path: sdkPath('bkt', 'k ey'), query: { 'x-id': 'PutObject' }, payloadHash: sha256('body'), headers: { 'x-amz-meta-color': 'red' }, secret: 'wrong' });
  try {
    verifyRequest(other, lookup, NOW);
    t.fail('wrong secret accepted');
  } catch (e) {
    const err = e as S3Error;
    t.equal(err.code, 'SignatureDoesNotMatch', 'wrong secret');
    t.equal(err.extra['AWSAccessKeyId'], AK);
    t.match(String(err.extra['StringToSign']), /^AWS4-HMAC-SHA256\n20260101T120000Z\n20260101\/us-east-1\/s3\/aws4_request\n[0-9a-f]{64}$/);
    t.match(String(err.extra['CanonicalRequest']), /^PUT\n\/bkt\/k%20ey\nx-id=PutObject\nhost:127.0.0.1:9000\n/);
    t.equal(err.extra['SignatureProvided'], /Signature=(\w+)/.exec(String(other.headers['authorization']))![1]);
    t.match(String(err.extra['StringToSignBytes']), /^41 57 53 34 /);
    t.ok('CanonicalRequestBytes' in err.extra);
  }
});

t.test('sigv4: authorization header refusals', async (t) => {
  const req = await signHeaders({ path: '/bkt/k' });
  const malformed = (detail: string) => ({ code: 'AuthorizationHeaderMalformed', status: 400, message: `The authorization header is malformed; ${detail}` });
  const components = malformed('the authorization header requires three components: Credential, SignedHeaders, and Signature.');
  t.throws(() => verifyRequest(withHeaders(req, { authorization: undefined }), lookup, NOW), { code: 'AccessDenied', status: 403, message: 'Access Denied' }, 'anonymous');
  t.throws(() => verifyRequest(withHeaders(req, { authorization: '' }), lookup, NOW), { code: 'AccessDenied' }, 'empty Authorization');
  t.throws(() => verifyRequest(withAuthorization(req, /Credential=[^,]+, /, ''), lookup, NOW), components, 'no Credential');
  t.throws(() => verifyRequest(withAuthorization(req, /SignedHeaders=[^,]+, /, ''), lookup, NOW), components, 'no SignedHeaders');
  t.throws(() => verifyRequest(withAuthorization(req, /, Signature=.*/, ''), lookup, NOW), components, 'no Signature');
  t.throws(() => verifyRequest(withHeaders(req, { authorization: 'AWS4-HMAC-SHA256' }), lookup, NOW), components, 'scheme only');
  t.throws(() => verifyRequest(withAuthorization(req, '/us-east-1/', '/'), lookup, NOW), malformed('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'));
  t.throws(() => verifyRequest(withAuthorization(req, '/20260101/', '/2026010/'), lookup, NOW), malformed('incorrect date format "2026010". This date in the credential must be in the format "yyyyMMdd".'));
  t.throws(() => verifyRequest(withAuthorization(req, '/s3/', '/ec2/'), lookup, NOW), malformed('incorrect service "ec2". This endpoint belongs to "s3".'));
  t.throws(() => verifyRequest(withAuthorization(req, 'aws4_request', 'aws4_reques'), lookup, NOW), malformed('incorrect terminal "aws4_reques". This endpoint uses "aws4_request".'));
  t.throws(() => verifyRequest(withAuthorization(req, '/20260101/', '/20251231/'), lookup, NOW), malformed('Invalid credential date "20251231". This date is not the same as X-Amz-Date: "20260101".'));
  t.throws(() => verifyRequest(req, lookup, NOW, { region: 'eu-west-1' }), { ...malformed("the region 'us-east-1' is wrong; expecting 'eu-west-1'"), extra: { Region: 'eu-west-1' } });
  t.ok(verifyRequest(await signHeaders({ path: '/bkt/k', region: 'auto' }), lookup, NOW), 'any region when none is configured');
  t.throws(() => verifyRequest(withHeaders(req, { authorization: `AWS ${AK}:frJIUN8DYpKDtOLCwo//yllqDzg=` }), lookup, NOW), {
    code: 'InvalidRequest',
    message: 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
  }, 'Signature Version 2');
  t.throws(() => verifyRequest(withHeaders(req, { authorization: 'Bearer token' }), lookup, NOW), {
    code: 'InvalidArgument',
    message: 'Unsupported Authorization Type',
    extra: { ArgumentName: 'Authorization', ArgumentValue: 'Bearer token' },
  });
  t.throws(() => verifyRequest({ ...req, rawQuery: 'X-Amz-Algorithm=AWS4-HMAC-SHA256' }, lookup, NOW), {
    code: 'InvalidArgument',
    message: /^Only one auth mechanism allowed/,
    extra: { ArgumentName: 'Authorization' },
  }, 'header and query');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-content-sha256': undefined }), lookup, NOW), {
    code: 'InvalidRequest',
    message: 'Missing required header for this request: x-amz-content-sha256',
  });
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-content-sha256': 'nonsense' }), lookup, NOW), {
    code: 'InvalidArgument',
    extra: { ArgumentName: 'x-amz-content-sha256', ArgumentValue: 'nonsense' },
  });
  const noDate = { code: 'AccessDenied', message: 'AWS authentication requires a valid Date or x-amz-date header' };
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-date': undefined }), lookup, NOW), noDate, 'no date');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-date': '2026-01-01T12:00:00Z' }), lookup, NOW), noDate, 'extended date format');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-date': '20261301T120000Z' }), lookup, NOW), noDate, 'month 13');
  // Date.UTC would roll these over to a real instant, or read year 0050 as 1950.
  for (const impossible of ['20260231T120000Z', '20250229T120000Z', '20260101T240000Z', '20260101T126000Z', '20260101T120060Z', '00500101T120000Z']) {
    t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-date': impossible }), lookup, NOW), noDate, impossible);
  }
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-meta-size': '1' }), lookup, NOW), {
    code: 'AccessDenied',
    message: 'There were headers present in the request which were not signed',
    extra: { HeadersNotSigned: 'x-amz-meta-size' },
  });
  const noHost = await signer().sign(
    { method: 'GET', protocol: 'http:', hostname: 'h', path: '/b/k', query: {}, headers: { 'x-amz-content-sha256': EMPTY } },
    { signingDate: NOW },
  );
  const noHostHeaders: Headers = {};
  for (const [k, v] of Object.entries(noHost.headers)) noHostHeaders[k.toLowerCase()] = String(v);
  t.throws(() => verifyRequest({ method: 'GET', rawPath: '/b/k', rawQuery: '', headers: { ...noHostHeaders, host: 'h' } }, lookup, NOW), {
    code: 'AccessDenied',
    extra: { HeadersNotSigned: 'host' },
  }, 'host must be signed');
  t.throws(() => verifyRequest(req, () => undefined, NOW), { code: 'InvalidAccessKeyId', status: 403, extra: { AWSAccessKeyId: AK } });
});

t.test('sigv4: Date header instead of x-amz-date', async (t) => {
  const signedAt = new Date('2026-01-01T12:00:00Z');
  // Sign like a client that only has a Date header: build the canonical request by hand.
  const canonical = ['GET', '/bkt/k', '', `date:${signedAt.toUTCString()}`, `host:${HOST}`, `x-amz-content-sha256:${EMPTY}`, '', 'date;host;x-amz-content-sha256', EMPTY].join('\n');
  const scope = '20260101/us-east-1/s3/aws4_request';
  const toSign = ['AWS4-HMAC-SHA256', '20260101T120000Z', scope, sha256(canonical)].join('\n');
  const key = referenceSigningKey(SK, '20260101', 'us-east-1');
  const sig = createHmac('sha256', key).update(toSign).digest('hex');
  const headers = { date: signedAt.toUTCString(), host: HOST, 'x-amz-content-sha256': EMPTY, authorization: `AWS4-HMAC-SHA256 Credential=${AK}/${scope}, SignedHeaders=date;host;x-amz-content-sha256, Signature=${sig}` };
  t.equal(verifyRequest({ method: 'GET', rawPath: '/bkt/k', rawQuery: '', headers }, lookup, NOW).amzDate, '20260101T120000Z');
});

t.test('sigv4: clock skew is checked after the signature', async (t) => {
  for (const [offset, ok] of [[-900, true], [900, true], [-901, false], [901, false]] as const) {
    const req = await signHeaders({ path: '/bkt/k', date: new Date(NOW.getTime() + offset * 1000) });
    if (ok) t.ok(verifyRequest(req, lookup, NOW), `${offset}s is within 15 minutes`);
    else {
      t.throws(() => verifyRequest(req, lookup, NOW), {
        code: 'RequestTimeTooSkewed',
        status: 403,
        extra: { ServerTime: '2026-01-01T12:00:00Z', MaxAllowedSkewMilliseconds: 900000 },
      }, `${offset}s is too skewed`);
      t.throws(() => verifyRequest(withAuthorization(req, /Signature=\w+/, 'Signature=00'), lookup, NOW), { code: 'SignatureDoesNotMatch' }, 'bad signature wins over skew');
    }
  }
  const tight = await signHeaders({ path: '/bkt/k', date: new Date(NOW.getTime() - 61_000) });
  t.throws(() => verifyRequest(tight, lookup, NOW, { maxSkewMs: 60_000 }), { code: 'RequestTimeTooSkewed', extra: { MaxAllowedSkewMilliseconds: 60000 } });
});

t.test('sigv4: presigned URLs', async (t) => {
  for (const key of KEYS) {
    const req = await presign({ path: sdkPath('bkt', key), query: { 'x-id': 'GetObject' } });
    const auth = verifyRequest(req, lookup, NOW);
    t.ok(auth.presigned, `presigned ${JSON.stringify(key)}`);
    t.equal(auth.payloadMode, 'unsigned');
  }
  const req = await presign({ method: 'PUT', path: '/bkt/k', query: { 'x-id': 'PutObject' }, expiresIn: 60 });
  t.ok(verifyRequest(req, lookup, NOW));
  const mismatch = { code: 'SignatureDoesNotMatch' };
  t.throws(() => verifyRequest({ ...req, rawPath: '/bkt/other' }, lookup, NOW), mismatch, 'path');
  t.throws(() => verifyRequest(withParam(req, 'x-id', 'GetObject'), lookup, NOW), mismatch, 'parameter value');
  t.throws(() => verifyRequest(withParam(req, 'versionId', 'null'), lookup, NOW), mismatch, 'extra parameter');
  t.throws(() => verifyRequest({ ...req, rawQuery: req.rawQuery.replace(/X-Amz-/g, 'x-amz-') }, lookup, NOW), mismatch, 'parameter names in lowercase');
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Expires', '61'), lookup, NOW), mismatch, 'longer expiry');
  t.throws(() => verifyRequest(withHeaders(req, { host: 'evil' }), lookup, NOW), mismatch, 'host');
  t.throws(() => verifyRequest(withHeaders(req, { 'x-amz-meta-x': '1' }), lookup, NOW), { code: 'AccessDenied', extra: { HeadersNotSigned: 'x-amz-meta-x' } });
  const otherSecret = await presign({ path: '/bkt/k', secret: 'other' });
  t.throws(() => verifyRequest(otherSecret, lookup, NOW), mismatch, 'wrong secret');
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Credential', `NOPE/20260101/us-east-1/s3/aws4_request`), lookup, NOW), { code: 'InvalidAccessKeyId' });

  const end = new Date(NOW.getTime() + 60_000);
  t.ok(verifyRequest(req, lookup, end), 'valid at the last millisecond');
  t.throws(() => verifyRequest(req, lookup, new Date(end.getTime() + 1)), {
    code: 'AccessDenied',
    status: 403,
    message: 'Request has expired',
    extra: { 'X-Amz-Expires': 60, Expires: '2026-01-01T12:01:00Z', ServerTime: '2026-01-01T12:01:00Z' },
  }, 'expired');
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Signature', '0'.repeat(64)), lookup, new Date(end.getTime() + 1000)), mismatch, 'a bad signature wins over expiry');
  const week = await presign({ path: '/bkt/k', expiresIn: 604800 });
  t.ok(verifyRequest(week, lookup, new Date(NOW.getTime() + 604_800_000)), 'a week is the longest');
  const zero = await presign({ path: '/bkt/k', expiresIn: 0 });
  t.throws(() => verifyRequest(zero, lookup, NOW), { message: 'Request has expired' }, 'X-Amz-Expires=0 never validates');
  const future = await presign({ path: '/bkt/k', date: new Date(NOW.getTime() + 901_000) });
  t.throws(() => verifyRequest(future, lookup, NOW), { code: 'AccessDenied', message: 'Request is not yet valid' });
  t.ok(verifyRequest(await presign({ path: '/bkt/k', date: new Date(NOW.getTime() + 899_000) }), lookup, NOW), 'slightly in the future is fine');

  const qpe = (message: string | RegExp) => ({ code: 'AuthorizationQueryParametersError', status: 400, message });
  for (const name of ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires']) {
    t.throws(() => verifyRequest(withParam(req, name, undefined), lookup, NOW), qpe(/^Query-string authentication version 4 requires/), `no ${name}`);
  }
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Algorithm', 'AWS4-HMAC-SHA1'), lookup, NOW), qpe('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256 and AWS4-ECDSA-P256-SHA256"'));
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Date', '2026-01-01T12:00:00Z'), lookup, NOW), qpe(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`));
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Expires', '604801'), lookup, NOW), qpe(/^X-Amz-Expires must be less than a week/));
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Expires', '-1'), lookup, NOW), qpe('X-Amz-Expires must be non-negative'));
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Expires', '1h'), lookup, NOW), qpe('X-Amz-Expires should be a number'));
  t.throws(() => verifyRequest(withParam(req, 'X-Amz-Credential', `${AK}/20260101/us-east-1/ec2/aws4_request`), lookup, NOW), qpe('Error parsing the X-Amz-Credential parameter; incorrect service "ec2". This endpoint belongs to "s3".'));
  t.throws(() => verifyRequest(req, lookup, NOW, { region: 'eu-west-1' }), { ...qpe("Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; expecting 'eu-west-1'"), extra: { Region: 'eu-west-1' } });
  t.throws(() => verifyRequest({ ...req, rawQuery: 'AWSAccessKeyId=AK&Signature=abc&Expires=1' }, lookup, NOW), { code: 'InvalidRequest' }, 'Signature Version 2 query');
});

t.test('sigv4: signatures compare as whole UTF-8 strings; signed headers must be present', async (t) => {
  const hex = 'ab'.repeat(32);
  t.ok(signaturesEqual(hex, hex));
  t.ok(signaturesEqual(hex, hex.toUpperCase()), 'hex case is ignored');
  t.notOk(signaturesEqual(hex, hex.slice(0, -1)), 'shorter');
  t.notOk(signaturesEqual(hex, `${hex}0`), 'longer');
  // latin1 would keep only the low byte: "\u0161" → 0x61 "a".
  t.notOk(signaturesEqual(hex, hex.replace(/a/g, '\u0161')), 'characters with the right low byte');
  t.notOk(signaturesEqual(hex, hex.replace(/a/g, '\uff41')), 'full-width letters');

  const withEmpty = await signHeaders({ path: '/bkt/k', headers: { 'x-amz-meta-a': '' } });
  t.ok(verifyRequest(withEmpty, lookup, NOW), 'a header signed with the empty value');
  t.throws(() => verifyRequest(withHeaders(withEmpty, { 'x-amz-meta-a': undefined }), lookup, NOW), { code: 'SignatureDoesNotMatch' }, 'and then left out');
  const claimed = withAuthorization(await signHeaders({ path: '/bkt/k' }), 'SignedHeaders=', 'SignedHeaders=constructor;');
  t.throws(() => verifyRequest({ ...claimed, headers: { ...claimed.headers } }, lookup, NOW), { code: 'SignatureDoesNotMatch' }, 'a signed header named like an Object.prototype property');
});

t.test('sigv4: signing keys are cached per secret, day, region and service', async (t) => {
  const a = cachedSigningKey('s', '20260101', 'us-east-1', 's3');
  t.equal(cachedSigningKey('s', '20260101', 'us-east-1', 's3'), a, 'same Buffer on a hit');
  t.not(cachedSigningKey('s2', '20260101', 'us-east-1', 's3'), a, 'another secret');
  t.same(a, referenceSigningKey('s', '20260101', 'us-east-1'));
  for (let i = 0; i < 300; i++) cachedSigningKey(`x${i}`, '20260101', 'r', 's3');
  t.not(cachedSigningKey('s', '20260101', 'us-east-1', 's3'), a, 'evicted after 256 others');
});

// =============================================================================================
// Payload

/** The SigV4 signing key straight from the specification, independent of the code under test. */
function referenceSigningKey(secret: string, date: string, region: string): Buffer {
  const h = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  return h(h(h(h(`AWS4${secret}`, date), region), 's3'), 'aws4_request');
}

/** An AuthContext for a PUT of `data` in the given payload mode, signed by the SDK signer. */
async function streamingAuth(payloadHash: string, headers: Headers): Promise<{ auth: AuthContext; headers: Headers }> {
  const req = await signHeaders({ method: 'PUT', path: '/bkt/obj', payloadHash, headers });
  return { auth: verifyRequest(req, lookup, NOW), headers: req.headers as Headers };
}

function streamingHeaders(length: number, extra: Headers = {}): Headers {
  return { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(length), ...extra };
}

async function decodeAll(
  body: Buffer,
  pieces: (b: Buffer) => Buffer[],
  headers: Headers,
  auth: AuthContext,
  options?: PayloadOptions,
): Promise<{ data: Buffer; payload: DecodedPayload }> {
  const payload = decodePayload(stream(pieces(body)), headers, auth, options);
  return { data: await drain(payload), payload };
}

const whole = (b: Buffer) => [b];
const bytes1 = (b: Buffer) => splitEvery(b, 1);

t.test('payload: plain bodies, x-amz-content-sha256, Content-MD5, checksums', async (t) => {
  const data = randomBytes(100_000);
  const md5b64 = createHash('md5').update(data).digest('base64');
  const { auth, headers } = await streamingAuth(sha256(data), { 'content-length': String(data.length), 'content-md5': md5b64 });
  const { data: out, payload } = await decodeAll(data, (b) => splitRandom(b, 11), headers, auth);
  t.ok(out.equals(data), 'bytes pass through unchanged');
  t.equal(payload.declaredLength, data.length);
  t.notOk(payload.chunked);
  t.equal(payload.result.md5Hex, createHash('md5').update(data).digest('hex'), 'MD5 for the ETag');
  t.same(payload.digests(), { size: data.length, md5Hex: payload.result.md5Hex, checksums: {} });

  // The mismatch is thrown only when the body has ended, after every byte was handed out.
  const tampered = Buffer.from(data);
  tampered[500] ^= 1;
  const bad = decodePayload(stream(splitEvery(tampered, 4096)), { ...headers, 'content-md5': undefined } as unknown as Headers, auth);
  let seen = 0;
  await t.rejects(
    (async () => {
      for await (const p of bad) seen += p.length;
    })(),
    { code: 'XAmzContentSHA256Mismatch', status: 400, extra: { ClientComputedContentSHA256: sha256(data), S3ComputedContentSHA256: sha256(tampered) } },
  );
  t.equal(seen, data.length, 'the error comes after the last byte, before the consumer commits');
  t.throws(() => bad.result, 'no result after a failure');

  const { auth: unsigned } = await streamingAuth('UNSIGNED-PAYLOAD', {});
  const md5Headers = (value: string) => ({ 'content-length': String(data.length), 'content-md5': value });
  await t.rejects(drain(decodePayload(stream([tampered]), md5Headers(md5b64), unsigned)), {
    code: 'BadDigest',
    message: 'The Content-MD5 you specified did not match what we received.',
    extra: { ExpectedDigest: md5b64, CalculatedDigest: createHash('md5').update(tampered).digest('base64') },
  });
  for (const value of ['not base64!', 'YWJyYWNhZGFicmE=', createHash('md5').update(data).digest('hex'), '']) {
    t.throws(() => decodePayload(stream([data]), md5Headers(value), unsigned), { code: 'InvalidDigest', extra: { 'Content-MD5': value } }, `InvalidDigest for ${JSON.stringify(value)}`);
  }

  for (const alg of CHECKSUM_ALGORITHMS) {
    const name = `x-amz-checksum-${alg.toLowerCase()}`;
    const value = checksumOf(alg, data);
    const h = { 'content-length': String(data.length), [name]: value, 'x-amz-sdk-checksum-algorithm': alg };
    const ok = decodePayload(stream(splitRandom(data, 3)), h, unsigned);
    await drain(ok);
    t.same(ok.result.checksum, { algorithm: alg, value, source: 'header' }, `${alg} from a header`);
    t.same(ok.digests().checksums, { [alg]: value });
    await t.rejects(drain(decodePayload(stream([tampered]), h, unsigned)), {
      code: 'BadDigest',
      message: `The ${alg} you specified did not match the calculated checksum.`,
    }, `${alg} mismatch`);
    t.throws(() => decodePayload(stream([data]), { ...h, [name]: value.replace(/=+$/, '') + 'x' }, unsigned), {
      code: 'InvalidRequest',
      message: `Value for ${name} header is invalid.`,
    });
  }
  const two = { 'content-length': '1', 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-checksum-crc32c': 'AAAAAA==' };
  t.throws(() => decodePayload(stream([]), two, unsigned), { code: 'InvalidRequest', message: 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.' });
  t.throws(() => decodePayload(stream([]), { 'content-length': '1', 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-sdk-checksum-algorithm': 'SHA256' }, unsigned), {
    code: 'InvalidRequest',
    message: 'Value for x-amz-sdk-checksum-algorithm header is invalid.',
  });
  t.throws(() => decodePayload(stream([]), { 'content-length': '1', 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-sdk-checksum-algorithm': 'MD4' }, unsigned), {
    code: 'InvalidRequest',
    message: /^Checksum algorithm provided is unsupported/,
  });
  t.throws(() => decodePayload(stream([]), { 'content-length': '1', 'x-amz-sdk-checksum-algorithm': 'CRC32' }, unsigned), {
    code: 'InvalidRequest',
    message: 'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.',
  });
  t.throws(() => decodePayload(stream([]), { 'content-length': '1', 'x-amz-trailer': 'x-amz-checksum-crc32' }, unsigned), { code: 'MalformedTrailerError' }, 'a trailer on a plain body');

  const computed = decodePayload(stream([data]), { 'content-length': String(data.length) }, unsigned, { defaultChecksum: 'CRC64NVME' });
  await drain(computed);
  t.same(computed.result.checksum, { algorithm: 'CRC64NVME', value: checksumOf('CRC64NVME', data), source: 'computed' });

  t.throws(() => decodePayload(stream([]), {}, unsigned), { code: 'MissingContentLength', status: 411 });
  t.throws(() => decodePayload(stream([]), { 'transfer-encoding': 'chunked' }, unsigned), { code: 'NotImplemented', extra: { Header: 'Transfer-Encoding' } });
  t.throws(() => decodePayload(stream([]), { 'content-length': '101' }, unsigned, { maxSize: 100 }), { code: 'EntityTooLarge' });
  await t.rejects(drain(decodePayload(stream([data.subarray(0, 10)]), { 'content-length': '11' }, unsigned)), { code: 'IncompleteBody' }, 'short body');
  async function* broken(): AsyncGenerator<Buffer> {
    yield data.subarray(0, 10);
    throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
  }
  await t.rejects(drain(decodePayload(broken(), { 'content-length': '100' }, unsigned)), { code: 'IncompleteBody' }, 'client hung up');
  const once = decodePayload(stream([data]), { 'content-length': String(data.length) }, unsigned);
  await drain(once);
  t.throws(() => once[Symbol.asyncIterator](), 'a payload is read once');
});

t.test('payload: large bodies are hashed on the digest thread, with the same digests and errors', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const md5b64 = createHash('md5').update(data).digest('base64');
  const before = digestThreadStats().offloaded;
  const { auth, headers } = await streamingAuth(sha256(data), { 'content-length': String(data.length), 'content-md5': md5b64 });
  const { data: out, payload } = await decodeAll(data, (b) => splitRandom(b, 21, 200_000), headers, auth, { defaultChecksum: 'CRC64NVME' });
  t.ok(out.equals(data), 'bytes pass through unchanged');
  t.equal(payload.result.md5Hex, createHash('md5').update(data).digest('hex'));
  t.same(payload.result.checksum, { algorithm: 'CRC64NVME', value: checksumOf('CRC64NVME', data), source: 'computed' });
  t.equal(digestThreadStats().offloaded, before + 1, 'hashed off the event loop');

  const tampered = Buffer.from(data);
  tampered[2_500_000] ^= 1;
  let seen = 0;
  const bad = decodePayload(stream(splitEvery(tampered, 65536)), { ...headers, 'content-md5': undefined } as unknown as Headers, auth);
  await t.rejects(
    (async () => {
      for await (const p of bad) seen += p.length;
    })(),
    { code: 'XAmzContentSHA256Mismatch', extra: { S3ComputedContentSHA256: sha256(tampered) } },
  );
  t.equal(seen, data.length, 'the mismatch comes after the last byte');
  const { auth: unsigned } = await streamingAuth('UNSIGNED-PAYLOAD', {});
  await t.rejects(drain(decodePayload(stream([tampered]), { 'content-length': String(data.length), 'content-md5': md5b64 }, unsigned)), { code: 'BadDigest' });
  const crc32 = { 'content-length': String(data.length), 'x-amz-checksum-crc32': checksumOf('CRC32', data) };
  await t.rejects(drain(decodePayload(stream(splitEvery(tampered, 1 << 20)), crc32, unsigned)), { code: 'BadDigest', message: /CRC32 you specified/ });
  const good = decodePayload(stream(splitEvery(data, 1 << 20)), crc32, unsigned);
  await drain(good);
  t.same(good.result.checksum, { algorithm: 'CRC32', value: checksumOf('CRC32', data), source: 'header' });

  async function* hangsUp(): AsyncGenerator<Buffer> {
    yield data.subarray(0, 2_000_000);
    throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
  }
  await t.rejects(drain(decodePayload(hangsUp(), { 'content-length': String(data.length) }, unsigned)), { code: 'IncompleteBody' });
  // A consumer that stops reading early (the gateway gave up on the upload) releases the body too.
  const abandoned = decodePayload(stream(splitEvery(data, 65536)), { 'content-length': String(data.length) }, unsigned);
  for await (const piece of abandoned) if (piece) break;
  t.equal(await digestThreadStats().openAtThread(), 0, 'every failed or abandoned body was released at the thread');
});

t.test('payload: the SDK\'s unsigned aws-chunked body with a trailing checksum', async (t) => {
  // Byte for byte what @aws-sdk/client-s3 3.1169.0 sends for a stream body (PACKAGES.md §7).
  const wire = Buffer.from('6\r\nhello \r\n6\r\nstream\r\n0\r\nx-amz-checksum-crc32:gtnkmQ==\r\n\r\n');
  t.equal(checksumOf('CRC32', Buffer.from('hello stream')), 'gtnkmQ==');
  const sdkHeaders = {
    'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    'content-encoding': 'aws-chunked',
    'transfer-encoding': 'chunked',
    'x-amz-trailer': 'x-amz-checksum-crc32',
    'x-amz-decoded-content-length': '12',
    'x-amz-sdk-checksum-algorithm': 'CRC32',
  };
  const { auth, headers } = await streamingAuth('STREAMING-UNSIGNED-PAYLOAD-TRAILER', sdkHeaders);
  t.equal(auth.payloadMode, 'streaming-unsigned-trailer');
  for (const [name, split] of [['whole', whole], ['1-byte pieces', bytes1], ['random', (b: Buffer) => splitRandom(b, 5, 7)]] as const) {
    const { data, payload } = await decodeAll(wire, split, headers, auth);
    t.equal(data.toString(), 'hello stream', `${name}: framing and trailer removed`);
    t.ok(payload.chunked);
    t.equal(payload.declaredLength, 12);
    t.same(payload.result.checksum, { algorithm: 'CRC32', value: 'gtnkmQ==', source: 'trailer' });
    t.equal(payload.result.trailers.get('x-amz-checksum-crc32'), 'gtnkmQ==');
  }
  t.equal(storedContentEncoding(headers), undefined, 'aws-chunked is not stored');
  t.equal(storedContentEncoding({ 'content-encoding': 'aws-chunked, gzip' }), 'gzip');

  const run = (body: Buffer | string, h: Headers = headers) => drain(decodePayload(stream(bytes1(Buffer.from(body))), h, auth));
  await t.rejects(run(wire.toString().replace('gtnkmQ==', 'AAAAAA==')), { code: 'BadDigest', message: 'The CRC32 you specified did not match the calculated checksum.' });
  await t.rejects(run(wire.toString().replace('hello ', 'hellO ')), { code: 'BadDigest' }, 'changed data');
  await t.rejects(run(wire.toString().replace('gtnkmQ==', 'gtnkmQ')), { code: 'InvalidRequest', message: 'Value for x-amz-checksum-crc32 trailing header is invalid.' });
  await t.rejects(run('6\r\nhello \r\n6\r\nstream\r\n0\r\n\r\n'), { code: 'MalformedTrailerError' }, 'announced trailer missing');
  await t.rejects(run(wire.toString().replace('x-amz-checksum-crc32:', 'x-amz-checksum-crc32c:')), { code: 'MalformedTrailerError' }, 'other trailer than announced');
  await t.rejects(run(wire.toString().replace('x-amz-checksum-crc32:', 'x-amz-checksum-crc32 ')), { code: 'MalformedTrailerError' }, 'trailer line without colon');
  await t.rejects(run(wire.subarray(0, 20)), { code: 'IncompleteBody', message: 'The request body terminated unexpectedly' }, 'truncated in data');
  await t.rejects(run(wire.subarray(0, 24)), { code: 'IncompleteBody' }, 'truncated before the last chunk');
  await t.rejects(run(wire, { ...headers, 'x-amz-decoded-content-length': '13' }), { code: 'IncompleteBody' }, 'decoded length too big');
  await t.rejects(run(wire, { ...headers, 'x-amz-decoded-content-length': '11' }), { code: 'IncompleteBody' }, 'decoded length too small');
  t.throws(() => decodePayload(stream([wire]), { ...headers, 'x-amz-decoded-content-length': undefined } as unknown as Headers, auth), { code: 'MissingContentLength' });
  await t.rejects(run(wire.toString() + 'extra'), { code: 'InvalidRequest' }, 'data after the end');
  await t.rejects(run('zz\r\n' + wire.toString()), { code: 'IncompleteBody' }, 'not hex');
  await t.rejects(run(wire.toString().replace('6\r\nhello', '6\nhello')), { code: 'IncompleteBody' }, 'bare LF after a size');
  await t.rejects(run(wire.toString().replace('hello \r\n', 'hello X\n')), { code: 'IncompleteBody' }, 'no CRLF after data');
  await t.rejects(run('1'.repeat(5000) + '\r\n'), { code: 'IncompleteBody' }, 'a chunk-size line longer than 4 KiB');
  await t.rejects(run('1000001\r\n'), { code: 'InvalidChunkSizeError' }, 'a chunk above 16 MiB');
  t.throws(() => decodePayload(stream([]), { ...headers, 'x-amz-trailer': 'x-amz-meta-foo' }, auth), { code: 'InvalidRequest', message: 'The value specified in the x-amz-trailer header is not supported' });
  t.throws(() => decodePayload(stream([]), { ...headers, 'x-amz-checksum-crc32': 'gtnkmQ==' }, auth), { code: 'InvalidRequest', message: 'Expecting a single x-amz-checksum- header' });

  // Ending right after "0\r\n" is how the SDK ends a body that has no checksum to add.
  const { auth: bare, headers: bareHeaders } = await streamingAuth('STREAMING-UNSIGNED-PAYLOAD-TRAILER', streamingHeaders(12));
  t.equal((await decodeAll(Buffer.from('6\r\nhello \r\n6\r\nstream\r\n0\r\n'), bytes1, bareHeaders, bare)).data.toString(), 'hello stream');
  await t.rejects(drain(decodePayload(stream([wire]), bareHeaders, bare)), { code: 'MalformedTrailerError' }, 'a trailer nobody announced');
});

t.test('payload: larger unsigned bodies, any split, bounded memory', async (t) => {
  const data = randomBytes(3 * 65536 + 123);
  const crc = checksumOf('CRC32C', data);
  const wire = unsignedChunkedBody(data, 65536, { name: 'x-amz-checksum-crc32c', value: crc });
  const { auth, headers } = await streamingAuth('STREAMING-UNSIGNED-PAYLOAD-TRAILER', streamingHeaders(data.length, { 'x-amz-trailer': 'x-amz-checksum-crc32c', 'x-amz-sdk-checksum-algorithm': 'CRC32C' }));
  for (const seed of [1, 2, 3, 4]) {
    const { data: out, payload } = await decodeAll(wire, (b) => splitRandom(b, seed, seed * 3000), headers, auth);
    t.ok(out.equals(data), `random split ${seed}`);
    t.equal(payload.result.checksum?.value, crc);
  }
  t.ok((await decodeAll(wire, (b) => splitRandom(b, 99, 3), headers, auth)).data.equals(data), 'pieces of 1 to 3 bytes');

  // 256 MiB through the decoder from one reused buffer: memory must not follow the body size.
  const piece = Buffer.alloc(65536, 7);
  const header = Buffer.from('10000\r\n');
  const crlf = Buffer.from('\r\n');
  const count = 4096;
  async function* big(): AsyncGenerator<Buffer> {
    for (let i = 0; i < count; i++) {
      yield header;
      yield piece;
      yield crlf;
    }
    yield Buffer.from('0\r\n\r\n');
  }
  const { auth: a2, headers: h2 } = await streamingAuth('STREAMING-UNSIGNED-PAYLOAD-TRAILER', streamingHeaders(count * 65536));
  const before = process.memoryUsage();
  let peak = 0;
  let total = 0;
  for await (const p of decodePayload(big(), h2, a2)) {
    total += p.length;
    if ((total & 0xffffff) === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers - before.arrayBuffers);
  }
  t.equal(total, count * 65536);
  t.ok(peak < 64 * 1024 * 1024, `arrayBuffers grew by at most ${(peak / 1048576).toFixed(1)} MiB for a 256 MiB body`);
});

t.test('payload: the AWS documentation\'s signed-chunk upload', async (t) => {
  const auth = verifyRequest({ method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers: DOC_SIGNED_CHUNKS }, docLookup, DOC_NOW);
  const data = Buffer.alloc(66560, 'a');
  const sigs = [
    'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
    '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
    'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
  ];
  const body = (s: readonly string[]) =>
    Buffer.concat([
      Buffer.from(`10000;chunk-signature=${s[0]}\r\n`),
      data.subarray(0, 65536),
      Buffer.from(`\r\n400;chunk-signature=${s[1]}\r\n`),
      data.subarray(65536),
      Buffer.from(`\r\n0;chunk-signature=${s[2]}\r\n\r\n`),
    ]);
  const wire = body(sigs);
  t.equal(wire.length, 66824, 'the documented Content-Length');
  const reference = signedChunkedBody(data, 65536, { signingKey: referenceSigningKey(DOC_SECRET, '20130524', 'us-east-1'), amzDate: '20130524T000000Z', scope: auth.scope, seedSignature: auth.seedSignature });
  t.ok(reference.equals(wire), 'the reference encoder reproduces the documented signatures');
  for (const [name, split] of [['whole', whole], ['1-byte', bytes1], ['random', (b: Buffer) => splitRandom(b, 9, 3000)]] as const) {
    const { data: out, payload } = await decodeAll(wire, split, DOC_SIGNED_CHUNKS, auth);
    t.ok(out.equals(data), `${name}: 66560 bytes of 'a', no framing`);
    t.equal(payload.result.size, 66560);
  }
  for (let i = 0; i < 3; i++) {
    const changed = [...sigs];
    changed[i] = changed[i]!.slice(0, 63) + (changed[i]!.endsWith('0') ? '1' : '0');
    await t.rejects(drain(decodePayload(stream([body(changed)]), DOC_SIGNED_CHUNKS, auth)), {
      code: 'SignatureDoesNotMatch',
      extra: { AWSAccessKeyId: DOC_KEY, StringToSign: /^AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n/ },
    }, `chunk ${i + 1} signature changed`);
  }
  const changedByte = Buffer.from(wire);
  changedByte[1000] = 0x62;
  await t.rejects(drain(decodePayload(stream([changedByte]), DOC_SIGNED_CHUNKS, auth)), { code: 'SignatureDoesNotMatch' }, 'a data byte changed');
  const unsignedChunk = Buffer.from(wire.toString('latin1').replace(/;chunk-signature=[0-9a-f]{64}/, ''), 'latin1');
  await t.rejects(drain(decodePayload(stream([unsignedChunk]), DOC_SIGNED_CHUNKS, auth)), { code: 'IncompleteBody' }, 'a chunk without signature');
  await t.rejects(drain(decodePayload(stream([wire.subarray(0, wire.lastIndexOf('0;chunk-signature='))]), DOC_SIGNED_CHUNKS, auth)), { code: 'IncompleteBody' }, 'cut before the last chunk');
});

t.test('payload: the AWS documentation\'s signed-chunk upload with a signed trailer', async (t) => {
  const auth = verifyRequest({ method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers: DOC_SIGNED_TRAILER }, docLookup, DOC_NOW);
  t.equal(auth.seedSignature, '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e');
  const data = Buffer.alloc(66560, 'a');
  t.equal(checksumOf('CRC32C', data), 'sOO8/Q==');
  const wire = Buffer.concat([
    Buffer.from('10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n'),
    data.subarray(0, 65536),
    Buffer.from('\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n'),
    data.subarray(65536),
    Buffer.from(
      '\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n' +
        'x-amz-checksum-crc32c:sOO8/Q==\r\n' +
        'x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n',
    ),
  ]);
  const reference = signedChunkedBody(data, 65536, { signingKey: referenceSigningKey(DOC_SECRET, '20130524', 'us-east-1'), amzDate: '20130524T000000Z', scope: auth.scope, seedSignature: auth.seedSignature }, { name: 'x-amz-checksum-crc32c', value: 'sOO8/Q==' });
  t.ok(reference.equals(wire), 'the reference encoder reproduces the documented trailer signature');
  for (const split of [whole, bytes1, (b: Buffer) => splitRandom(b, 4, 777)]) {
    const { data: out, payload } = await decodeAll(wire, split, DOC_SIGNED_TRAILER, auth);
    t.ok(out.equals(data));
    t.same(payload.result.checksum, { algorithm: 'CRC32C', value: 'sOO8/Q==', source: 'trailer' });
  }
  const text = wire.toString('latin1');
  const run = (s: string) => drain(decodePayload(stream([Buffer.from(s, 'latin1')]), DOC_SIGNED_TRAILER, auth));
  await t.rejects(run(text.replace('sOO8/Q==', 'sOO8/A==')), { code: 'SignatureDoesNotMatch', extra: { StringToSign: /^AWS4-HMAC-SHA256-TRAILER\n/ } }, 'changed checksum');
  await t.rejects(run(text.replace('x-amz-trailer-signature:d81', 'x-amz-trailer-signature:081')), { code: 'SignatureDoesNotMatch' }, 'changed trailer signature');
  await t.rejects(run(text.replace(/x-amz-trailer-signature:[0-9a-f]{64}\r\n/, '')), { code: 'MalformedTrailerError' }, 'trailer signature removed');
  // Clients that end the checksum line with LF and put a blank line before the signature.
  t.ok((await run(text.replace('sOO8/Q==\r\nx-amz', 'sOO8/Q==\n\r\nx-amz'))).equals(data), 'LF-terminated trailer variant');
});

t.test('payload: signed chunks from the reference encoder', async (t) => {
  const data = randomBytes(50_000);
  const crc = checksumOf('SHA256', data);
  for (const trailer of [undefined, { name: 'x-amz-checksum-sha256', value: crc }]) {
    const token = trailer ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
    const extra: Headers = trailer ? { 'x-amz-trailer': trailer.name } : {};
    const { auth, headers } = await streamingAuth(token, streamingHeaders(data.length, extra));
    const ctx = { signingKey: referenceSigningKey(SK, '20260101', 'us-east-1'), amzDate: auth.amzDate, scope: auth.scope, seedSignature: auth.seedSignature };
    for (const chunkSize of [8192, 10_000, 50_000, 60_000]) {
      const wire = signedChunkedBody(data, chunkSize, ctx, trailer);
      const { data: out, payload } = await decodeAll(wire, (b) => splitRandom(b, chunkSize, 4000), headers, auth);
      t.ok(out.equals(data), `${token} chunks of ${chunkSize}`);
      if (trailer) t.equal(payload.result.checksum?.value, crc);
    }
  }
  const { auth, headers } = await streamingAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', streamingHeaders(16384));
  const ctx = { signingKey: referenceSigningKey(SK, '20260101', 'us-east-1'), amzDate: auth.amzDate, scope: auth.scope, seedSignature: auth.seedSignature };
  // Two equal chunks swapped: each is validly signed, only the chain says they are out of order.
  const wire = signedChunkedBody(data.subarray(0, 16384), 8192, ctx).toString('latin1');
  const parts = wire.split(/(?<=\r\n)(?=[0-9a-f]+;chunk-signature=)/);
  t.equal(parts.length, 3);
  await t.rejects(drain(decodePayload(stream([Buffer.from(parts[1]! + parts[0]! + parts[2]!, 'latin1')]), headers, auth)), { code: 'SignatureDoesNotMatch' }, 'chunks swapped');

  // A non-final signed chunk below 8 KiB is refused like S3 does.
  const { auth: small, headers: smallHeaders } = await streamingAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', streamingHeaders(300));
  const smallWire = signedChunkedBody(data.subarray(0, 300), 100, { ...ctx, amzDate: small.amzDate, scope: small.scope, seedSignature: small.seedSignature });
  await t.rejects(drain(decodePayload(stream([smallWire]), smallHeaders, small)), { code: 'InvalidChunkSizeError', status: 403, extra: { Chunk: 1, BadChunkSize: 100 } });
  t.ok((await decodeAll(smallWire, whole, smallHeaders, small, { minChunkSize: 0 })).data.equals(data.subarray(0, 300)), 'the minimum can be lifted');

  // A trailing checksum that is signed correctly but does not match the bytes.
  const { auth: tr, headers: trHeaders } = await streamingAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', streamingHeaders(data.length, { 'x-amz-trailer': 'x-amz-checksum-crc32' }));
  const wrongCrc = signedChunkedBody(data, 20_000, { ...ctx, amzDate: tr.amzDate, scope: tr.scope, seedSignature: tr.seedSignature }, { name: 'x-amz-checksum-crc32', value: checksumOf('CRC32', Buffer.from('other')) });
  await t.rejects(drain(decodePayload(stream([wrongCrc]), trHeaders, tr)), { code: 'BadDigest', message: 'The CRC32 you specified did not match the calculated checksum.' });

  // A signed-chunk body with an x-amz-trailer but no trailer mode is refused up front.
  const { auth: noTrailer, headers: ntHeaders } = await streamingAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', streamingHeaders(1, { 'x-amz-trailer': 'x-amz-checksum-crc32' }));
  t.throws(() => decodePayload(stream([]), ntHeaders, noTrailer), { code: 'MalformedTrailerError' });

  const empty = await streamingAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', streamingHeaders(0));
  const emptyWire = signedChunkedBody(Buffer.alloc(0), 8192, { ...ctx, amzDate: empty.auth.amzDate, scope: empty.auth.scope, seedSignature: empty.auth.seedSignature });
  t.equal((await decodeAll(emptyWire, bytes1, empty.headers, empty.auth)).data.length, 0, 'an empty object');
});

t.test('payload: fuzzed aws-chunked bodies fail only with S3Error', async (t) => {
  const data = randomBytes(20_000);
  const { auth, headers } = await streamingAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', streamingHeaders(data.length, { 'x-amz-trailer': 'x-amz-checksum-crc32' }));
  const ctx = { signingKey: referenceSigningKey(SK, '20260101', 'us-east-1'), amzDate: auth.amzDate, scope: auth.scope, seedSignature: auth.seedSignature };
  const wire = signedChunkedBody(data, 8192, ctx, { name: 'x-amz-checksum-crc32', value: checksumOf('CRC32', data) });
  const next = rng(42);
  let wrongAccepted = 0;
  let nonS3 = 0;
  for (let i = 0; i < 400; i++) {
    const mutated = Buffer.from(wire);
    const at = Math.floor(next() * mutated.length);
    mutated[at] = (mutated[at]! + 1 + Math.floor(next() * 255)) & 0xff;
    try {
      const out = await drain(decodePayload(stream(splitRandom(mutated, i, 2000)), headers, auth));
      if (!out.equals(data)) wrongAccepted++;
    } catch (e) {
      if (!(e instanceof S3Error)) nonS3++;
    }
  }
  t.equal(nonS3, 0, 'every failure is an S3Error');
  t.equal(wrongAccepted, 0, 'no changed body is accepted with changed bytes');
});

t.test('payload: the idle timeout counts only time spent waiting on the client', async (t) => {
  const data = randomBytes(1000);
  const { auth, headers } = await streamingAuth('UNSIGNED-PAYLOAD', { 'content-length': String(data.length) });
  async function* stalls(): AsyncGenerator<Buffer> {
    yield data.subarray(0, 100);
    await new Promise(() => undefined); // never sends the rest
  }
  const started = Date.now();
  await t.rejects(drain(decodePayload(stalls(), headers, auth, { idleTimeoutMs: 150 })), { code: 'RequestTimeout', status: 400 });
  t.ok(Date.now() - started < 1000, 'a stalled body fails after the idle timeout');

  async function* slowButSteady(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 40));
      yield data.subarray(i * 100, (i + 1) * 100);
    }
  }
  t.same(await drain(decodePayload(slowButSteady(), headers, auth, { idleTimeoutMs: 150 })), data, 'pauses shorter than the timeout are fine');

  // A consumer that is slow itself (back-pressure from storage nodes) is never timed out.
  const slowConsumer: Buffer[] = [];
  for await (const piece of decodePayload(stream(splitEvery(data, 250)), headers, auth, { idleTimeoutMs: 50 })) {
    await new Promise((r) => setTimeout(r, 120));
    slowConsumer.push(piece);
  }
  t.same(Buffer.concat(slowConsumer), data, 'time the consumer spends is not the client\'s');
});

t.test('payload: readPayload for small XML bodies', async (t) => {
  const xml = Buffer.from('<Delete><Object><Key>k</Key></Object></Delete>');
  const { auth, headers } = await streamingAuth(sha256(xml), { 'content-length': String(xml.length) });
  const body = await readPayload(decodePayload(stream(bytes1(xml)), headers, auth), 1024);
  t.same(parseDeleteRequest(body).objects, [{ key: 'k' }]);
  await t.rejects(readPayload(decodePayload(stream([xml]), headers, auth), 10), { code: 'MaxMessageLengthExceeded' });
});
