// Property-based fuzzing (fast-check, fixed seeds and bounded run counts) of everything in the
// gateway that parses hostile input: SigV4 canonicalisation and verification, query strings,
// aws-chunked framing, Range headers and the three S3 XML request bodies. The only acceptable
// failure is a typed S3Error; where a round trip exists it must hold. Then a few hundred random,
// mostly malformed requests against a real gateway: each must get a success or a well-formed S3
// XML error (never a 500, a hang or a dead process), and stored data must be untouched.
// CAIRN_FUZZ_SEED replays another seed.
import t from 'tap';
import fc from 'fast-check';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Error } from '../gateway/s3/errors.js';
import { awsUriEncode, canonicalHeaderValue, canonicalQuery, canonicalUri, decodePath, parseRawQuery } from '../gateway/auth/canonical.js';
import { verifyRequest } from '../gateway/auth/sigv4.js';
import { AwsChunkedDecoder, type ChunkedOptions } from '../gateway/auth/chunked.js';
import { parseRange, rangeSelection } from '../gateway/s3/range.js';
import { selectSegments } from '../namespace/segment-selection.js';
import type { ObjectRecord } from '../namespace/types.js';
import { escapeXml, parseCompleteMultipartUpload, parseCreateBucketConfiguration, parseDeleteRequest, parseXml } from '../gateway/s3/xml.js';
import { parseTarget } from '../gateway/request-target.js';
import { signedChunkedBody, unsignedChunkedBody } from './helpers/aws-chunked.js';
import { canonicalQueryString, referenceSign, sha256Hex, signingKeyFor } from './helpers/raw-s3.js';
import { startTestCluster, ACCESS_KEY_ID, SECRET_ACCESS_KEY, type TestCluster } from './helpers/cluster.js';

const SEED = Number(process.env.CAIRN_FUZZ_SEED ?? 20260101);
const RUNS = 300;
const opts = (numRuns = RUNS) => ({ seed: SEED, numRuns });
t.comment(`fuzz seed ${SEED} (CAIRN_FUZZ_SEED replays another)`);
t.setTimeout(120_000);

/** Runs `fn`; true if it returned, false if it threw an S3Error; anything else fails the property. */
function s3Outcome(fn: () => unknown, codes?: readonly string[]): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (!(err instanceof S3Error)) throw err;
    if (codes !== undefined && !codes.includes(err.code)) throw new Error(`unexpected ${err.code}: ${err.message}`);
    return false;
  }
}

// Strings with everything: any code point, lone surrogates, percent signs and the URL specials.
const anyText = fc.string({
  unit: fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
    { weight: 3, arbitrary: fc.constantFrom('%', '%2', '%zz', '%00', '%C3', '%C3%A9', '%FF', '/', '?', '&', '=', '+', '#', '..', '.', ' ', ';', ':') },
  ),
  maxLength: 40,
});
/** Text a URL path or query can carry after encoding: any Unicode scalar values (no lone surrogates). */
const scalarText = fc.string({ unit: 'grapheme', maxLength: 30 });
const printable = fc.stringMatching(/^[!-~]{0,24}$/);

// =============================================================================================
// SigV4 canonicalisation and verification

t.test('sigv4: canonical forms never throw anything but InvalidURI, and are idempotent', async (t) => {
  fc.assert(
    fc.property(anyText, (raw) => {
      let uri = '';
      if (!s3Outcome(() => (uri = canonicalUri(raw)), ['InvalidURI'])) return;
      // The canonical form is already canonical, and names the same decoded path.
      if (canonicalUri(uri) !== uri) throw new Error(`not idempotent: ${JSON.stringify(raw)}`);
      if (raw !== '' && decodePath(uri) !== decodePath(raw)) throw new Error(`changes the path: ${JSON.stringify(raw)}`);
    }),
    opts(),
  );
  fc.assert(
    fc.property(anyText, (raw) => {
      s3Outcome(() => {
        const q = canonicalQuery(parseRawQuery(raw));
        if (canonicalQuery(parseRawQuery(q)) !== q) throw new Error(`query not idempotent: ${JSON.stringify(raw)}`);
      }, ['InvalidURI']);
    }),
    opts(),
  );
  fc.assert(
    fc.property(anyText, fc.array(anyText, { maxLength: 4 }), (value, values) => {
      const canonical = canonicalHeaderValue(value);
      if (/^[ \t]|[ \t]$|[ \t]{2}/.test(canonical)) throw new Error(`blanks left in ${JSON.stringify(canonical)}`);
      if (canonicalHeaderValue(canonical) !== canonical) throw new Error('header value not idempotent');
      if (canonicalHeaderValue(values) !== values.map((v) => canonicalHeaderValue(v)).join(',')) throw new Error('repeated header');
    }),
    opts(),
  );
  t.pass('canonicalUri, canonicalQuery(parseRawQuery), canonicalHeaderValue');
});

