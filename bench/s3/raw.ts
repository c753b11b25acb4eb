// A lean S3 client on undici with SigV4 header auth and unsigned payloads: small-object load,
// ranged GETs and listings, where the AWS SDK's per-request CPU cost would make the load
// generator the bottleneck. Both systems under test get exactly the same requests.
import { Pool } from 'undici';
import type { Verifier } from '../data.js';
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
  private readonly pool: Pool;
  private readonly signer: Signer;
  private readonly host: string;

  constructor(readonly endpoint: string, creds: Credentials, opts: RawOptions) {
    const url = new URL(endpoint);
    this.host = url.host;
    this.signer = new Signer(creds);
    const timeout = opts.timeoutMs ?? 120_000;
    this.pool = new Pool(url.origin, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }

  async createBucket(bucket: string): Promise<void> {
    const res = await this.send('PUT', encodePath(bucket), {}, {}, undefined);
    const body = await res.body.text();
    // s3rver answers BucketAlreadyExists for its own bucket; Cairn, BucketAlreadyOwnedByYou.
    if (res.statusCode !== 200 && !/BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(body)) throw new S3HttpError(res.statusCode, body, `create bucket ${bucket}`);
  }

  async put(bucket: string, key: string, body: Buffer, signal?: AbortSignal): Promise<void> {
    const res = await this.send('PUT', encodePath(bucket, key), {}, { 'content-length': String(body.length) }, body, signal);
    if (res.statusCode !== 200) throw new S3HttpError(res.statusCode, await res.body.text(), `PUT ${key}`);
    await res.body.dump();
  }

  /** GET (optionally a byte range, inclusive end) and feed every chunk to `verifier`. Returns bytes received. */
  async get(bucket: string, key: string, verifier: Verifier, range?: [number, number], signal?: AbortSignal): Promise<number> {
    const headers: Record<string, string> = range ? { range: `bytes=${range[0]}-${range[1]}` } : {};
    const res = await this.send('GET', encodePath(bucket, key), {}, headers, undefined, signal);
    const ok = range ? res.statusCode === 206 : res.statusCode === 200;
    if (!ok) throw new S3HttpError(res.statusCode, await res.body.text(), `GET ${key}`);
    for await (const chunk of res.body) verifier.update(chunk as Buffer);
    return verifier.bytes;
  }

  async head(bucket: string, key: string): Promise<number> {
    const res = await this.send('HEAD', encodePath(bucket, key), {}, {}, undefined);
    await res.body.dump();
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
    const xml = await res.body.text();
    if (res.statusCode !== 200) throw new S3HttpError(res.statusCode, xml, `list ${bucket}`);
    let keys = 0;
    let firstKey: string | undefined;
    let lastKey: string | undefined;
    for (let at = xml.indexOf('<Key>'); at !== -1; at = xml.indexOf('<Key>', at + 5)) {
      keys++;
      const key = xml.slice(at + 5, xml.indexOf('</Key>', at));
      firstKey ??= key;
      lastKey = key;
    }
    let prefixes = 0;
    for (let at = xml.indexOf('<CommonPrefixes>'); at !== -1; at = xml.indexOf('<CommonPrefixes>', at + 16)) prefixes++;
    const truncated = /<IsTruncated>true<\/IsTruncated>/.test(xml);
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
    return { keys, firstKey, lastKey, prefixes, truncated, next: next === undefined ? undefined : unescapeXml(next) };
  }

  private send(method: string, path: string, query: Record<string, string>, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal) {
    const encodedQuery = encodeQuery(query);
    const auth = this.signer.sign(method, this.host, path, encodedQuery, headers);
    return this.pool.request({
      method: method as 'GET' | 'PUT' | 'HEAD',
      path: encodedQuery ? `${path}?${encodedQuery}` : path,
      headers: { ...headers, ...auth },
      body,
      signal,
    });
  }
}

function unescapeXml(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => {
    const named: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
    if (named[e.toLowerCase()]) return named[e.toLowerCase()]!;
    return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}
