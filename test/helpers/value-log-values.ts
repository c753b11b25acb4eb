// What test/helpers/value-log-writer.ts writes, so the test can tell each value's bytes from its
// key and version alone.
import { createHash } from 'node:crypto';

export const WRITER_KEYS = 64;
/** Tiny segments: a few dozen values each, so compaction runs all the time. */
export const WRITER_ROLL_BYTES = 32 * 1024;

export function writerKey(k: number): Buffer {
  return Buffer.from(`bucket\0key-${k}\0v`);
}

/** 0 to ~2 KB, its bytes a function of (key, version). */
export function valueFor(k: number, version: number): Buffer {
  const length = (version * 131 + k * 17) % 2048;
  const block = createHash('sha256').update(`${k}:${version}`).digest();
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; at += block.length) block.copy(out, at);
  return out;
}