t.test('sigv4: encoding round trips for any Unicode text', async (t) => {
  fc.assert(
    fc.property(scalarText, (text) => {
      const encoded = awsUriEncode(text);
      if (!/^[A-Za-z0-9\-._~%]*$/.test(encoded)) throw new Error(`unreserved only: ${encoded}`);
      if (decodeURIComponent(encoded) !== text) throw new Error('decodes back');
    }),
    opts(),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(scalarText, scalarText), { maxLength: 6 }), (pairs) => {
      const raw = pairs.map(([k, v]) => `${awsUriEncode(k)}=${awsUriEncode(v)}`).join('&');
      const parsed = parseRawQuery(raw);
      const expected = pairs; // "k=v" is never an empty piece, even for two empty strings
      if (parsed.length !== expected.length || parsed.some((p, i) => p.name !== expected[i]![0] || p.value !== expected[i]![1])) {
        throw new Error(`query round trip: ${raw}`);
      }
    }),
    opts(),
  );
  fc.assert(
    fc.property(fc.array(scalarText.filter((s) => !s.includes('/')), { minLength: 1, maxLength: 6 }), (segments) => {
      const raw = `/bkt/${segments.map(awsUriEncode).join('/')}`;
      if (canonicalUri(raw) !== raw) throw new Error('an SDK-encoded path is its own canonical form');
      const target = parseTarget(raw);
      if (target.bucket !== 'bkt' || (target.key ?? '') !== segments.join('/')) throw new Error(`parseTarget: ${raw}`);
    }),
    opts(),
  );
  t.pass('awsUriEncode, parseRawQuery, canonicalUri and parseTarget round trip');
});

const ENDPOINT = 'http://127.0.0.1:9000';
const CREDS = { accessKeyId: 'AKFUZZ', secretAccessKey: 'fuzz-secret' };
const lookup = (id: string) => (id === CREDS.accessKeyId ? CREDS.secretAccessKey : undefined);

t.test('sigv4: any request correctly signed verifies; any change to it does not', async (t) => {
  const request = fc.record({
    method: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD'),
    segments: fc.array(scalarText, { minLength: 1, maxLength: 4 }),
    query: fc.dictionary(scalarText, scalarText, { maxKeys: 4 }),
    meta: fc.dictionary(fc.stringMatching(/^[a-z0-9-]{1,12}$/), printable, { maxKeys: 3 }),
    skewSeconds: fc.integer({ min: -899, max: 899 }),
  });
  fc.assert(
    fc.property(request, fc.nat(), ({ method, segments, query, meta, skewSeconds }, pick) => {
      const now = new Date('2026-03-04T05:06:07Z');
      const date = new Date(now.getTime() + skewSeconds * 1000);
      const headers = Object.fromEntries(Object.entries(meta).map(([k, v]) => [`x-amz-meta-${k}`, v]));
      const path = `/bkt/${segments.map(awsUriEncode).join('/')}`;
      const signed = referenceSign(ENDPOINT, CREDS, { method, path, query, headers, date, payloadHash: sha256Hex('') });
      const q = signed.path.indexOf('?');
      const input = { method, rawPath: q < 0 ? signed.path : signed.path.slice(0, q), rawQuery: q < 0 ? '' : signed.path.slice(q + 1), headers: signed.headers };
      const auth = verifyRequest(input, lookup, now, { region: 'us-east-1' });
      if (auth.accessKeyId !== CREDS.accessKeyId || auth.presigned) throw new Error('verified as someone else');
      // One change anywhere in what was signed: never accepted.
      const changes = [
        { ...input, method: method === 'GET' ? 'PUT' : 'GET' },
        { ...input, rawPath: `${input.rawPath}x` },
        { ...input, rawQuery: input.rawQuery === '' ? 'a=b' : `${input.rawQuery}&zz=1` },
        { ...input, headers: { ...input.headers, host: 'evil.example:9000' } },
        { ...input, headers: { ...input.headers, authorization: input.headers['authorization']!.replace(/.$/, (c) => (c === '0' ? '1' : '0')) } },
      ];
      const change = changes[pick % changes.length]!;
      if (s3Outcome(() => verifyRequest(change, lookup, now, { region: 'us-east-1' }), ['SignatureDoesNotMatch'])) {
        throw new Error(`a changed request verified (change ${pick % changes.length})`);
      }
    }),
    opts(200),
  );
  t.pass('reference-signed requests verify, changed ones are SignatureDoesNotMatch');
});

