// Cross-origin access for browsers, enough for uploads and downloads with presigned URLs: one
// gateway-wide policy (allowed origins from --cors-origins) instead of per-bucket CORS
// configurations, which Cairn does not store (PutBucketCors answers 501 NotImplemented).
//
// A preflight (any OPTIONS request) is answered before authentication, as S3 does: browsers never
// sign it. Actual requests from an allowed origin get Access-Control-Allow-Origin and
// -Expose-Headers on every response, errors included, so that page scripts can read S3 errors.
import type Koa from 'koa';
import { s3Error } from './s3/errors.js';
import type { S3State } from './server.js';
import type { RequestTarget } from './request-target.js';

/** Methods a rule may allow in S3 (CORSRule AllowedMethod); a preflight asking for another is malformed. */
export const CORS_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'] as const;

/** Preflight results may be cached this long by the browser. */
export const CORS_MAX_AGE_SECONDS = 3600;

/**
 * Response headers page scripts may read. Header names cannot be wildcards, so every checksum
 * header is listed; the trailing `*` exposes the rest (x-amz-meta-*) to requests without
 * credentials, which is how presigned URLs are used.
 */
export const CORS_EXPOSE_HEADERS = [
  'ETag',
  'Content-Length',
  'Content-Range',
  'Content-Type',
  'Last-Modified',
  'Accept-Ranges',
  'x-amz-request-id',
  'x-amz-id-2',
  'x-amz-version-id',
  'x-amz-delete-marker',
  'x-amz-checksum-crc32',
  'x-amz-checksum-crc32c',
  'x-amz-checksum-crc64nvme',
  'x-amz-checksum-sha1',
  'x-amz-checksum-sha256',
  'x-amz-checksum-type',
  'x-amz-server-side-encryption',
  'x-amz-bucket-region',
  '*',
].join(', ');

/**
 * Allowed-origin patterns, from a comma-separated setting. As in an S3 CORSRule, `*` allows every
 * origin and a pattern may hold one `*` wildcard (`https://*.example.com`).
 */
export function parseCorsOrigins(text: string | undefined): string[] {
  const origins = (text ?? '*')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  for (const o of origins) {
    if (o.split('*').length > 2) throw new Error(`--cors-origins: "${o}" may contain at most one "*"`);
  }
  return origins;
}

export function originAllowed(origin: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const star = pattern.indexOf('*');
    if (star < 0) return pattern === origin;
    const head = pattern.slice(0, star);
    const tail = pattern.slice(star + 1);
    return origin.length >= head.length + tail.length && origin.startsWith(head) && origin.endsWith(tail);
  });
}

function resourceType(target: RequestTarget): string {
  if (target.bucket === undefined) return 'SERVICE';
  return target.key === undefined ? 'BUCKET' : 'OBJECT';
}

/**
 * `targetOf` resolves the bucket and key the same way authentication will, so the preflight's
 * AccessForbidden names the right ResourceType.
 */
export function cors(origins: readonly string[], targetOf: (ctx: Koa.ParameterizedContext<S3State>) => RequestTarget): Koa.Middleware<S3State> {
  return async (ctx, next) => {
    const origin = ctx.get('Origin');
    if (ctx.method === 'OPTIONS') {
      ctx.state.operation = 'PreflightRequest';
      preflight(ctx, origin, origins, targetOf);
      return;
    }
    if (origin !== '' && originAllowed(origin, origins)) {
      ctx.set('Access-Control-Allow-Origin', origin);
      ctx.set('Access-Control-Expose-Headers', CORS_EXPOSE_HEADERS);
    }
    // Caches must not hand one origin's answer (with or without CORS headers) to another.
    if (origin !== '') ctx.vary('Origin');
    await next();
  };
}

function preflight(
  ctx: Koa.ParameterizedContext<S3State>,
  origin: string,
  origins: readonly string[],
  targetOf: (ctx: Koa.ParameterizedContext<S3State>) => RequestTarget,
): void {
  ctx.vary('Origin');
  ctx.vary('Access-Control-Request-Headers');
  ctx.vary('Access-Control-Request-Method');
  if (origin === '') throw s3Error('BadRequest', 'Insufficient information. Origin request header needed.');
  const method = ctx.get('Access-Control-Request-Method');
  if (!(CORS_METHODS as readonly string[]).includes(method)) {
    throw s3Error('BadRequest', `Invalid Access-Control-Request-Method: ${method === '' ? 'null' : method}`);
  }
  if (!originAllowed(origin, origins)) {
    throw s3Error('AccessForbidden', undefined, { Method: method, ResourceType: resourceType(targetOf(ctx)) });
  }
  ctx.set('Access-Control-Allow-Origin', origin);
  ctx.set('Access-Control-Allow-Methods', CORS_METHODS.join(', '));
  // Any header may be sent: S3 itself decides what it accepts, and signed headers are checked by SigV4.
  const requested = ctx.get('Access-Control-Request-Headers');
  if (requested !== '') ctx.set('Access-Control-Allow-Headers', requested);
  ctx.set('Access-Control-Max-Age', String(CORS_MAX_AGE_SECONDS));
  ctx.set('Access-Control-Expose-Headers', CORS_EXPOSE_HEADERS);
  ctx.status = 200;
  ctx.body = Buffer.alloc(0);
  ctx.remove('Content-Type');
}
