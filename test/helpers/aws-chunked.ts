// Reference aws-chunked encoders for tests, written from the AWS SigV4 streaming documentation and
// independent of the gateway's decoder: signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER])
// and unsigned chunks with a trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER, as the JS SDK frames a stream).
import { createHash, createHmac } from 'node:crypto';

const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function splitEvery(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** aws-chunked with chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]). */
export function signedChunkedBody(
  data: Buffer,
  chunkSize: number,
  ctx: { signingKey: Buffer; amzDate: string; scope: string; seedSignature: string },
  trailer?: { name: string; value: string },
): Buffer {
  const sign = (s: string) => createHmac('sha256', ctx.signingKey).update(s).digest('hex');
  const parts: Buffer[] = [];
  let previous = ctx.seedSignature;
  const chunks = splitEvery(data, chunkSize);
  chunks.push(Buffer.alloc(0));
  for (const chunk of chunks) {
    const sig = sign(['AWS4-HMAC-SHA256-PAYLOAD', ctx.amzDate, ctx.scope, previous, EMPTY_SHA256, sha256Hex(chunk)].join('\n'));
    parts.push(Buffer.from(`${chunk.length.toString(16)};chunk-signature=${sig}\r\n`), chunk);
    if (chunk.length > 0) parts.push(Buffer.from('\r\n'));
    previous = sig;
  }
  if (trailer !== undefined) {
    const line = `${trailer.name}:${trailer.value}`;
    const sig = sign(['AWS4-HMAC-SHA256-TRAILER', ctx.amzDate, ctx.scope, previous, sha256Hex(`${line}\n`)].join('\n'));
    parts.push(Buffer.from(`${line}\r\nx-amz-trailer-signature:${sig}\r\n`));
  }
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

/** aws-chunked without signatures (STREAMING-UNSIGNED-PAYLOAD-TRAILER), as the JS SDK frames a stream. */
export function unsignedChunkedBody(data: Buffer, chunkSize: number, trailer?: { name: string; value: string }): Buffer {
  const parts: Buffer[] = [];
  for (const chunk of splitEvery(data, chunkSize)) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
  parts.push(Buffer.from('0\r\n'));
  if (trailer !== undefined) parts.push(Buffer.from(`${trailer.name}:${trailer.value}\r\n`));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}
