// Building shard bodies for storage-node tests.
import { blockCrc, crcBytes } from '../../erasure/frames.js';

/** The framed form of `data`: blocks of blockSize (last one shorter), each followed by its CRC32C. */
export function frame(data: Buffer, blockSize: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += blockSize) {
    const block = data.subarray(at, at + blockSize);
    parts.push(block, crcBytes(blockCrc(block)));
  }
  return Buffer.concat(parts);
}

/** Splits a body into awkward chunk sizes so frames straddle chunk boundaries. */
export async function* chunks(buf: Buffer, size = 777): AsyncGenerator<Buffer> {
  for (let at = 0; at < buf.length; at += size) yield buf.subarray(at, at + size);
}
