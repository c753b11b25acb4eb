// Block framing: every block of a shard is followed by its CRC32C (4 bytes, little-endian).
// The parser lets a receiver verify a framed stream incrementally without knowing its length:
// all frames are blockSize + 4 bytes except the last, which may be shorter.
import { crc32c } from '@node-rs/crc32';
import { CRC_BYTES } from './layout.js';

export function crcBytes(crc: number): Buffer {
  const out = Buffer.allocUnsafe(CRC_BYTES);
  out.writeUInt32LE(crc >>> 0, 0);
  return out;
}

export function blockCrc(block: Uint8Array): number {
  return crc32c(block) >>> 0;
}

export interface Frame {
  /** Index of the block within the shard. */
  index: number;
  data: Buffer;
  crc: number;
}

export class CorruptFrameError extends Error {
  constructor(readonly blockIndex: number, readonly expected: number, readonly actual: number) {
    super(`block ${blockIndex} fails its CRC32C (stored ${expected.toString(16)}, computed ${actual.toString(16)})`);
    this.name = 'CorruptFrameError';
  }
}

export class TruncatedFrameError extends Error {
  constructor(readonly blockIndex: number, readonly bytes: number) {
    super(`framed stream ends with a partial frame of ${bytes} bytes at block ${blockIndex}`);
    this.name = 'TruncatedFrameError';
  }
}

/** Checks one frame (block + CRC) read back from storage or the wire. */
export function verifyFrame(frame: Buffer, index: number): Frame {
  if (frame.length <= CRC_BYTES) throw new TruncatedFrameError(index, frame.length);
  const data = frame.subarray(0, frame.length - CRC_BYTES);
  const expected = frame.readUInt32LE(frame.length - CRC_BYTES);
  const actual = blockCrc(data);
  if (actual !== expected) throw new CorruptFrameError(index, expected, actual);
  return { index, data, crc: expected };
}

/**
 * Incremental parser of a framed shard stream. Feed chunks with push(); it returns the frames
 * completed so far (verified). Call end() when the stream ends to get the final short frame.
 * It holds at most one frame's bytes at a time.
 */
export class FrameParser {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private nextIndex = 0;
  private readonly frameSize: number;

  constructor(readonly blockSize: number) {
    this.frameSize = blockSize + CRC_BYTES;
  }

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes > this.frameSize) {
      // Strictly greater: a frame of exactly frameSize bytes at the very end is still the last frame,
      // and we only know it is not shorter once more bytes arrive; either way it verifies the same.
      frames.push(verifyFrame(this.take(this.frameSize), this.nextIndex++));
    }
    return frames;
  }

  end(): Frame[] {
    if (this.pendingBytes === 0) return [];
    const frame = this.take(this.pendingBytes);
    return [verifyFrame(frame, this.nextIndex++)];
  }

  get blocksSeen(): number {
    return this.nextIndex;
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }
}

/** A list of block CRCs as stored in records and sent by scrubs: base64 of little-endian u32s. */
export function encodeBlockCrcs(crcs: readonly number[]): string {
  const buf = Buffer.allocUnsafe(crcs.length * 4);
  crcs.forEach((crc, i) => buf.writeUInt32LE(crc >>> 0, i * 4));
  return buf.toString('base64');
}

export function decodeBlockCrcs(text: string): number[] {
  const buf = Buffer.from(text, 'base64');
  return Array.from({ length: buf.length / 4 }, (_, i) => buf.readUInt32LE(i * 4));
}
