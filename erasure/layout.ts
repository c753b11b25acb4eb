// Stripe geometry: pure arithmetic shared by the encoder, the decoder, storage nodes and repair.
//
// A segment of `size` bytes is cut into stripes of k * blockSize data bytes. Every stripe but the
// last has blocks of exactly blockSize bytes. The last stripe's blocks are shrunk to the smallest
// multiple of 8 that holds the remaining bytes (the Reed-Solomon addon needs shard sizes % 8 == 0),
// zero padded. Shard i is block i of every stripe in order, each block followed by its CRC32C.

/** How a segment is erasure coded. `blockSize` is the data bytes of one full block; a stripe holds k blocks of data. */
export interface Layout {
  k: number;
  m: number;
  blockSize: number;
}

export const DEFAULT_LAYOUT: Layout = { k: 4, m: 2, blockSize: 256 * 1024 };

/** Bytes of the CRC32C (little-endian) that follows every block in a shard. */
export const CRC_BYTES = 4;

/** Limits of @ronomon/reed-solomon (MAX_K, MAX_M). */
export const MAX_K = 24;
export const MAX_M = 6;

export function validateLayout(layout: Layout): void {
  const { k, m, blockSize } = layout;
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new RangeError(`k must be an integer in 1..${MAX_K}, got ${k}`);
  if (!Number.isInteger(m) || m < 1 || m > MAX_M) throw new RangeError(`m must be an integer in 1..${MAX_M}, got ${m}`);
  if (!Number.isInteger(blockSize) || blockSize < 8 || blockSize % 8 !== 0) {
    throw new RangeError(`blockSize must be a positive multiple of 8, got ${blockSize}`);
  }
}

export function stripeDataSize(layout: Layout): number {
  return layout.k * layout.blockSize;
}

export function roundUp8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** Number of stripes of a segment; 0 for an empty segment (nothing is stored for it). */
export function stripeCount(layout: Layout, segmentSize: number): number {
  return Math.ceil(segmentSize / stripeDataSize(layout));
}

/** Data bytes of the segment that stripe `stripe` carries (the last stripe may carry fewer). */
export function stripeDataLength(layout: Layout, segmentSize: number, stripe: number): number {
  const full = stripeDataSize(layout);
  return Math.min(full, segmentSize - stripe * full);
}

/** Length of each block (data and parity alike) of stripe `stripe`. */
export function blockLengthFor(layout: Layout, stripeDataBytes: number): number {
  if (stripeDataBytes >= stripeDataSize(layout)) return layout.blockSize;
  return roundUp8(Math.ceil(stripeDataBytes / layout.k));
}

export function stripeBlockLength(layout: Layout, segmentSize: number, stripe: number): number {
  return blockLengthFor(layout, stripeDataLength(layout, segmentSize, stripe));
}

/** Bytes of block data in each shard of the segment (CRCs excluded); the same for every shard. */
export function shardDataLength(layout: Layout, segmentSize: number): number {
  const stripes = stripeCount(layout, segmentSize);
  if (stripes === 0) return 0;
  return (stripes - 1) * layout.blockSize + stripeBlockLength(layout, segmentSize, stripes - 1);
}

/** Bytes of a shard as framed on the wire and on disk: every block followed by its CRC. */
export function shardFramedLength(layout: Layout, segmentSize: number): number {
  return shardDataLength(layout, segmentSize) + stripeCount(layout, segmentSize) * CRC_BYTES;
}

/** The stripes [first, last] whose data covers segment bytes [start, end] (inclusive). */
export function stripesForRange(layout: Layout, start: number, end: number): { first: number; last: number } {
  const full = stripeDataSize(layout);
  return { first: Math.floor(start / full), last: Math.floor(end / full) };
}
