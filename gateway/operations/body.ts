// Request bodies, read with the gateway's limits: the decoded payload of a PUT or part (verified
// against what the client signed: x-amz-content-sha256, Content-MD5, checksums), and small bodies
// (XML documents) read whole with a hard size limit.
import { decodePayload, readPayload, type DecodedPayload, type PayloadOptions } from '../auth/payload.js';
import type { HeaderBag } from '../auth/canonical.js';
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
