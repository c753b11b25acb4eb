// Small request bodies (XML documents) read with a hard size limit and verified against what the
// client signed (x-amz-content-sha256, Content-MD5, checksums), like any other payload.
import { decodePayload, readPayload } from '../auth/payload.js';
import type { HeaderBag } from '../auth/canonical.js';
import type { S3Context } from '../server.js';

/**
 * `headers` lets an operation leave out headers that describe something other than the body
 * (CompleteMultipartUpload's x-amz-checksum-* are the finished object's checksum).
 */
export async function readSmallBody(ctx: S3Context, limit: number, headers: HeaderBag = ctx.req.headersDistinct): Promise<Buffer> {
  return readPayload(decodePayload(ctx.req, headers, ctx.state.auth, { maxSize: limit }), limit);
}
