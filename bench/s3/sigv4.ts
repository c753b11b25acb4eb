// Minimal AWS Signature V4 (header auth) for the raw load-generating client: the AWS SDK costs
// too much CPU per request to drive hundreds of small-object clients from a 2-core box.
import { createHash, createHmac } from 'node:crypto';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
export function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A path from segments, each encoded once: what goes on the wire and into the canonical request. */
export function encodePath(bucket: string, key?: string): string {
  const parts = [bucket, ...(key === undefined ? [] : key.split('/'))];
  return '/' + parts.map(rfc3986).join('/');
}

export function encodeQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

export class Signer {
  private keyDate = '';
  private key: Buffer = Buffer.alloc(0);

  constructor(private readonly creds: Credentials) {}

  /**
   * Headers to add to a request: x-amz-date, x-amz-content-sha256 and Authorization. `headers`
   * (lower-case names) are signed too, with host. `encodedPath` and `encodedQuery` as sent.
   */
  sign(method: string, host: string, encodedPath: string, encodedQuery: string, headers: Record<string, string>, payloadHash = UNSIGNED_PAYLOAD): Record<string, string> {
    const now = new Date();
    const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const date = amzDate.slice(0, 8);
    const all: Record<string, string> = { ...headers, host, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
    const names = Object.keys(all).sort();
    const canonicalHeaders = names.map((n) => `${n}:${String(all[n]).trim()}\n`).join('');
    const signedHeaders = names.join(';');
    const canonicalRequest = [method, encodedPath, encodedQuery, canonicalHeaders, signedHeaders, payloadHash].join('\n');
    const scope = `${date}/${this.creds.region}/s3/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
    const signature = createHmac('sha256', this.signingKey(date)).update(stringToSign).digest('hex');
    return {
      'x-amz-date': amzDate,
      'x-amz-content-sha256': payloadHash,
      authorization: `AWS4-HMAC-SHA256 Credential=${this.creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    };
  }

  private signingKey(date: string): Buffer {
    if (this.keyDate !== date) {
      const kDate = hmac(`AWS4${this.creds.secretAccessKey}`, date);
      this.key = hmac(hmac(hmac(kDate, this.creds.region), 's3'), 'aws4_request');
      this.keyDate = date;
    }
    return this.key;
  }
}
