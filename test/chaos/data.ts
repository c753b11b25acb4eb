// Object bodies: pseudo-random bytes derived from (seed, value id) with AES-256-CTR, so any byte
// range of any value written during a run can be regenerated to check a read, without keeping
// the bodies in memory.
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const AES_BLOCK = 16;
const STREAM_CHUNK = 64 * 1024;

export interface ValueRef {
  /** Unique per write operation of a run. */
  id: string;
  size: number;
  sha256: string;
  /** Quoted MD5 for single PUTs; for multipart, the ETag the gateway acknowledged (if any). */
  etag?: string;
}

export class ValueSource {
  constructor(private readonly seed: number) {}

  /** `length` bytes of value `id` starting at `offset`. */
  bytes(id: string, offset: number, length: number): Buffer {
    if (length <= 0) return Buffer.alloc(0);
    const first = Math.floor(offset / AES_BLOCK);
    const skip = offset - first * AES_BLOCK;
    const cipher = createCipheriv('aes-256-ctr', this.key(id), counterBlock(first));
    return cipher.update(Buffer.alloc(skip + length)).subarray(skip);
  }

  /** The whole value as a buffer, with its sha256 and MD5 ETag. */
  value(id: string, size: number): { body: Buffer; ref: ValueRef } {
    const body = this.bytes(id, 0, size);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const etag = `"${createHash('md5').update(body).digest('hex')}"`;
    return { body, ref: { id, size, sha256, etag } };
  }

  /** A stream of the same bytes in 64 KiB chunks: the SDK then sends aws-chunked with a trailer. */
  static stream(body: Buffer): Readable {
    return Readable.from(chunks(body));
  }

  private key(id: string): Buffer {
    return createHash('sha256').update(`cairn-chaos-value:${this.seed}:${id}`).digest();
  }
}

function* chunks(body: Buffer): Generator<Buffer> {
  for (let i = 0; i < body.length; i += STREAM_CHUNK) yield body.subarray(i, i + STREAM_CHUNK);
}

/** AES-CTR counts blocks as a 128-bit big-endian integer in the IV. */
function counterBlock(index: number): Buffer {
  const iv = Buffer.alloc(AES_BLOCK);
  iv.writeBigUInt64BE(BigInt(index), 8);
  return iv;
}
