// A lean S3 client with SigV4 header auth and unsigned payloads: small-object load, ranged GETs
// and listings, where the AWS SDK's per-request CPU cost would make the load generator the
// bottleneck. Both systems under test get exactly the same requests, over lean-http.ts.
import type { Verifier } from '../data.js';
import { LeanPool, type LeanRequest, type LeanResponse } from './lean-http.js';
import { encodePath, encodeQuery, Signer, type Credentials } from './sigv4.js';

export interface RawOptions {
  /** Keep-alive connections (one per concurrent client). */
  connections: number;
  timeoutMs?: number;
}

export interface ListPage {
  keys: number;
  firstKey?: string;
  lastKey?: string;
  prefixes: number;
  truncated: boolean;
  next?: string;
}

export class S3HttpError extends Error {
  constructor(readonly status: number, readonly body: string, what: string) {
    super(`${what}: HTTP ${status} ${/<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? body.slice(0, 200)}`);
  }
}

export class RawS3 {
  private readonly pool: LeanPool;
  private readonly signer: Signer;
  private readonly host: string;

  constructor(readonly endpoint: string, creds: Credentials, opts: RawOptions) {
    const url = new URL(endpoint);
    this.host = url.host;
    this.signer = new Signer(creds);
    const timeout = opts.timeoutMs ?? 120_000;
    this.pool = new LeanPool(url.origin, { connections: opts.connections, timeoutMs: timeout });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }

  async createBucket(bucket: string): Promise<void> {
    const res = await this.send('PUT', encodePath(bucket), {}, {}, undefined);
    const body = res.body.toString('utf8');
    // s3rver answers BucketAlreadyExists for its own bucket; Cairn, BucketAlreadyOwnedByYou.
    if (res.statusCode !== 200 && !/BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(body)) throw new S3HttpError(res.statusCode, body, `create bucket ${bucket}`);
  }

  async put(bucket: string, key: string, body: Buffer, signal?: AbortSignal): Promise<void> {
    const res = await this.send('PUT', encodePath(bucket, key), {}, { 'content-length': String(body.length) }, body, signal);
    if (res.statusCode !== 200) throw new S3HttpError(res.statusCode, res.body.toString('utf8'), `PUT ${key}`);
  }

  /** GET (optionally a byte range, inclusive end) and feed every chunk to `verifier`. Returns bytes received. */
  async get(bucket: string, key: string, verifier: Verifier, range?: [number, number], signal?: AbortSignal): Promise<number> {
    const headers: Record<string, string> = range ? { range: `bytes=${range[0]}-${range[1]}` } : {};
    const expected = range ? 206 : 200;
    // The body goes to the verifier as it arrives; an error's body is kept for the message.
    const sink = (status: number) => (status === expected ? (chunk: Buffer) => verifier.update(chunk) : undefined);
    const res = await this.send('GET', encodePath(bucket, key), {}, headers, undefined, signal, sink);
    if (res.statusCode !== expected) throw new S3HttpError(res.statusCode, res.body.toString('utf8'), `GET ${key}`);
    return verifier.bytes;
  }

  async head(bucket: string, key: string): Promise<number> {
    const res = await this.send('HEAD', encodePath(bucket, key), {}, {}, undefined);
    if (res.statusCode !== 200) throw new S3HttpError(res.statusCode, '', `HEAD ${key}`);
    return Number(res.headers['content-length']);
  }

  /** One ListObjectsV2 page, parsed just enough to count and chain (the SDK's XML parser costs more than the server). */
  async listPage(bucket: string, q: { prefix?: string; delimiter?: string; continuation?: string; maxKeys?: number }, signal?: AbortSignal): Promise<ListPage> {
    const query: Record<string, string> = { 'list-type': '2' };
    if (q.prefix) query.prefix = q.prefix;
    if (q.delimiter) query.delimiter = q.delimiter;
    if (q.continuation) query['continuation-token'] = q.continuation;
    if (q.maxKeys !== undefined) query['max-keys'] = String(q.maxKeys);
    const res = await this.send('GET', encodePath(bucket), query, {}, undefined, signal);
    // Scanned as bytes: decoding a 200 KB page to a string cost this client 1.4 ms a page, as much
    // as the gateway's own work, and the listing loop waits for it. Keys are compared as bytes,
    // which is also S3's order (UTF-8 binary); only the first and the last are decoded.
    const xml = res.body;
    if (res.statusCode !== 200) throw new S3HttpError(res.statusCode, xml.toString('utf8'), `list ${bucket}`);
    let keys = 0;
    let first: [number, number] | undefined;
    let last: [number, number] | undefined;
    for (let at = xml.indexOf(KEY_OPEN); at !== -1; at = xml.indexOf(KEY_OPEN, at + KEY_OPEN.length)) {
      keys++;
      const start = at + KEY_OPEN.length;
      last = [start, xml.indexOf(KEY_CLOSE, start)];
      first ??= last;
    }
    let prefixes = 0;
    for (let at = xml.indexOf(PREFIXES_OPEN); at !== -1; at = xml.indexOf(PREFIXES_OPEN, at + PREFIXES_OPEN.length)) prefixes++;
    const truncated = xml.includes(TRUNCATED);
    const tokenAt = xml.indexOf(TOKEN_OPEN);
    const next = tokenAt === -1 ? undefined : xml.toString('utf8', tokenAt + TOKEN_OPEN.length, xml.indexOf(TOKEN_CLOSE, tokenAt));
    const text = (span: [number, number] | undefined) => (span === undefined ? undefined : unescapeXml(xml.toString('utf8', span[0], span[1])));
    return { keys, firstKey: text(first), lastKey: text(last), prefixes, truncated, next: next === undefined ? undefined : unescapeXml(next) };
  }

  private send(method: string, path: string, query: Record<string, string>, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal, sink?: LeanRequest['sink']): Promise<LeanResponse> {
    const encodedQuery = encodeQuery(query);
    const auth = this.signer.sign(method, this.host, path, encodedQuery, headers);
    return this.pool.request({ method, path: encodedQuery ? `${path}?${encodedQuery}` : path, headers: { ...headers, ...auth }, body, signal, sink });
  }
}

const KEY_OPEN = Buffer.from('<Key>');
const KEY_CLOSE = Buffer.from('</Key>');
const PREFIXES_OPEN = Buffer.from('<CommonPrefixes>');
const TRUNCATED = Buffer.from('<IsTruncated>true</IsTruncated>');
const TOKEN_OPEN = Buffer.from('<NextContinuationToken>');
const TOKEN_CLOSE = Buffer.from('</NextContinuationToken>');

function unescapeXml(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => {
    const named: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
    if (named[e.toLowerCase()]) return named[e.toLowerCase()]!;
    return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}
