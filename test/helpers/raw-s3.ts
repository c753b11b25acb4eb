// Test helper: S3 requests the SDK cannot express — signed by @smithy/signature-v4 (the SDK's own
// signer) and sent byte for byte with node:http — and reference aws-chunked encoders written from
// the SigV4 streaming specification, independent of the gateway's code.
import http from 'node:http';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface RawRequest {
  method: string;
  /** As sent on the wire (already percent-encoded), e.g. "/bucket/my%20key". */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer;
  /** x-amz-content-sha256; defaults to the hex SHA-256 of the body. */
  payloadHash?: string;
}

export interface SignedRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  /** What aws-chunked bodies need to sign their chunks: the seed signature and the signing scope. */
  seedSignature: string;
  amzDate: string;
  scope: string;
  signingKey: Buffer;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Response header values exactly as their bytes arrived (Node decodes them as latin1). */
  rawHeaders: string[];
}

export const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

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

/** The SigV4 signing key straight from the specification. */
export function signingKeyFor(secret: string, date: string, region = 'us-east-1', service = 's3'): Buffer {
  const h = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  return h(h(h(h(`AWS4${secret}`, date), region), service), 'aws4_request');
}

function encodeQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`)
    .join('&');
}

export async function signRequest(endpoint: string, credentials: Credentials, req: RawRequest): Promise<SignedRequest> {
  const base = new URL(endpoint);
  const body = req.body ?? Buffer.alloc(0);
  const headers: Record<string, string> = {
    host: base.host,
    'x-amz-content-sha256': req.payloadHash ?? sha256Hex(body),
    ...req.headers,
  };
  const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials, sha256: Sha256, uriEscapePath: false, applyChecksum: false });
  const signed = await signer.sign({
    method: req.method,
    protocol: base.protocol,
    hostname: base.hostname,
    port: Number(base.port),
    path: req.path,
    query: req.query ?? {},
    headers,
  });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) out[k.toLowerCase()] = String(v);
  const auth = out['authorization']!;
  const seedSignature = /Signature=([0-9a-f]{64})/.exec(auth)![1]!;
  const scope = /Credential=[^/]+\/([^,]+),/.exec(auth)![1]!;
  const amzDate = out['x-amz-date']!;
  const url = new URL(req.path, base);
  url.search = req.query ? encodeQuery(req.query) : '';
  return { method: req.method, url, headers: out, seedSignature, amzDate, scope, signingKey: signingKeyFor(credentials.secretAccessKey, amzDate.slice(0, 8)) };
}

export function send(method: string, url: URL, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
  return exchange(url, { method, headers, agent: false }, body);
}

/** Sends `pathAndQuery` byte for byte: unlike a URL, "..", "%2e" and "//" are not normalised away. */
export function sendPath(endpoint: string, method: string, pathAndQuery: string, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
  return exchange(new URL(endpoint), { method, headers, agent: false, path: pathAndQuery }, body);
}

function exchange(url: URL, options: http.RequestOptions, body?: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, options, (res) => {
      const pieces: Buffer[] = [];
      res.on('data', (d: Buffer) => pieces.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(pieces), rawHeaders: res.rawHeaders }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Signs and sends; the body goes with an explicit Content-Length unless the caller set its own framing. */
export async function rawRequest(endpoint: string, credentials: Credentials, req: RawRequest): Promise<RawResponse> {
  const body = req.body ?? Buffer.alloc(0);
  const headers = { ...req.headers };
  if (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined && (body.length > 0 || req.method === 'PUT' || req.method === 'POST')) {
    headers['content-length'] = String(body.length);
  }
  const signed = await signRequest(endpoint, credentials, { ...req, headers });
  return send(req.method, signed.url, signed.headers, body);
}

/**
 * The path is signed as is (S3 does not normalise "." or ".."); headers (lowercase) get host,
 * x-amz-date and x-amz-content-sha256 unless given; the body is the caller's to send.
 */
export interface ReferenceSignOptions extends Omit<RawRequest, 'body' | 'payloadHash'> {
  /** x-amz-content-sha256; defaults to UNSIGNED-PAYLOAD. */
  payloadHash?: string;
  date?: Date;
  region?: string;
  service?: string;
  /** The date in the credential scope; defaults to x-amz-date's day. */
  scopeDate?: string;
  /** Defaults to every header, sorted. */
  signedHeaders?: string[];
  /** Send the time as a Date header (RFC 7231) instead of x-amz-date. */
  dateHeader?: boolean;
}

const uriEncode = (text: string): string =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** A query string in SigV4 canonical form (which is also a valid query to send). */
export function canonicalQueryString(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function amzDateOf(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function signatureOf(secret: string, scope: string, amzDate: string, canonicalRequest: string): string {
  const [day, region, service] = scope.split('/') as [string, string, string];
  const key = signingKeyFor(secret, day, region, service);
  return createHmac('sha256', key).update(['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n')).digest('hex');
}

/**
 * Header-signed SigV4 straight from the specification, with every knob a test of the verifier
 * needs (clock, region, service, scope date, which headers are signed). Returns the path with its
 * query and the headers to send.
 */
export function referenceSign(endpoint: string, credentials: Credentials, o: ReferenceSignOptions): { path: string; headers: Record<string, string> } {
  const date = o.date ?? new Date();
  const amzDate = amzDateOf(date);
  const headers: Record<string, string> = {
    host: new URL(endpoint).host,
    ...(o.dateHeader ? { date: date.toUTCString() } : { 'x-amz-date': amzDate }),
    'x-amz-content-sha256': o.payloadHash ?? 'UNSIGNED-PAYLOAD',
    ...o.headers,
  };
  const signed = o.signedHeaders ?? Object.keys(headers).sort();
  const query = canonicalQueryString(o.query ?? {});
  const canonical = [
    o.method,
    o.path,
    query,
    signed.map((n) => `${n}:${(Object.hasOwn(headers, n) ? headers[n]! : '').trim()}\n`).join(''),
    signed.join(';'),
    headers['x-amz-content-sha256'],
  ].join('\n');
  const scope = `${o.scopeDate ?? amzDate.slice(0, 8)}/${o.region ?? 'us-east-1'}/${o.service ?? 's3'}/aws4_request`;
  const signature = signatureOf(credentials.secretAccessKey, scope, amzDate, canonical);
  headers['authorization'] = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return { path: query === '' ? o.path : `${o.path}?${query}`, headers };
}

/** A presigned URL's path and query (host signed, UNSIGNED-PAYLOAD), from the specification. */
export function referencePresign(
  endpoint: string,
  credentials: Credentials,
  o: { method: string; path: string; expires: number | string; date?: Date; region?: string; query?: Record<string, string> },
): string {
  const amzDate = amzDateOf(o.date ?? new Date());
  const scope = `${amzDate.slice(0, 8)}/${o.region ?? 'us-east-1'}/s3/aws4_request`;
  const query: Record<string, string> = {
    ...o.query,
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Credential': `${credentials.accessKeyId}/${scope}`,
    'X-Amz-Date': amzDate,
    'X-Amz-Expires': String(o.expires),
    'X-Amz-SignedHeaders': 'host',
  };
  const canonical = [o.method, o.path, canonicalQueryString(query), `host:${new URL(endpoint).host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const signature = signatureOf(credentials.secretAccessKey, scope, amzDate, canonical);
  return `${o.path}?${canonicalQueryString({ ...query, 'X-Amz-Signature': signature })}`;
}

/** The XML <Code> of an error body. */
export function errorCode(res: RawResponse): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(res.body.toString('utf8'))?.[1];
}

export { signedChunkedBody, unsignedChunkedBody, splitEvery } from './aws-chunked.js';
