// Request bodies, read with the gateway's limits: the decoded payload of a PUT or part (verified
// against what the client signed: x-amz-content-sha256, Content-MD5, checksums), and small bodies
// (XML documents) read whole with a hard size limit.
import { decodePayload, readPayload, type DecodedPayload, type PayloadOptions } from '../auth/payload.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderBag } from '../auth/canonical.js';
import { algorithmOfHeader } from '../s3/checksums.js';
import { S3Error, s3Error, type S3ErrorCode } from '../s3/errors.js';
import type { S3Context } from '../server.js';
import type { GatewayServices } from '../services.js';

/**
 * The request's body; a client that leaves it idle for the configured body timeout is cut off.
 * A client that sent "Expect: 100-continue" is told to go on only when the operation starts reading
 * the body, after everything it checks first (see createGatewayServer).
 */
export function requestPayload(
  ctx: S3Context,
  services: GatewayServices,
  options: PayloadOptions,
  headers: HeaderBag = ctx.req.headersDistinct,
): DecodedPayload {
  const expectsContinue = ctx.req.httpVersion === '1.1' && /^\s*100-continue\s*$/i.test(ctx.get('expect'));
  const body: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => {
      if (expectsContinue && !ctx.res.headersSent) ctx.res.writeContinue();
      return ctx.req[Symbol.asyncIterator]();
    },
  };
  return decodePayload(body, headers, ctx.state.auth, { idleTimeoutMs: services.config.bodyTimeoutMs, ...options });
}

/**
 * `headers` lets an operation leave out headers that describe something other than the body
 * (CompleteMultipartUpload's x-amz-checksum-* are the finished object's checksum).
 */
export async function readSmallBody(
  ctx: S3Context,
  services: GatewayServices,
  limit: number,
  headers: HeaderBag = ctx.req.headersDistinct,
): Promise<Buffer> {
  return readPayload(requestPayload(ctx, services, { maxSize: limit }, headers), limit);
}

/** A request document (a policy, a tag set) of 1 to `limit` bytes: a larger one is `tooLarge`, none MissingRequestBodyError. */
export async function readDocument(ctx: S3Context, services: GatewayServices, limit: number, tooLarge: S3ErrorCode): Promise<Buffer> {
  let body: Buffer;
  try {
    body = await readSmallBody(ctx, services, limit);
  } catch (err) {
    if (err instanceof S3Error && (err.code === 'EntityTooLarge' || err.code === 'MaxMessageLengthExceeded')) throw s3Error(tooLarge);
    throw err;
  }
  if (body.length === 0) throw s3Error('MissingRequestBodyError');
  return body;
}

/**
 * S3 refuses the bodies of some operations (DeleteObjects, PutObjectTagging) unless Content-MD5 or an
 * x-amz-checksum-* protects them; the payload reader then checks the digest.
 */
export function requireIntegrityHeader(headers: IncomingHttpHeaders): void {
  if (headers['content-md5'] !== undefined) return;
  const trailer = headers['x-amz-trailer'];
  if (typeof trailer === 'string' && algorithmOfHeader(trailer.trim()) !== undefined) return;
  if (Object.keys(headers).some((name) => algorithmOfHeader(name) !== undefined)) return;
  throw s3Error('InvalidRequest', 'Missing required header for this request: Content-MD5 OR x-amz-checksum-*');
}