t.test('sigv4: arbitrary requests fail only with S3 errors', async (t) => {
  const fragment = fc.oneof(
    anyText,
    fc.constantFrom(
      'AWS4-HMAC-SHA256 ', 'AWS4-HMAC-SHA256', 'Credential=', 'AKFUZZ/20260304/us-east-1/s3/aws4_request', ', ', ',', 'SignedHeaders=',
      'host;x-amz-date', 'host;;', 'constructor;__proto__;host', 'Signature=', '0'.repeat(64), 'AWS ', '=', ' ', '/', 'X-Amz-Expires=',
    ),
  );
  const headerBag = fc.record(
    {
      authorization: fc.array(fragment, { maxLength: 10 }).map((a) => a.join('')),
      host: fc.oneof(fc.constant('127.0.0.1:9000'), anyText),
      'x-amz-date': fc.oneof(fc.constant('20260304T050607Z'), anyText),
      date: anyText,
      'x-amz-content-sha256': fc.oneof(fc.constantFrom('UNSIGNED-PAYLOAD', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', sha256Hex(''), 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD'), anyText),
      'x-amz-meta-x': anyText,
    },
    { requiredKeys: [] },
  );
  const presignQuery = fc
    .array(fc.tuple(fc.constantFrom('X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires', 'x-amz-expires', 'AWSAccessKeyId', 'Signature', 'uploads'), fragment), { maxLength: 8 })
    .map((pairs) => pairs.map(([k, v]) => `${k}=${encodeURIComponent(v.replace(/[\ud800-\udfff]/g, ''))}`).join('&'));
  fc.assert(
    fc.property(anyText, fc.oneof(anyText, presignQuery), headerBag, fc.constantFrom('GET', 'PUT', 'get', ''), (rawPath, rawQuery, headers, method) => {
      s3Outcome(() => verifyRequest({ method, rawPath, rawQuery, headers }, lookup, new Date('2026-03-04T05:06:07Z'), { region: 'us-east-1' }));
    }),
    opts(1000),
  );
  t.pass('verifyRequest: returns or throws S3Error');
});

// =============================================================================================
// aws-chunked

const KEY = signingKeyFor('fuzz-secret', '20260304');
const SIGNER = {
  signingKey: KEY,
  amzDate: '20260304T050607Z',
  scope: '20260304/us-east-1/s3/aws4_request',
  seedSignature: 'a'.repeat(64),
  accessKeyId: 'AKFUZZ',
  canonicalRequest: 'PUT\n/bkt/k\n\nhost:h\n\nhost\nSTREAMING-AWS4-HMAC-SHA256-PAYLOAD',
};

function decoderFor(mode: 'none' | 'unsigned' | 'signed', decodedLength: number): AwsChunkedDecoder {
  const options: ChunkedOptions = {
    trailer: mode,
    decodedLength,
    maxChunkSize: 64 * 1024,
    maxLineLength: 4096,
    maxTrailerBytes: 16 * 1024,
    minChunkSize: 0,
    ...(mode === 'signed' ? { signer: SIGNER } : {}),
  };
  return new AwsChunkedDecoder(options);
}

/** Cuts `buf` at the given fractions. */
function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(buf.subarray(from, p));
    from = p;
  }
  out.push(buf.subarray(from));
  return out;
}

function decodeChunked(decoder: AwsChunkedDecoder, pieces: readonly Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const piece of pieces) out.push(...decoder.push(piece));
  decoder.end();
  return Buffer.concat(out);
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

t.test('aws-chunked: valid encodings decode to the original, whatever the split', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), cuts, fc.boolean(), (bytes, chunkSize, split, withTrailer) => {
      const data = Buffer.from(bytes);
      const trailer = withTrailer ? { name: 'x-amz-checksum-crc32', value: 'AAAAAA==' } : undefined;
      const wire = unsignedChunkedBody(data, chunkSize, trailer);
      const decoder = decoderFor(withTrailer ? 'unsigned' : 'none', data.length);
      if (!decodeChunked(decoder, splitAt(wire, split)).equals(data)) throw new Error('unsigned: bytes differ');
      if (withTrailer && decoder.trailers.get('x-amz-checksum-crc32') !== 'AAAAAA==') throw new Error('trailer lost');
      const signedWire = signedChunkedBody(data, chunkSize, SIGNER, trailer);
      if (!decodeChunked(decoderFor('signed', data.length), splitAt(signedWire, split)).equals(data)) throw new Error('signed: bytes differ');
    }),
    opts(200),
  );
  t.pass('unsigned and signed framings round trip');
});

