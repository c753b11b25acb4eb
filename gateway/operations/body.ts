// Small request bodies (XML configuration documents) read with a hard size limit.
import type { IncomingMessage } from 'node:http';
import { s3Error } from '../s3/errors.js';

export async function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw s3Error('MaxMessageLengthExceeded', 'Your request was too big.');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
