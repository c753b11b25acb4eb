// The end-to-end integrity chain, pure. While a segment streams in, the gateway takes the CRC32C of
// the bytes exactly as the client sent them; the encoder takes the CRC32C of every block it stores.
// Before anything is committed, the two must agree by CRC combination: the concatenated data blocks
// of a segment are its bytes followed by the last stripe's zero padding. A block corrupted in
// memory between receipt and encoding breaks the chain and fails the write instead of being stored
// with a matching CRC of its own. The block CRCs are kept with the segment so the chain can be
// re-proven later (by the scrubber) without re-reading the object.
import { crc32c } from '@node-rs/crc32';
import { crcCombine } from '../s3/crc-combine.js';
export { decodeBlockCrcs, encodeBlockCrcs } from '../../erasure/frames.js';

export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

function be32(crc: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(crc >>> 0, 0);
  return out;
}

/** CRC32C of the concatenation of blocks, from their CRCs and lengths alone. */
export function combineBlockCrcs(crcs: readonly number[], lengths: readonly number[]): number {
  let combined = be32(0);
  crcs.forEach((crc, i) => (combined = crcCombine('CRC32C', combined, be32(crc), lengths[i]!)));
  return combined.readUInt32BE(0);
}

/** CRC32C of `bytes` followed by `zeros` zero bytes, from the CRC of `bytes`. */
export function extendWithZeros(crc: number, zeros: number): number {
  return zeros === 0 ? crc >>> 0 : crc32c(Buffer.alloc(zeros), crc) >>> 0;
}

/** Throws IntegrityError unless the stored data blocks are exactly the received bytes plus padding. */
export function checkSegmentChain(receivedCrc: number, receivedBytes: number, dataBlockCrcs: readonly number[], dataBlockLengths: readonly number[]): void {
  const stored = dataBlockLengths.reduce((sum, n) => sum + n, 0);
  const expected = extendWithZeros(receivedCrc, stored - receivedBytes);
  const actual = combineBlockCrcs(dataBlockCrcs, dataBlockLengths);
  if (expected !== actual) {
    throw new IntegrityError(`segment integrity chain broken: received bytes CRC32C ${expected.toString(16)}, stored blocks combine to ${actual.toString(16)}`);
  }
}

/** The object's CRC32C from its segments' CRCs alone (undefined if a segment predates the chain). */
export function objectCrc32c(segments: readonly { size: number; crc32c?: number }[]): number | undefined {
  if (segments.some((s) => s.crc32c === undefined)) return undefined;
  return combineBlockCrcs(segments.map((s) => s.crc32c!), segments.map((s) => s.size));
}

/**
 * Proves a client's CRC32C (base64, big-endian as S3 sends it) from the segment chain; throws
 * IntegrityError on a mismatch so that the object is not committed.
 */
export function checkClientCrc32c(clientValue: string | undefined, segments: readonly { size: number; crc32c?: number }[]): void {
  if (clientValue === undefined) return;
  const proven = objectCrc32c(segments);
  if (proven === undefined) return;
  const client = Buffer.from(clientValue, 'base64');
  if (client.length !== 4 || client.readUInt32BE(0) !== proven) {
    throw new IntegrityError(`client CRC32C ${clientValue} differs from the CRC32C proven from the stored blocks (${proven.toString(16)})`);
  }
}

/** Passes bytes through while keeping their running CRC32C. */
export function crcTap(source: AsyncIterable<Uint8Array>): { bytes: AsyncIterable<Uint8Array>; crc: () => number; length: () => number } {
  let crc = 0;
  let length = 0;
  return {
    bytes: (async function* () {
      for await (const chunk of source) {
        crc = crc32c(chunk, crc) >>> 0;
        length += chunk.length;
        yield chunk;
      }
    })(),
    crc: () => crc,
    length: () => length,
  };
}