t.test('aws-chunked: arbitrary bytes and chunk-size lines fail only with S3 errors, never with wrong data', async (t) => {
  const sizeLine = fc.oneof(
    fc.stringMatching(/^[0-9a-fA-F]{1,18}$/),
    fc.constantFrom('0', '10', 'ffffffffffffffff', '-1', '', ' 1', '1 ', '0x10', '1;chunk-signature=', `1;chunk-signature=${'0'.repeat(64)}`, '1;a;b'),
    anyText,
  );
  const token = fc.oneof(
    sizeLine,
    fc.constantFrom('\r\n', '\n', '\r', ';chunk-signature=', 'x-amz-checksum-crc32:AAAAAA==', 'x-amz-trailer-signature:', ':', '\r\n\r\n'),
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
    fc.array(token, { maxLength: 30 }).map((parts) => Buffer.from(parts.join(''), 'latin1')),
  );
  fc.assert(
    fc.property(body, cuts, fc.constantFrom('none', 'unsigned', 'signed') as fc.Arbitrary<'none' | 'unsigned' | 'signed'>, fc.nat({ max: 200 }), (wire, split, mode, declared) => {
      const decoder = decoderFor(mode, declared);
      let out: Buffer | undefined;
      s3Outcome(() => (out = decodeChunked(decoder, splitAt(wire, split))));
      if (out !== undefined && out.length !== declared) throw new Error('accepted a body of the wrong length');
    }),
    opts(2000),
  );
  // Mutations of a valid signed body are never accepted with different bytes.
  const data = randomBytes(2000);
  const wire = signedChunkedBody(data, 500, SIGNER);
  fc.assert(
    fc.property(fc.nat({ max: wire.length - 1 }), fc.integer({ min: 1, max: 255 }), cuts, (at, delta, split) => {
      const mutated = Buffer.from(wire);
      mutated[at] = (mutated[at]! + delta) & 0xff;
      let out: Buffer | undefined;
      s3Outcome(() => (out = decodeChunked(decoderFor('signed', data.length), splitAt(mutated, split))));
      if (out !== undefined && !out.equals(data)) throw new Error(`a byte changed at ${at} was accepted`);
    }),
    opts(1000),
  );
  t.pass('the decoder returns the declared bytes or throws an S3Error');
});

// =============================================================================================
// Range

