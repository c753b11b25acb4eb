// Addressing, authentication and listing end to end, against the real cluster as OS processes:
// presigned URLs (@aws-sdk/s3-request-presigner + plain fetch), virtual-hosted-style requests
// (Host <bucket>.s3.localhost), CORS for browsers, every ListObjects/ListObjectsV2 parameter over
// keys of any UTF-8, bucket naming rules, and x-amz-request-id on every kind of response.
import t, { type Test } from 'tap';
import http from 'node:http';
import type { LookupFunction } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutBucketCorsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  paginateListObjectsV2,
  type ListObjectsCommandInput,
  type ListObjectsV2CommandInput,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { startTestCluster, ACCESS_KEY_ID, SECRET_ACCESS_KEY, type TestCluster } from './helpers/cluster.js';
import { bucketFromHost, hostName, parseDomains } from '../gateway/virtual-host.js';
import { originAllowed, parseCorsOrigins } from '../gateway/cors.js';

const DOMAIN = 's3.localhost';
const ALLOWED_ORIGIN = 'https://app.example.com';
const CORS_ORIGINS = `${ALLOWED_ORIGIN},https://*.trusted.test`;
const REQUEST_ID = /^[0-9A-F]{16}$/;

// ---------------------------------------------------------------------------------------------
// Helpers

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request to the gateway on loopback with any Host header (fetch may not set Host). */
function raw(port: number, method: string, pathAndQuery: string, headers: Record<string, string> = {}, body?: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathAndQuery, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends the request a presigned URL describes, with the URL's own Host, over loopback. */
function rawPresigned(port: number, method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<RawResponse> {
  const u = new URL(url);
  return raw(port, method, u.pathname + u.search, { host: u.host, ...headers }, body);
}

/** fetch, with the body read, in the shape the error checks take. */
async function fetchRaw(url: string | URL, init?: RequestInit): Promise<RawResponse> {
  const res = await fetch(url, init);
  return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.from(await res.arrayBuffer()) };
}

function xmlField(xml: string, name: string): string | undefined {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
}

function xmlFields(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1]!);
}

function checkRawError(t: Test, res: RawResponse, code: string, status: number, label = code): void {
  t.equal(res.status, status, `${label}: HTTP ${status}`);
  t.match(String(res.headers['x-amz-request-id']), REQUEST_ID, `${label}: has x-amz-request-id`);
  if (res.body.length > 0) {
    const xml = res.body.toString('utf8');
    t.equal(xmlField(xml, 'Code'), code, `${label}: code ${code}`);
    t.equal(xmlField(xml, 'RequestId'), res.headers['x-amz-request-id'], `${label}: RequestId matches the header`);
  }
}

async function expectS3Error(t: Test, promise: Promise<unknown>, code: string, status: number, label = code): Promise<S3ServiceException | undefined> {
  try {
    await promise;
    t.fail(`${label}: expected ${code}`);
    return undefined;
  } catch (err) {
    if (!(err instanceof S3ServiceException)) throw err;
    t.equal(err.name, code, `${label}: error code ${code}`);
    t.equal(err.$metadata.httpStatusCode, status, `${label}: HTTP ${status}`);
    t.match(err.$metadata.requestId ?? '', REQUEST_ID, `${label}: has x-amz-request-id`);
    return err;
  }
}

/** Node's resolver does not know *.localhost here; every name goes to the gateway on loopback. */
const loopbackLookup = ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void): void => {
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}) as unknown as LookupFunction;

function clientFor(endpoint: string, forcePathStyle: boolean, agent?: http.Agent): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
    ...(agent ? { requestHandler: { httpAgent: agent } } : {}),
  });
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

type Entry = { key: string } | { prefix: string };

/**
 * What S3 lists for `keys`: UTF-8 byte order, keys holding the delimiter after the prefix rolled
 * up into one common prefix each, and only entries that sort after start-after/marker.
 */
function referenceList(sortedKeys: readonly string[], o: { prefix?: string; delimiter?: string; after?: string }): Entry[] {
  const prefix = o.prefix ?? '';
  const out: Entry[] = [];
  const seen = new Set<string>();
  for (const key of sortedKeys) {
    if (!key.startsWith(prefix)) continue;
    const at = o.delimiter ? key.indexOf(o.delimiter, prefix.length) : -1;
    const entry = at >= 0 ? key.slice(0, at + o.delimiter!.length) : key;
    if (o.after !== undefined && utf8Compare(entry, o.after) <= 0) continue;
    if (at >= 0) {
      if (!seen.has(entry)) out.push({ prefix: entry });
      seen.add(entry);
    } else {
      out.push({ key });
    }
  }
  return out;
}

function entriesOf(contents: { Key?: string }[] | undefined, prefixes: { Prefix?: string }[] | undefined): Entry[] {
  const all: Entry[] = [...(contents ?? []).map((c) => ({ key: c.Key! })), ...(prefixes ?? []).map((p) => ({ prefix: p.Prefix! }))];
  return all.sort((a, b) => utf8Compare('key' in a ? a.key : a.prefix, 'key' in b ? b.key : b.prefix));
}

