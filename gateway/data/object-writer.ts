// Where an object's bytes go: a small object (at most `inlineMaxBytes`) is kept inline in its
// namespace record — one synced batch to write, one read to serve, no shard files smaller than a
// filesystem block — and anything larger is erasure-coded by the writer. The choice needs no
// declared length (aws-chunked bodies may not have one): up to inlineMaxBytes + 1 bytes are held
// back, and the object goes to the writer only once it proves too big.
import { crc32c } from '@node-rs/crc32';
import type { InlineData } from '../../namespace/types.js';
import { writeObjectData, type WriteOptions, type WriterDeps, type WrittenData } from './writer.js';

export interface WrittenObject extends WrittenData {
  /** Present when the bytes are kept inline (then `segments` is empty). */
  inline?: InlineData;
}

export async function writeObject(source: AsyncIterable<Uint8Array>, opts: WriteOptions, deps: WriterDeps, inlineMaxBytes: number): Promise<WrittenObject> {
  if (inlineMaxBytes <= 0) return writeObjectData(source, opts, deps);
  const iterator = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let held = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) break;
    head.push(next.value);
    held += next.value.length;
    if (held > inlineMaxBytes) return writeObjectData(resume(head, iterator), opts, deps);
  }
  if (held === 0) return { size: 0, segments: [] };
  const bytes = Buffer.concat(head, held);
  return { size: held, segments: [], inline: { crc32c: crc32c(bytes) >>> 0, bytes } };
}

/** The bytes already taken from `iterator`, then the rest of it. */
async function* resume(head: Uint8Array[], iterator: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* head;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return;
    yield next.value;
  }
}

/** The runs of bytes with a known CRC32C, for proving a client's checksum: the segments, or the inline bytes as one. */
export function integrityUnits(written: WrittenObject): { size: number; crc32c?: number }[] {
  return written.inline ? [{ size: written.size, crc32c: written.inline.crc32c }] : written.segments;
}
