// Building shard bodies for storage-node tests.
import fs from 'node:fs/promises';
import { blockCrc, crcBytes } from '../../erasure/frames.js';
import type { ShardStore } from '../../storage-node/store.js';

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

/** Flips one bit of byte `offset` of a file, as bit rot would. */
export async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0]! ^= 0x40;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

/** Flips a bit of byte `offset` of a stored shard (0 = its header's first byte), in its file or its pack log record. */
export async function flipStoredByte(store: ShardStore, id: string, offset: number): Promise<void> {
  const at = store.locate(id);
  if (!at) throw new Error(`shard ${id} is not stored`);
  if (offset >= at.length) throw new RangeError(`offset ${offset} is past shard ${id}'s ${at.length} bytes`);
  await flipByte(at.file, at.offset + offset);
}