async function listAllV2(s3: S3Client, input: ListObjectsV2CommandInput, t: Test): Promise<{ entries: Entry[]; pages: number }> {
  const entries: Entry[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await s3.send(new ListObjectsV2Command({ ...input, ContinuationToken: token }));
    pages++;
    const got = entriesOf(page.Contents, page.CommonPrefixes);
    if (input.MaxKeys !== undefined) t.ok(got.length <= Math.min(input.MaxKeys, 1000), `page ${pages} holds at most ${input.MaxKeys} entries`);
    t.equal(page.KeyCount, got.length, 'KeyCount counts keys and common prefixes');
    entries.push(...got);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated) t.ok(token, 'a truncated page has a NextContinuationToken');
    if (pages > 3000) throw new Error('listing does not end');
  } while (token);
  return { entries, pages };
}

/** v1 as clients page it: NextMarker when S3 sends one (delimiter), else the last key. */
async function listAllV1(s3: S3Client, input: ListObjectsCommandInput, t: Test): Promise<Entry[]> {
  const entries: Entry[] = [];
  let marker = input.Marker;
  for (let pages = 0; ; pages++) {
    const page = await s3.send(new ListObjectsCommand({ ...input, Marker: marker }));
    const got = entriesOf(page.Contents, page.CommonPrefixes);
    entries.push(...got);
    if (!page.IsTruncated) {
      t.equal(page.NextMarker, undefined, 'the last page has no NextMarker');
      return entries;
    }
    if (input.Delimiter) t.ok(page.NextMarker, 'a truncated page with a delimiter has a NextMarker');
    else t.equal(page.NextMarker, undefined, 'without a delimiter S3 sends no NextMarker');
    const last = got[got.length - 1]!;
    marker = page.NextMarker ?? ('key' in last ? last.key : last.prefix);
    if (pages > 3000) throw new Error('listing does not end');
  }
}

/** Small pages where the listing is short, bigger ones where 1100 keys would mean 500 requests. */
function pageSizesFor(entries: number): number[] {
  return entries > 100 ? [1000, 300] : [1000, 2];
}

// ---------------------------------------------------------------------------------------------
// Pure parts

t.test('virtual host and CORS origin parsing', async (t) => {
  t.same(parseDomains(undefined), []);
  t.same(parseDomains(' S3.Example.com, .s3.localhost.,,'), ['s3.example.com', 's3.localhost']);
  t.equal(hostName('Bucket.S3.localhost:9000'), 'bucket.s3.localhost');
  t.equal(hostName('[::1]:9000'), '[::1]');
  const domains = ['s3.localhost', 'example.com', 's3.example.com'];
  t.equal(bucketFromHost('photos.s3.localhost:9000', domains), 'photos');
  t.equal(bucketFromHost('my.dotted.bucket.s3.localhost', domains), 'my.dotted.bucket');
  t.equal(bucketFromHost('photos.s3.example.com.', domains), 'photos', 'the longest domain wins; a trailing dot is the same host');
  t.equal(bucketFromHost('s3.localhost:9000', domains), undefined, 'the bare domain is path-style');
  t.equal(bucketFromHost('127.0.0.1:9000', domains), undefined, 'an IP address is path-style');
  t.equal(bucketFromHost('photos.other.test', domains), undefined, 'another name is path-style');
  t.equal(bucketFromHost('photos.s3.localhost', []), undefined, 'no domain configured: path-style only');
  t.equal(bucketFromHost(undefined, domains), undefined);

  t.same(parseCorsOrigins(undefined), ['*'], 'every origin by default');
  t.ok(originAllowed('http://anything.test:8080', parseCorsOrigins(undefined)));
  const origins = parseCorsOrigins(CORS_ORIGINS);
  t.ok(originAllowed(ALLOWED_ORIGIN, origins));
  t.ok(originAllowed('https://a.b.trusted.test', origins), 'one wildcard as in an S3 CORSRule');
  t.notOk(originAllowed('https://trusted.test', origins));
  t.notOk(originAllowed('http://app.example.com', origins), 'the scheme is part of the origin');
  t.notOk(originAllowed('https://evil.test', origins));
  t.throws(() => parseCorsOrigins('https://*.*.test'));
});

// ---------------------------------------------------------------------------------------------
// The cluster

