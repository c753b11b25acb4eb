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

/** What the parser learnt of one verified frame: the bytes stay with the caller. */
export interface FrameCheck {
  /** Index of the block within the shard. */
  index: number;
  dataLength: number;
  crc: number;
}

/**
 * Incremental verifier of a framed shard stream. Feed chunks with push(); it returns the frames
 * completed so far (verified). Call end() when the stream ends to get the final short frame.
 *
 * It never copies or joins the chunks (the caller writes them as they came): the CRC runs over
 * each piece as it arrives. Because the last frame may be short, the newest 4 bytes of a frame
 * could be its CRC, so they are held back (copied, 4 bytes) until more bytes or the end decide.
 */
export class FrameParser {
  private readonly frameSize: number;
  /** Bytes of the current frame received so far (data and CRC bytes alike). */
  private inFrame = 0;
  /** Running CRC32C over the current frame's bytes that are known to be data. */
  private crc = 0;
  /** The current frame's newest bytes (up to 4), not yet known to be data or CRC. */
  private readonly held = Buffer.alloc(CRC_BYTES);
  private heldBytes = 0;
  private readonly scratch = Buffer.alloc(2 * CRC_BYTES);
  private nextIndex = 0;

  constructor(readonly blockSize: number) {
    this.frameSize = blockSize + CRC_BYTES;
  }

  push(chunk: Buffer): FrameCheck[] {
    const frames: FrameCheck[] = [];
    for (let at = 0; at < chunk.length; ) {
      // A frame of exactly frameSize bytes is complete only once a byte of the next one arrives:
      // until then it may be the last frame, and it verifies the same either way.
      if (this.inFrame === this.frameSize) frames.push(this.finishFrame());
      const n = Math.min(chunk.length - at, this.frameSize - this.inFrame);
      this.absorb(chunk.subarray(at, at + n));
      at += n;
    }
    return frames;
  }

  end(): FrameCheck[] {
    if (this.inFrame === 0) return [];
    if (this.inFrame <= CRC_BYTES) throw new TruncatedFrameError(this.nextIndex, this.inFrame);
    return [this.finishFrame()];
  }

  get blocksSeen(): number {
    return this.nextIndex;
  }

  /** Adds a piece of the current frame: everything but the newest 4 bytes goes into the CRC. */
  private absorb(piece: Buffer): void {
    const total = this.heldBytes + piece.length;
    const release = Math.max(0, total - CRC_BYTES);
    const fromHeld = Math.min(this.heldBytes, release);
    if (fromHeld > 0) this.crc = crc32c(this.held.subarray(0, fromHeld), this.crc);
    const fromPiece = release - fromHeld;
    if (fromPiece > 0) this.crc = crc32c(piece.subarray(0, fromPiece), this.crc);
    // The new held bytes: what is left of the old ones, then the piece's tail.
    const keep = this.held.copy(this.scratch, 0, fromHeld, this.heldBytes);
    const tail = piece.copy(this.scratch, keep, fromPiece);
    this.heldBytes = keep + tail;
    this.scratch.copy(this.held, 0, 0, this.heldBytes);
    this.inFrame += piece.length;
  }

  /** The held 4 bytes are the frame's CRC; every byte before them has been summed. */
  private finishFrame(): FrameCheck {
    const index = this.nextIndex++;
    const expected = this.held.readUInt32LE(0);
    const actual = this.crc >>> 0;
    const dataLength = this.inFrame - CRC_BYTES;
    this.inFrame = 0;
    this.crc = 0;
    this.heldBytes = 0;
    if (actual !== expected) throw new CorruptFrameError(index, expected, actual);
    return { index, dataLength, crc: expected };
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
