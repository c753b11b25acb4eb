// Small request bodies (XML documents) read with a hard size limit and verified against what the
// client signed (x-amz-content-sha256, Content-MD5, checksums), like any other payload.
import { decodePayload, readPayload } from '../auth/payload.js';
import type { S3Context } from '../server.js';

export async function readSmallBody(ctx: S3Context, limit: number): Promise<Buffer> {
  return readPayload(decodePayload(ctx.req, ctx.req.headersDistinct, ctx.state.auth, { maxSize: limit }), limit);
}