t.test('addressing, authentication and listing through a real cluster', async (t) => {
  const env: TestCluster = await startTestCluster({ domain: DOMAIN, corsOrigins: CORS_ORIGINS });
  const agent = new http.Agent({ keepAlive: true, lookup: loopbackLookup });
  const port = Number(new URL(env.cluster.endpoint).port);
  const s3 = env.s3;
  // Virtual-hosted: the SDK sends Host <bucket>.s3.localhost:<port> and signs it.
  const vhost = clientFor(`http://${DOMAIN}:${port}`, false, agent);
  // Path-style against the bare domain name.
  const bareDomain = clientFor(`http://${DOMAIN}:${port}`, true, agent);
  t.teardown(async () => {
    vhost.destroy();
    bareDomain.destroy();
    agent.destroy();
    await env.destroy();
  });

  const BUCKET = 'access-bucket';
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

  await t.test('presigned URLs with plain fetch', async (t) => {
    const data = randomBytes(300_000);
    const key = 'presigned/a b+c%d/ü😀.bin';
    const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 300 });
    // The SDK signs the CRC32 of the (absent) body into the URL. Query-string checksums are not
    // checked (AWS: presigned URLs do not support the additional checksum algorithms); checking
    // it would fail every presigned upload made with the SDK's defaults.
    t.match(putUrl, /x-amz-checksum-crc32=AAAAAA%3D%3D/);
    const put = await fetch(putUrl, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/x-presigned' } });
    t.equal(put.status, 200, 'presigned PUT uploads');
    t.equal(put.headers.get('etag'), `"${createHash('md5').update(data).digest('hex')}"`, 'ETag is the MD5 of the body');
    t.match(put.headers.get('x-amz-request-id') ?? '', REQUEST_ID);

    const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 300 });
    const get = await fetch(getUrl);
    t.equal(get.status, 200);
    t.ok(Buffer.from(await get.arrayBuffer()).equals(data), 'presigned GET returns the uploaded bytes');
    t.equal(get.headers.get('content-type'), 'application/x-presigned', 'the unsigned Content-Type of the PUT was stored');

    const ranged = await fetch(getUrl, { headers: { Range: 'bytes=10-19' } });
    t.equal(ranged.status, 206);
    t.ok(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(10, 20)), 'an unsigned Range header is honoured');

    const headUrl = await getSignedUrl(s3, new HeadObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 300 });
    const head = await fetch(headUrl, { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.headers.get('content-length'), String(data.length));
    t.equal(head.headers.get('etag'), put.headers.get('etag'));

    // The SDK overrides a presigned GET's response headers through signed query parameters.
    const overridden = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: key, ResponseContentDisposition: 'attachment; filename="x.bin"' }), { expiresIn: 300 });
    const disposition = await fetchRaw(overridden);
    t.equal(disposition.status, 200, 'response-content-disposition is part of the signed query');
    t.equal(disposition.headers['content-disposition'], 'attachment; filename="x.bin"', 'and overrides the response header');

    // 304 and HEAD errors carry a request id too.
    const notModified = await fetch(getUrl, { headers: { 'If-None-Match': put.headers.get('etag')! } });
    t.equal(notModified.status, 304);
    t.match(notModified.headers.get('x-amz-request-id') ?? '', REQUEST_ID, 'a 304 has x-amz-request-id');
    const missingHead = await fetch(await getSignedUrl(s3, new HeadObjectCommand({ Bucket: BUCKET, Key: 'presigned/missing' })), { method: 'HEAD' });
    t.equal(missingHead.status, 404, 'presigned HEAD of a missing key is 404');
    t.match(missingHead.headers.get('x-amz-request-id') ?? '', REQUEST_ID, 'a HEAD error has x-amz-request-id');
    const missingGet = await fetchRaw(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'presigned/missing' })));
    checkRawError(t, missingGet, 'NoSuchKey', 404);

    // Signed two minutes ago, valid for one: expired.
    const expiredUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 60, signingDate: new Date(Date.now() - 120_000) });
    const expired = await fetchRaw(expiredUrl);
    const expiredXml = expired.body.toString();
    checkRawError(t, expired, 'AccessDenied', 403, 'expired URL');
    t.equal(xmlField(expiredXml, 'Message'), 'Request has expired');
    t.equal(xmlField(expiredXml, 'X-Amz-Expires'), '60');

    const tampered = new URL(getUrl);
    const signature = tampered.searchParams.get('X-Amz-Signature')!;
    tampered.searchParams.set('X-Amz-Signature', (signature[0] === '0' ? '1' : '0') + signature.slice(1));
    const bad = await fetchRaw(tampered);
    checkRawError(t, bad, 'SignatureDoesNotMatch', 403, 'tampered signature');
    t.equal(xmlField(bad.body.toString(), 'AWSAccessKeyId'), ACCESS_KEY_ID);

    // A different key under the same signature is a mismatch as well.
    const otherKey = new URL(getUrl);
    otherKey.pathname = otherKey.pathname.replace(/\.bin$/, '.bim');
    checkRawError(t, await fetchRaw(otherKey), 'SignatureDoesNotMatch', 403, 'the signature covers the key');

    const week = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 604800 });
    t.equal((await fetchRaw(week)).status, 200, 'X-Amz-Expires=604800 (a week) is allowed');
    const tooLong = new URL(week);
    tooLong.searchParams.set('X-Amz-Expires', '604801');
    const tooLongRes = await fetchRaw(tooLong);
    checkRawError(t, tooLongRes, 'AuthorizationQueryParametersError', 400, 'X-Amz-Expires > 604800');
    t.match(xmlField(tooLongRes.body.toString(), 'Message') ?? '', /less than 604800 seconds/);

    checkRawError(t, await fetchRaw(`${env.cluster.endpoint}/${BUCKET}/x`), 'AccessDenied', 403, 'an unsigned request');
  });

  await t.test('virtual-hosted-style requests', async (t) => {
    const bucket = 'vhost-bucket';
    const created = await vhost.send(new CreateBucketCommand({ Bucket: bucket }));
    t.equal(created.$metadata.httpStatusCode, 200, 'CreateBucket addressed by Host');
    await vhost.send(new HeadBucketCommand({ Bucket: bucket }));
    const keys = ['plain', 'dir/sub/file.txt', '/leading-slash', 'a//double', 'sp ace+plus%pct', 'ünï/😀'];
    for (const key of keys) {
      await vhost.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` }));
    }
    for (const key of keys) {
      const res = await vhost.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      t.equal(await res.Body!.transformToString(), `body of ${key}`, `virtual-hosted GET ${JSON.stringify(key)}`);
      const path = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      t.equal(await path.Body!.transformToString(), `body of ${key}`, `path-style over an IP reads ${JSON.stringify(key)}`);
    }
    const listed = await vhost.send(new ListObjectsV2Command({ Bucket: bucket }));
    t.same(listed.Contents?.map((c) => c.Key), [...keys].sort(utf8Compare), 'ListObjectsV2 by Host');
    const location = await vhost.send(new GetBucketLocationCommand({ Bucket: bucket }));
    t.notOk(location.LocationConstraint, 'GetBucketLocation by Host');

    // The bare domain stays path-style.
    const bare = await bareDomain.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/sub/file.txt' }));
    t.equal(await bare.Body!.transformToString(), 'body of dir/sub/file.txt', 'path-style against the bare domain');
    const buckets = await bareDomain.send(new ListBucketsCommand({}));
    t.ok(buckets.Buckets?.some((b) => b.Name === bucket), 'ListBuckets on the bare domain');

    // A presigned URL signs the virtual Host.
    const url = await getSignedUrl(vhost, new GetObjectCommand({ Bucket: bucket, Key: 'dir/sub/file.txt' }), { expiresIn: 60 });
    t.match(new URL(url).host, `${bucket}.${DOMAIN}:${port}`);
    const got = await rawPresigned(port, 'GET', url);
    t.equal(got.status, 200);
    t.equal(got.body.toString(), 'body of dir/sub/file.txt', 'presigned virtual-hosted GET');
    const otherHost = await rawPresigned(port, 'GET', url, { host: `other-bucket.${DOMAIN}:${port}` });
    checkRawError(t, otherHost, 'SignatureDoesNotMatch', 403, 'the signature covers the Host');

    await expectS3Error(t, vhost.send(new GetObjectCommand({ Bucket: 'no-such-vhost-bucket', Key: 'x' })), 'NoSuchBucket', 404, 'missing bucket by Host');
    for (const key of keys) await vhost.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    await vhost.send(new DeleteBucketCommand({ Bucket: bucket }));
    await expectS3Error(t, s3.send(new HeadBucketCommand({ Bucket: bucket })), 'NotFound', 404, 'deleted by Host');
  });

  await t.test('CORS', async (t) => {
    const key = 'cors/object.txt';
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'cors body' }));
    const path = `/${BUCKET}/${key}`;

    const pre = await raw(port, 'OPTIONS', `${path}?X-Amz-Signature=whatever`, {
      Origin: ALLOWED_ORIGIN,
      'Access-Control-Request-Method': 'PUT',
      'Access-Control-Request-Headers': 'content-type,x-amz-meta-owner',
    });
    t.equal(pre.status, 200, 'an allowed preflight is 200 without authentication');
    t.equal(pre.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
    t.same(String(pre.headers['access-control-allow-methods']).split(/,\s*/), ['GET', 'PUT', 'POST', 'DELETE', 'HEAD']);
    t.equal(pre.headers['access-control-allow-headers'], 'content-type,x-amz-meta-owner', 'requested headers are echoed');
    t.equal(pre.headers['access-control-max-age'], '3600');
    const exposed = String(pre.headers['access-control-expose-headers']).split(/,\s*/);
    for (const h of ['ETag', 'x-amz-request-id', 'x-amz-version-id', 'x-amz-checksum-crc32', 'x-amz-checksum-crc32c', 'x-amz-checksum-sha256']) {
      t.ok(exposed.includes(h), `${h} is exposed`);
    }
    t.match(String(pre.headers.vary), /Origin/);
    t.match(String(pre.headers['x-amz-request-id']), REQUEST_ID, 'a preflight has x-amz-request-id');
    t.equal(pre.body.length, 0);

    const wildcard = await raw(port, 'OPTIONS', `/${BUCKET}`, { Origin: 'https://x.trusted.test', 'Access-Control-Request-Method': 'GET' });
    t.equal(wildcard.status, 200, 'a wildcard origin pattern matches');
    t.equal(wildcard.headers['access-control-allow-origin'], 'https://x.trusted.test');
    t.notOk(wildcard.headers['access-control-allow-headers'], 'no headers requested, none allowed');

    const denied = await raw(port, 'OPTIONS', path, { Origin: 'https://evil.test', 'Access-Control-Request-Method': 'PUT' });
    checkRawError(t, denied, 'AccessForbidden', 403, 'preflight from a disallowed origin');
    const deniedXml = denied.body.toString();
    t.match(xmlField(deniedXml, 'Message') ?? '', /^CORSResponse: This CORS request is not allowed\./);
    t.equal(xmlField(deniedXml, 'Method'), 'PUT');
    t.equal(xmlField(deniedXml, 'ResourceType'), 'OBJECT');
    t.notOk(denied.headers['access-control-allow-origin'], 'no CORS headers for a refused origin');

    const noOrigin = await raw(port, 'OPTIONS', path, { 'Access-Control-Request-Method': 'GET' });
    checkRawError(t, noOrigin, 'BadRequest', 400, 'preflight without Origin');
    t.equal(xmlField(noOrigin.body.toString(), 'Message'), 'Insufficient information. Origin request header needed.');
    const badMethod = await raw(port, 'OPTIONS', path, { Origin: ALLOWED_ORIGIN, 'Access-Control-Request-Method': 'PATCH' });
    checkRawError(t, badMethod, 'BadRequest', 400, 'preflight for PATCH');
    t.equal(xmlField(badMethod.body.toString(), 'Message'), 'Invalid Access-Control-Request-Method: PATCH');
    const noMethod = await raw(port, 'OPTIONS', path, { Origin: ALLOWED_ORIGIN });
    checkRawError(t, noMethod, 'BadRequest', 400, 'preflight without a method');
    t.equal(xmlField(noMethod.body.toString(), 'Message'), 'Invalid Access-Control-Request-Method: null');

    // Actual requests: a presigned GET from the page's origin, successful and failing.
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 60 });
    const get = await rawPresigned(port, 'GET', url, { Origin: ALLOWED_ORIGIN });
    t.equal(get.status, 200);
    t.equal(get.body.toString(), 'cors body');
    t.equal(get.headers['access-control-allow-origin'], ALLOWED_ORIGIN, 'an actual response names the allowed origin');
    t.match(String(get.headers['access-control-expose-headers']), /ETag/);
    t.match(String(get.headers.vary), /Origin/);
    const missing = await rawPresigned(port, 'GET', await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'cors/none' })), { Origin: ALLOWED_ORIGIN });
    checkRawError(t, missing, 'NoSuchKey', 404, 'error from an allowed origin');
    t.equal(missing.headers['access-control-allow-origin'], ALLOWED_ORIGIN, 'errors carry CORS headers so page scripts can read them');
    const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: BUCKET, Key: 'cors/upload.bin' }), { expiresIn: 60 });
    const upload = await rawPresigned(port, 'PUT', putUrl, { Origin: ALLOWED_ORIGIN, 'Content-Type': 'application/octet-stream' }, Buffer.from('from a browser'));
    t.equal(upload.status, 200, 'a browser-style presigned PUT');
    t.equal(upload.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
    t.ok(upload.headers.etag, 'the ETag is there to be exposed');
    const evil = await rawPresigned(port, 'GET', url, { Origin: 'https://evil.test' });
    t.equal(evil.status, 200, 'the server still answers a refused origin (the browser enforces CORS)');
    t.notOk(evil.headers['access-control-allow-origin'], 'but without CORS headers');
    const noOriginGet = await rawPresigned(port, 'GET', url);
    t.notOk(noOriginGet.headers['access-control-allow-origin'], 'no Origin, no CORS headers');

    await expectS3Error(
      t,
      s3.send(new PutBucketCorsCommand({ Bucket: BUCKET, CORSConfiguration: { CORSRules: [{ AllowedMethods: ['GET'], AllowedOrigins: ['*'] }] } })),
      'NotImplemented',
      501,
      'PutBucketCors',
    );
  });

  await t.test('buckets: naming rules, HeadBucket, GetBucketLocation, ListBuckets', async (t) => {
    const invalid: Record<string, string> = {
      'too short': 'ab',
      'too long': 'a'.repeat(64),
      uppercase: 'MyBucket',
      underscore: 'my_bucket',
      'starts with a hyphen': '-bucket',
      'ends with a hyphen': 'bucket-',
      'starts with a dot': '.bucket',
      'ends with a dot': 'bucket.',
      'adjacent periods': 'my..bucket',
      'IP address': '192.168.5.4',
      'prefix xn--': 'xn--bucket',
      'prefix sthree-': 'sthree-bucket',
      'prefix sthree-configurator': 'sthree-configurator-b',
      'prefix amzn-s3-demo-': 'amzn-s3-demo-bucket',
      'suffix -s3alias': 'bucket-s3alias',
      'suffix --ol-s3': 'bucket--ol-s3',
      'suffix .mrap': 'bucket.mrap',
      'suffix --table-s3': 'bucket--table-s3',
      'dot next to hyphen': 'my.-bucket',
      'hyphen next to dot': 'my-.bucket',
      'space': 'my bucket',
    };
    for (const [rule, name] of Object.entries(invalid)) {
      await expectS3Error(t, s3.send(new CreateBucketCommand({ Bucket: name })), 'InvalidBucketName', 400, `${rule} (${JSON.stringify(name)})`);
    }
    // The SDK sends names ending in --x-s3 to S3 Express (directory buckets) with another signing
    // scheme, so this one is signed under a stand-in name and then sent under the real one.
    const express = new CreateBucketCommand({ Bucket: 'bucket--x-s4' });
    express.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { path: string };
        request.path = request.path.replace('bucket--x-s4', 'bucket--x-s3');
        return next(args);
      },
      { step: 'build', name: 'renameBucket' },
    );
    await expectS3Error(t, s3.send(express), 'InvalidBucketName', 400, 'suffix --x-s3 ("bucket--x-s3")');
    const valid = ['abc', 'a'.repeat(63), '1bucket2', 'my.dotted-bucket.name', '192.168.5.4x'];
    for (const name of valid) {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      await s3.send(new HeadBucketCommand({ Bucket: name }));
    }
    const listed = await s3.send(new ListBucketsCommand({}));
    const names = listed.Buckets?.map((b) => b.Name) ?? [];
    for (const name of [BUCKET, ...valid]) t.ok(names.includes(name), `ListBuckets shows ${name}`);
    t.same(names, [...names].sort(), 'ListBuckets is sorted by name');
    t.ok(listed.Owner?.ID, 'ListBuckets names the owner');
    t.match(listed.$metadata.requestId ?? '', REQUEST_ID);
    for (const name of valid) await s3.send(new DeleteBucketCommand({ Bucket: name }));

    const head = await s3.send(new HeadBucketCommand({ Bucket: BUCKET }));
    t.equal(head.BucketRegion, 'us-east-1');
    await expectS3Error(t, s3.send(new HeadBucketCommand({ Bucket: 'no-such-bucket-here' })), 'NotFound', 404, 'HeadBucket of a missing bucket');
    const headRaw = await raw(port, 'HEAD', '/no-such-bucket-here', {});
    t.equal(headRaw.status, 403, 'an anonymous HEAD is denied before the bucket is looked up');
    t.match(String(headRaw.headers['x-amz-request-id']), REQUEST_ID, 'HEAD errors have x-amz-request-id');
    checkRawError(t, await raw(port, 'GET', `/${BUCKET}/bad%E0%A4%A`), 'InvalidURI', 400, 'a malformed percent-encoding');

    const location = await s3.send(new GetBucketLocationCommand({ Bucket: BUCKET }));
    t.notOk(location.LocationConstraint, 'us-east-1 is an empty LocationConstraint');
    const locationUrl = await getSignedUrl(s3, new GetBucketLocationCommand({ Bucket: BUCKET }));
    const locationXml = (await rawPresigned(port, 'GET', locationUrl)).body.toString();
    t.match(locationXml, /<LocationConstraint xmlns="http:\/\/s3\.amazonaws\.com\/doc\/2006-03-01\/"><\/LocationConstraint>/);
    await expectS3Error(t, s3.send(new GetBucketLocationCommand({ Bucket: 'no-such-bucket-here' })), 'NoSuchBucket', 404, 'GetBucketLocation of a missing bucket');
  });

  await t.test('listing', async (t) => {
    const bucket = 'listing-bucket';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const special = [
      'a',
      'a b',
      'a+b',
      'a%b',
      'a%2Fb',
      'a=b&c',
      'a<b>"\'',
      '/leading',
      '//double-leading',
      'dir/x',
      'dir/y',
      'dir//z',
      'dir/sub/1',
      'dir/sub/2',
      'dir/sub/deeper/3',
      'ünïcödé/ä',
      '日本語/キー',
      '😀/emoji',
      'emoji😀tail',
      '\u{10FFFF}last-plane',
      'ﬀ-ligature',
      'multi::delim::a',
      'multi::delim::b',
      'multi::x',
      'multi:single',
      'trailing/',
      'z',
    ];
    const longAscii = 'long/' + 'k'.repeat(1024 - 5);
    const longMultibyte = 'long€/' + '€'.repeat(338) + 'xy'; // 3-byte characters, 1024 bytes in all
    const many = Array.from({ length: 1010 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    const keys = [...special, longAscii, longMultibyte, ...many];
    t.equal(Buffer.byteLength(longAscii), 1024);
    t.equal(Buffer.byteLength(longMultibyte), 1024);

    // Empty objects store no shards: 1100+ of them only cost namespace commits.
    const queue = [...keys];
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key.length < 100 ? key : Buffer.alloc(0) }));
        }
      }),
    );
    t.comment(`${keys.length} PUTs in ${Date.now() - started} ms`);
    const sorted = [...keys].sort(utf8Compare);
    t.not(sorted.join('\n'), [...keys].sort().join('\n'), 'UTF-8 byte order differs from UTF-16 order for these keys');

    const tooLong = 'long/' + 'k'.repeat(1020);
    await expectS3Error(t, s3.send(new PutObjectCommand({ Bucket: bucket, Key: tooLong, Body: 'x' })), 'KeyTooLongError', 400, '1025-byte key');
    const long = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: longMultibyte }));
    await long.Body!.transformToString();
    t.equal(long.$metadata.httpStatusCode, 200, 'a 1024-byte key reads back');

    await t.test('ListObjectsV2: every page size, against a reference sort', async (t) => {
      const full = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      t.equal(full.Contents?.length, 1000, 'at most 1000 keys by default');
      t.equal(full.MaxKeys, 1000);
      t.equal(full.IsTruncated, true);
      t.same(full.Contents!.map((c) => c.Key), sorted.slice(0, 1000), 'the first page, in UTF-8 byte order');
      t.equal(full.Contents!.find((c) => c.Key === 'a')!.Size, 1);
      t.equal(full.Contents![0]!.Owner, undefined, 'no Owner unless fetch-owner');
      t.equal(full.Contents![0]!.StorageClass, 'STANDARD');
      t.match(full.Contents![0]!.ETag ?? '', /^"[0-9a-f]{32}"$/);

      const clamped = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 5000 }));
      t.equal(clamped.Contents?.length, 1000, 'max-keys above 1000 is clamped to 1000');
      t.equal(clamped.IsTruncated, true);

      const zero = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 0 }));
      t.equal(zero.KeyCount, 0, 'max-keys=0 lists nothing');
      t.equal(zero.Contents, undefined);
      t.equal(zero.IsTruncated, false);
      t.equal(zero.MaxKeys, 0);

      for (const maxKeys of [1000, 333]) {
        const { entries, pages } = await listAllV2(s3, { Bucket: bucket, MaxKeys: maxKeys }, t);
        t.same(entries, sorted.map((key) => ({ key })), `pages of ${maxKeys} list every key once, in order`);
        t.equal(pages, Math.ceil(sorted.length / maxKeys));
      }
      const paged: string[] = [];
      for await (const page of paginateListObjectsV2({ client: s3, pageSize: 250 }, { Bucket: bucket })) paged.push(...(page.Contents ?? []).map((c) => c.Key!));
      t.same(paged, sorted, 'the SDK paginator lists every key once');

      const { entries } = await listAllV2(s3, { Bucket: bucket, MaxKeys: 1, StartAfter: 'many/1005' }, t);
      t.same(entries, referenceList(sorted, { after: 'many/1005' }), 'pages of 1 after start-after');
      const ones = await listAllV2(s3, { Bucket: bucket, MaxKeys: 1, Prefix: 'a' }, t);
      t.same(ones.entries, referenceList(sorted, { prefix: 'a' }), 'pages of 1 under a prefix');

      const owned = await s3.send(new ListObjectsV2Command({ Bucket: bucket, FetchOwner: true, MaxKeys: 2 }));
      t.equal(owned.Contents![0]!.Owner?.ID, 'root', 'fetch-owner=true adds the Owner (the root credentials are user "root")');
    });

    await t.test('ListObjectsV2: prefix, delimiter, start-after', async (t) => {
      const cases: { prefix?: string; delimiter?: string; after?: string }[] = [
        { delimiter: '/' },
        { prefix: 'dir/', delimiter: '/' },
        { prefix: 'dir/sub/', delimiter: '/' },
        { prefix: 'dir', delimiter: '/' },
        { prefix: '/', delimiter: '/' },
        { prefix: '', delimiter: '//' },
        { delimiter: '::' },
        { prefix: 'multi::', delimiter: '::' },
        { delimiter: '😀' },
        { delimiter: 'b' },
        { prefix: 'a' },
        { prefix: 'ünï' },
        { prefix: '日本語/' },
        { prefix: 'no-such-prefix', delimiter: '/' },
        { after: 'dir/sub/1' },
        { after: 'z' },
        { prefix: 'dir/', after: 'dir/sub/deeper/3' },
        { delimiter: '/', after: 'a%b' },
        { delimiter: '/', after: 'dir/' },
        { delimiter: '/', after: 'many/' },
        { prefix: 'dir/', delimiter: '/', after: 'dir/sub/' },
      ];
      for (const c of cases) {
        const expected = referenceList(sorted, c);
        const label = JSON.stringify(c);
        for (const maxKeys of pageSizesFor(expected.length)) {
          const { entries } = await listAllV2(s3, { Bucket: bucket, Prefix: c.prefix, Delimiter: c.delimiter, StartAfter: c.after, MaxKeys: maxKeys }, t);
          t.same(entries, expected, `${label} in pages of ${maxKeys}`);
        }
      }
      const top = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }));
      t.same(
        top.CommonPrefixes?.map((p) => p.Prefix),
        ['/', 'dir/', 'long/', 'long€/', 'many/', 'trailing/', 'ünïcödé/', '日本語/', '😀/'],
        'CommonPrefixes in UTF-8 byte order',
      );
      t.equal(top.Delimiter, '/');
      t.equal(top.Prefix, '');
      const sub = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'dir/', Delimiter: '/', StartAfter: 'dir/sub/' }));
      t.equal(sub.StartAfter, 'dir/sub/', 'StartAfter is echoed');
      t.same(entriesOf(sub.Contents, sub.CommonPrefixes), [{ key: 'dir/x' }, { key: 'dir/y' }], 'start-after a common prefix skips it');
    });

    await t.test('ListObjects (v1): marker and NextMarker', async (t) => {
      const v1 = await s3.send(new ListObjectsCommand({ Bucket: bucket }));
      t.equal(v1.Contents?.length, 1000);
      t.equal(v1.IsTruncated, true);
      t.equal(v1.NextMarker, undefined, 'no NextMarker without a delimiter');
      t.equal(v1.Contents![0]!.Owner?.ID, 'root', 'v1 always has the Owner');
      t.equal(v1.Marker, '');
      const cases: { prefix?: string; delimiter?: string; after?: string }[] = [
        {},
        { delimiter: '/' },
        { prefix: 'dir/', delimiter: '/' },
        { delimiter: '::' },
        { prefix: 'a', after: 'a b' },
        { delimiter: '/', after: 'dir/' },
      ];
      for (const c of cases) {
        const expected = referenceList(sorted, c);
        for (const maxKeys of pageSizesFor(expected.length)) {
          const entries = await listAllV1(s3, { Bucket: bucket, Prefix: c.prefix, Delimiter: c.delimiter, Marker: c.after, MaxKeys: maxKeys }, t);
          t.same(entries, expected, `v1 ${JSON.stringify(c)} in pages of ${maxKeys}`);
        }
      }
      const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Delimiter: '/', MaxKeys: 2, Marker: 'dir/' }));
      t.equal(page.Marker, 'dir/', 'Marker is echoed');
      t.equal(page.NextMarker, entriesOf(page.Contents, page.CommonPrefixes).map((e) => ('key' in e ? e.key : e.prefix))[1], 'NextMarker is the last entry');
    });

    await t.test('encoding-type=url', async (t) => {
      const url = await getSignedUrl(s3, new ListObjectsV2Command({ Bucket: bucket, EncodingType: 'url', Prefix: 'a', Delimiter: ' ', StartAfter: 'a' }));
      const res = await rawPresigned(port, 'GET', url);
      t.equal(res.status, 200);
      const xml = res.body.toString();
      t.equal(xmlField(xml, 'EncodingType'), 'url');
      t.equal(xmlField(xml, 'Delimiter'), '+', 'the delimiter is encoded too');
      t.equal(xmlField(xml, 'StartAfter'), 'a');
      t.same(xmlFields(xml, 'Key'), ['a%252Fb', 'a%25b', 'a%2Bb', 'a%3Cb%3E%22%27', 'a%3Db%26c'], 'keys are percent-encoded, / kept');
      t.same(xmlFields(xml, 'Prefix').slice(1), ['a+'], 'common prefixes are encoded; space is +');
      const unicode = await rawPresigned(port, 'GET', await getSignedUrl(s3, new ListObjectsV2Command({ Bucket: bucket, EncodingType: 'url', Prefix: '日本語/' })));
      t.same(xmlFields(unicode.body.toString(), 'Key'), ['%E6%97%A5%E6%9C%AC%E8%AA%9E/%E3%82%AD%E3%83%BC']);
      t.equal(xmlField(unicode.body.toString(), 'Prefix'), '%E6%97%A5%E6%9C%AC%E8%AA%9E/');

      const v1url = await getSignedUrl(s3, new ListObjectsCommand({ Bucket: bucket, EncodingType: 'url', Prefix: 'a', Marker: 'a b', Delimiter: '%', MaxKeys: 1 }));
      const v1xml = (await rawPresigned(port, 'GET', v1url)).body.toString();
      t.equal(xmlField(v1xml, 'Marker'), 'a+b');
      t.equal(xmlField(v1xml, 'Delimiter'), '%25');
      t.equal(xmlField(v1xml, 'NextMarker'), 'a%25', 'NextMarker is encoded');

      const sdk = await s3.send(new ListObjectsV2Command({ Bucket: bucket, EncodingType: 'url', Prefix: 'a' }));
      t.equal(sdk.EncodingType, 'url');
      const names = (sdk.Contents ?? []).map((c) => c.Key!);
      t.same(names.map((k) => decodeURIComponent(k.replace(/\+/g, ' '))), referenceList(sorted, { prefix: 'a' }).map((e) => ('key' in e ? e.key : e.prefix)), 'the encoded keys decode to the stored keys');

      const plain = await rawPresigned(port, 'GET', await getSignedUrl(s3, new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a<' })));
      t.same(xmlFields(plain.body.toString(), 'Key'), ['a&lt;b&gt;&quot;&apos;'], 'without encoding-type keys are XML-escaped');
    });

    await t.test('listing errors', async (t) => {
      await expectS3Error(t, s3.send(new ListObjectsV2Command({ Bucket: 'no-such-listing-bucket' })), 'NoSuchBucket', 404, 'ListObjectsV2 of a missing bucket');
      await expectS3Error(t, s3.send(new ListObjectsCommand({ Bucket: 'no-such-listing-bucket' })), 'NoSuchBucket', 404, 'ListObjects of a missing bucket');
      await expectS3Error(t, s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: 'not-a-token!' })), 'InvalidArgument', 400, 'a bad continuation token');
      await expectS3Error(t, s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: -1 })), 'InvalidArgument', 400, 'negative max-keys');
      await expectS3Error(t, s3.send(new ListObjectsV2Command({ Bucket: bucket, EncodingType: 'base64' as 'url' })), 'InvalidArgument', 400, 'an unknown encoding-type');
    });
  });
});