/** RFC 9110 / S3 single-range semantics, written independently of gateway/s3/range.ts. */
function modelRange(first: string, last: string, size: number): 'ignore' | 'unsatisfiable' | { start: number; end: number } {
  if (first === '' && last === '') return 'ignore';
  const n = (s: string) => (Number.isSafeInteger(Number(s)) ? Number(s) : Infinity);
  if (first === '') {
    const suffix = n(last);
    if (suffix === 0) return 'unsatisfiable';
    if (size === 0) return 'ignore';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = n(first);
  const end = last === '' ? Infinity : n(last);
  if (end < start) return 'ignore';
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}

t.test('range: any header and size give a range inside the object, the whole object, or InvalidRange', async (t) => {
  const digits = fc.oneof(fc.constant(''), fc.nat({ max: 5000 }).map(String), fc.stringMatching(/^[0-9]{1,25}$/));
  const structured = fc.tuple(fc.constantFrom('bytes=', 'BYTES=', 'bytes =', 'items=', ''), digits, fc.constantFrom('-', '--', ''), digits, fc.constantFrom('', ',0-1', ' ', ',')).map((p) => p.join(''));
  fc.assert(
    fc.property(fc.oneof(anyText, structured), fc.nat({ max: 4096 }), (header, size) => {
      let range: ReturnType<typeof parseRange>;
      if (!s3Outcome(() => (range = parseRange(header, size)), ['InvalidRange'])) return;
      if (range === undefined) return;
      if (!(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.start <= range.end && range.end < size)) {
        throw new Error(`range outside [0, ${size}): ${JSON.stringify(range)} for ${JSON.stringify(header)}`);
      }
    }),
    opts(2000),
  );
  fc.assert(
    fc.property(digits, digits, fc.nat({ max: 4096 }), (first, last, size) => {
      const expected = modelRange(first, last, size);
      let got: ReturnType<typeof parseRange> | 'unsatisfiable' = undefined;
      if (!s3Outcome(() => (got = parseRange(`bytes=${first}-${last}`, size)), ['InvalidRange'])) got = 'unsatisfiable';
      const same = expected === 'ignore' ? got === undefined : expected === 'unsatisfiable' ? got === 'unsatisfiable' : JSON.stringify(got) === JSON.stringify(expected);
      if (!same) throw new Error(`bytes=${first}-${last} of ${size}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    }),
    opts(2000),
  );
  t.pass('parseRange agrees with the model');
});

t.test('range: the segments read for a Range header (before the size is known) hold every byte parseRange serves, and no more', async (t) => {
  const digits = fc.oneof(fc.constant(''), fc.nat({ max: 5000 }).map(String), fc.stringMatching(/^[0-9]{1,25}$/));
  const header = fc.oneof(anyText, fc.tuple(fc.constantFrom('bytes=', 'BYTES=', 'items='), digits, fc.constantFrom('-', '--'), digits).map((p) => p.join('')));
  const segmentSizes = fc.array(fc.oneof(fc.nat({ max: 1500 }), fc.constant(0)), { maxLength: 8 });
  fc.assert(
    fc.property(header, segmentSizes, (h, sizes) => {
      const size = sizes.reduce((a, b) => a + b, 0);
      const record = { size, segments: sizes.map((n) => ({ size: n, placements: [] })) } as unknown as ObjectRecord;
      let range: ReturnType<typeof parseRange>;
      if (!s3Outcome(() => (range = parseRange(h, size)), ['InvalidRange'])) return;
      const select = rangeSelection(h);
      if (range === undefined || select === undefined) return;
      const view = selectSegments(record, select);
      const { first, offset } = view.segmentSlice!;
      const carried = view.segments.reduce((a, b) => a + b.size, 0);
      if (!(offset <= range.start && range.end < offset + carried)) throw new Error(`${JSON.stringify(h)} of ${JSON.stringify(sizes)}: ${JSON.stringify(range)} not in segments ${first}.. at ${offset} (${carried} bytes)`);
      if (JSON.stringify(view.segments) !== JSON.stringify(record.segments.slice(first, first + view.segments.length))) throw new Error('not the object\'s segments from `first` on');
      const firstEnd = offset + view.segments[0]!.size - 1;
      const lastStart = offset + carried - view.segments.at(-1)!.size;
      if (firstEnd < range.start || lastStart > range.end) throw new Error(`${JSON.stringify(h)} of ${JSON.stringify(sizes)}: more segments than the range needs`);
    }),
    opts(3000),
  );
  const record = { size: 30, segments: [10, 0, 10, 10].map((n) => ({ size: n, placements: [] })) } as unknown as ObjectRecord;
  t.same(selectSegments(record, { none: true }).segments, [], 'none: no segment');
  t.same(selectSegments(record, { start: 5, end: 12 }).segmentSlice, { first: 0, offset: 0 });
  t.equal(selectSegments(record, { start: 5, end: 12 }).segments.length, 3, 'an empty segment inside the run is kept');
  t.same(selectSegments(record, { suffix: 5 }).segmentSlice, { first: 3, offset: 20 }, 'a suffix: the last segment');
  t.same(selectSegments(record, { start: 40 }).segments, [], 'past the end: none');
  t.equal(selectSegments(record, undefined), record, 'no selection: the record as it is');
});

// =============================================================================================
// XML request bodies

const XML_TOKENS = [
  '<', '>', '</', '/>', '<?xml version="1.0" encoding="UTF-8"?>', '<?pi x?>', '<!DOCTYPE x [', '<!ENTITY a "b">', '<!ENTITY a SYSTEM "file:///etc/passwd">', ']>',
  '&a;', '&amp;', '&lt;', '&#x41;', '&#0;', '&#xD800;', '&#1114112;', '&', '<![CDATA[', ']]>', '<!--', '-->', 'Delete', 'Object', 'Key', 'VersionId', 'Quiet',
  'CompleteMultipartUpload', 'Part', 'PartNumber', 'ETag', 'ChecksumCRC32', 'CreateBucketConfiguration', 'LocationConstraint', 's3:', ' xmlns="x"',
  '"', "'", '=', ' ', '\n', 'x', '1', '10000', '10001', 'true', 'false', '\u0000', '\u00e9', '\ufffe',
];
const xmlish = fc.oneof(
  fc.array(fc.constantFrom(...XML_TOKENS), { maxLength: 60 }).map((t) => t.join('')),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
);

t.test('xml: arbitrary bodies are parsed or MalformedXML', async (t) => {
  const parsers = [parseXml, parseCompleteMultipartUpload, parseDeleteRequest, parseCreateBucketConfiguration] as ((input: string | Uint8Array) => unknown)[];
  fc.assert(
    fc.property(xmlish, fc.nat({ max: parsers.length - 1 }), (body, which) => {
      s3Outcome(() => parsers[which]!(body), ['MalformedXML']);
    }),
    opts(3000),
  );
  // Nested entity definitions never expand: refused at once, whatever the depth.
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 30 }), (depth, fanout) => {
      const defs = Array.from({ length: depth }, (_, i) => `<!ENTITY e${i + 1} "${`&e${i};`.repeat(fanout)}">`).join('');
      const doc = `<!DOCTYPE d [<!ENTITY e0 "x">${defs}]><Delete><Object><Key>&e${depth};</Key></Object></Delete>`;
      if (s3Outcome(() => parseDeleteRequest(doc), ['MalformedXML'])) throw new Error('a DOCTYPE was accepted');
    }),
    opts(50),
  );
  t.pass('parsers return or throw MalformedXML');
});

t.test('xml: what a client can write round trips', async (t) => {
  // Keys as an SDK sends them: any Unicode text but U+0000 and the non-characters XML 1.0 forbids.
  const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((k) => !/[\u0000\ufffe\uffff]/.test(k));
  fc.assert(
    fc.property(fc.array(key, { minLength: 1, maxLength: 20 }), fc.boolean(), (keys, quiet) => {
      const doc = `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>${quiet}</Quiet>${keys.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`;
      const parsed = parseDeleteRequest(Buffer.from(doc, 'utf8'));
      if (parsed.quiet !== quiet || parsed.objects.length !== keys.length || parsed.objects.some((o, i) => o.key !== keys[i])) throw new Error('Delete round trip');
    }),
    opts(),
  );
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 50 }), printable, (numbers, etag) => {
      const doc = `<CompleteMultipartUpload>${numbers.map((n) => `<Part><ETag>${escapeXml(`"${etag}"`)}</ETag><PartNumber>${n}</PartNumber></Part>`).join('')}</CompleteMultipartUpload>`;
      const parts = parseCompleteMultipartUpload(doc);
      if (parts.length !== numbers.length || parts.some((p, i) => p.partNumber !== numbers[i] || p.etag !== `"${etag}"`.trim())) throw new Error('Complete round trip');
    }),
    opts(),
  );
  t.pass('DeleteObjects and CompleteMultipartUpload bodies round trip');
});

// =============================================================================================
// Against a real gateway

interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Writes `request` on a fresh connection and reads until the gateway closes it (or `timeoutMs`). */
function exchange(port: number, request: Buffer, timeoutMs: number): Promise<{ raw: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const pieces: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ raw: Buffer.concat(pieces), timedOut: true });
    }, timeoutMs);
    socket.on('data', (d: Buffer) => pieces.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ raw: Buffer.concat(pieces), timedOut: false });
    });
    // Not end(): Node's server drops a request whose client half-closes before the answer.
    socket.on('connect', () => socket.write(request));
  });
}

/** The final response of a raw exchange: 1xx interim responses skipped, a chunked body decoded. */
function parseResponse(raw: Buffer): WireResponse | undefined {
  let rest = raw;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const lines = rest.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)?.[1] ?? NaN);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
    rest = rest.subarray(end + 4);
    if (status >= 100 && status < 200) continue;
    return { status, headers, body: headers['transfer-encoding'] === 'chunked' ? dechunk(rest) : rest.subarray(0, Number(headers['content-length'] ?? rest.length)) };
  }
}

function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', pos);
    if (eol < 0) return Buffer.concat(out);
    const size = parseInt(buf.subarray(pos, eol).toString('latin1'), 16);
    if (!(size > 0)) return Buffer.concat(out);
    out.push(buf.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
}

const ERROR_XML = /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*<Error><Code>[A-Za-z0-9]+<\/Code><Message>[^<]*<\/Message>[\s\S]*<RequestId>[0-9A-F]{16}<\/RequestId>[\s\S]*<\/Error>\s*$/;

/** One random request, mostly malformed, as raw bytes, drawn with `g` (seeded by fc.sample). */
function randomRequest(g: fc.GeneratorValue, port: number): Buffer {
  const host = `127.0.0.1:${port}`;
  const method = g(() => fc.oneof({ weight: 8, arbitrary: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD') }, { weight: 1, arbitrary: fc.constantFrom('OPTIONS', 'PATCH', 'PROPFIND', 'TRACE', 'CONNECT', 'GET ', 'G\u00c9T', 'get') }));
  const segment = fc.oneof(
    fc.constantFrom('fuzz', 'fuzz-bucket', 'FUZZ', 'no-such-bucket', '..', '.', '%2e%2e', '%00', '%ff', '%zz', '', '-', 'a'.repeat(300), '%E2%82%AC', '~', '*', '-/health'),
    fc.string({ unit: 'binary-ascii', maxLength: 12 }).map((s) => encodeURIComponent(s)),
    fc.stringMatching(/^[a-z0-9.-]{0,70}$/),
  );
  const pathValue = g(() =>
    fc.oneof(
      // Mostly into the bucket that exists, so requests get past the bucket lookup to the operations.
      { weight: 6, arbitrary: fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/fuzz/${s.join('/')}`) },
      { weight: 2, arbitrary: fc.constantFrom('/fuzz', '/fuzz/', '/fuzz/k', '/fuzz/a/b', '/fuzz/big', '/') },
      { weight: 3, arbitrary: fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => `/${s.join('/')}`) },
      { weight: 1, arbitrary: fc.constantFrom('*', 'http://evil/fuzz/k', '//', '/?', '') },
    ),
  );
  const queryPairs = g(() =>
    fc.array(
      fc.tuple(
        fc.constantFrom('uploads', 'uploadId', 'partNumber', 'delete', 'list-type', 'max-keys', 'prefix', 'delimiter', 'marker', 'continuation-token', 'encoding-type', 'location', 'acl', 'versionId', 'X-Amz-Expires', 'response-content-type', 'x'),
        fc.oneof(fc.constantFrom('', '1', '0', '-1', '2', '10001', '1000000000000', 'url', 'null', '%', 'abc'), fc.string({ maxLength: 10 })),
      ),
      { maxLength: 3 },
    ),
  );
  const query = Object.fromEntries(queryPairs);
  const bodyLength = g(() => fc.oneof(fc.constant(0), fc.nat({ max: 300 }), fc.constant(70_000)));
  const fill = g(() => fc.nat({ max: 255 }));
  const body = g(() => fc.oneof(
    fc.constant(Buffer.alloc(bodyLength, fill)),
    fc.constant(Buffer.from(`<Delete><Object><Key>k</Key></Object>${'<Object><Key>x</Key></Object>'.repeat(bodyLength % 5)}</Delete>`)),
    fc.constant(Buffer.from('<!DOCTYPE d [<!ENTITY a "b">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&a;</ETag></Part></CompleteMultipartUpload>')),
    fc.constant(Buffer.from(`${bodyLength.toString(16)}\r\n${'z'.repeat(bodyLength)}\r\n0\r\n\r\n`)),
  ));
  const extra: Record<string, string> = {};
  const headerNames = ['content-md5', 'range', 'x-amz-meta-a', 'x-amz-copy-source', 'x-amz-checksum-crc32', 'x-amz-trailer', 'content-encoding', 'x-amz-decoded-content-length',
    'if-match', 'if-none-match', 'expect', 'x-amz-sdk-checksum-algorithm', 'x-amz-metadata-directive', 'x-amz-checksum-algorithm', 'origin', 'content-type', 'x-amz-mp-object-size'];
  for (const name of g(() => fc.subarray(headerNames, { maxLength: 4 }))) {
    extra[name] = g(() => fc.oneof(fc.constantFrom('', '*', 'bytes=0-1', 'bytes=-0', 'bytes=5-1', '100-continue', 'aws-chunked', 'fuzz/k', '/fuzz/k?versionId=2', 'AAAAAA==', 'x-amz-checksum-crc32', 'CRC32', 'REPLACE', '99999999999999999'), fc.stringMatching(/^[ -~]{0,30}$/)));
  }
  const auth = g(() => fc.constantFrom('signed', 'signed', 'signed', 'unsigned', 'garbage', 'presigned-junk'));
  const payloadHash = g(() => fc.constantFrom(sha256Hex(body), 'UNSIGNED-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', sha256Hex('other')));
  const framing = g(() => fc.constantFrom('length', 'length', 'length', 'short', 'none', 'chunked'));
  if (framing === 'length' || framing === 'short') extra['content-length'] = String(body.length + (framing === 'short' ? -Math.min(body.length, 3) : 0));
  if (framing === 'chunked') extra['transfer-encoding'] = 'chunked';
  let target = pathValue;
  let headers: Record<string, string> = { host, ...extra };
  if (auth === 'signed') {
    const signedReq = referenceSign(`http://${host}`, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }, { method, path: pathValue, query, headers: extra, payloadHash });
    target = signedReq.path;
    headers = signedReq.headers;
  } else {
    const q = canonicalQueryString(query);
    target = q === '' ? pathValue : `${pathValue}?${q}`;
    if (auth === 'garbage') headers['authorization'] = g(() => fc.stringMatching(/^[ -~]{0,80}$/));
    if (auth === 'presigned-junk') target += `${target.includes('?') ? '&' : '?'}X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${ACCESS_KEY_ID}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=${g(() => fc.constantFrom('0', '60', '604801', '-5', 'x'))}`;
  }
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\nconnection: close\r\n\r\n`;
  let wireBody = body;
  if (framing === 'chunked') wireBody = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from(body.length > 0 ? '\r\n0\r\n\r\n' : '\r\n')]);
  if (framing === 'short') wireBody = body.subarray(0, Math.max(0, body.length - 3));
  return Buffer.concat([Buffer.from(head, 'latin1'), wireBody]);
}

t.test('end to end: a few hundred random malformed requests', async (t) => {
  const saved = process.env.CAIRN_BODY_TIMEOUT;
  process.env.CAIRN_BODY_TIMEOUT = '1s';
  let tc: TestCluster;
  try {
    tc = await startTestCluster({ nodes: 3, k: 2, m: 1, segmentSize: 512 * 1024 });
  } finally {
    if (saved === undefined) delete process.env.CAIRN_BODY_TIMEOUT;
    else process.env.CAIRN_BODY_TIMEOUT = saved;
  }
  t.teardown(() => tc.destroy());
  const port = Number(new URL(tc.cluster.endpoint).port);
  await tc.s3.send(new CreateBucketCommand({ Bucket: 'fuzz' }));
  // Objects the fuzzer may overwrite or delete (it signs its requests), and a bucket it never names.
  await tc.s3.send(new CreateBucketCommand({ Bucket: KEPT_BUCKET }));
  const kept = new Map<string, Buffer>();
  for (const key of ['k', 'a/b', '..', 'big']) {
    const data = randomBytes(key === 'big' ? 700_000 : 1000);
    kept.set(key, data);
    await tc.s3.send(new PutObjectCommand({ Bucket: 'fuzz', Key: key, Body: data }));
    await tc.s3.send(new PutObjectCommand({ Bucket: KEPT_BUCKET, Key: key, Body: data }));
  }

  const requests = fc.sample(fc.gen().map((g) => randomRequest(g, port)), { seed: SEED, numRuns: 500 });
  const byStatus = new Map<number, number>();
  const problems: string[] = [];
  const check = async (request: Buffer, i: number): Promise<void> => {
    const { raw, timedOut } = await exchange(port, request, 8000);
    const res = parseResponse(raw);
    const label = `#${i} ${JSON.stringify(request.subarray(0, Math.min(request.indexOf('\r\n'), 160)).toString('latin1'))}`;
    if (timedOut) return void problems.push(`${label}: no answer within 8 s`);
    if (res === undefined) return void problems.push(`${label}: no HTTP response (${raw.length} bytes)`);
    byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
    // 501 NotImplemented is S3's own answer (Transfer-Encoding: chunked, unsupported sub-resources).
    if (res.status >= 500 && res.status !== 501) problems.push(`${label}: ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
    if (res.status >= 400 && !request.toString('latin1').startsWith('HEAD ') && !ERROR_XML.test(res.body.toString('utf8'))) {
      problems.push(`${label}: ${res.status} without an S3 error document: ${JSON.stringify(res.body.toString('utf8').slice(0, 200))}`);
    }
    if (res.status >= 400 && !/^[0-9A-F]{16}$/.test(res.headers['x-amz-request-id'] ?? '')) problems.push(`${label}: ${res.status} without x-amz-request-id`);
    if (!(res.status >= 200 && res.status < 600)) problems.push(`${label}: status ${res.status}`);
  };
  const started = Date.now();
  let index = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (index < requests.length) {
      const i = index++;
      await check(requests[i]!, i);
    }
  }));
  t.comment(`${requests.length} requests in ${Date.now() - started} ms; statuses ${JSON.stringify(Object.fromEntries([...byStatus].sort((a, b) => a[0] - b[0])))}`);
  t.same(problems, [], 'every response is a success or a well-formed S3 error, never a 5xx');
  t.ok([...byStatus.keys()].some((s) => s < 300), 'some requests succeeded (the fuzzer reaches past authentication)');

  const health = await fetch(`${tc.cluster.endpoint}/-/health`);
  t.equal(health.status, 200, 'the gateway is healthy afterwards');
  t.equal(tc.cluster.services.get('gateway')?.child.exitCode, null, 'and its process alive');
  for (const [key, data] of kept) {
    const got = await tc.s3.send(new GetObjectCommand({ Bucket: KEPT_BUCKET, Key: key }));
    t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data), `${KEPT_BUCKET}/${key}: the same bytes after the fuzz`);
  }
  const after = randomBytes(300_000);
  await tc.s3.send(new PutObjectCommand({ Bucket: 'fuzz', Key: 'after', Body: after }));
  const back = await tc.s3.send(new GetObjectCommand({ Bucket: 'fuzz', Key: 'after' }));
  t.ok(Buffer.from(await back.Body!.transformToByteArray()).equals(after), 'a normal PUT and GET still work');
});

const KEPT_BUCKET = 'kept-data-untouched';
