// Streaming erasure coding of one segment. Every function works stripe by stripe and reads at most
// one stripe ahead of the consumer, so memory stays at a few stripes whatever the segment size.
import { sharedCodec, StripeCodec } from './codec.js';
import { ExactReader } from './exact-reader.js';
import { blockCrc, crcBytes } from './frames.js';
import {
  type Layout,
  blockLengthFor,
  stripeBlockLength,
  stripeCount,
  stripeDataLength,
  stripeDataSize,
  validateLayout,
} from './layout.js';

export interface EncodedStripe {
  /** Stripe number within the segment. */
  index: number;
  /** Segment data bytes in this stripe. */
  dataLength: number;
  /** Length of each of the k+m blocks. */
  blockLength: number;
  /** k+m blocks (0..k-1 data incl. zero padding, k.. parity), each blockLength bytes. */
  blocks: Buffer[];
  /** CRC32C of each block. */
  crcs: number[];
  /**
   * Lets go of the stripe's buffers when they came from a pool (`StripeBuffers`): call it once
   * whoever still reads the blocks holds them in their own right. Not calling it is safe.
   */
  release(): void;
}

/** Which stripes of the segment to decode (inclusive); the shard sources then hold blocks first..last only. */
export interface StripeSpan {
  first: number;
  last: number;
}

export class NotEnoughShardsError extends Error {
  constructor(readonly available: number, readonly needed: number) {
    super(`only ${available} usable shards; decoding needs ${needed}`);
    this.name = 'NotEnoughShardsError';
  }
}

/** A shard source failed, ended early or ran long; `shardIndex` says which, so a caller can retry elsewhere. */
export class ShardSourceError extends Error {
  constructor(readonly shardIndex: number, message: string, options?: { cause: unknown }) {
    super(`shard ${shardIndex}: ${message}`, options);
    this.name = 'ShardSourceError';
  }
}

/**
 * Cuts a byte stream into stripes and erasure-codes each. Yields nothing for an empty source.
 * Each yielded stripe owns fresh buffers (the consumer may keep them while pulling the next);
 * its blocks are views of one data and one parity buffer per stripe.
 */
export async function* encodeStripes(
  source: AsyncIterable<Uint8Array>,
  layout: Layout,
  codec?: StripeCodec,
  opts: EncodeOptions = {},
): AsyncGenerator<EncodedStripe> {
  const coder = codecFor(layout, codec);
  const reader = new ExactReader(source);
  const buffers = opts.buffers ?? FRESH_BUFFERS;
  let next = 0;
  try {
    yield* pipelined(
      () => readSourceStripe(reader, layout, next++, buffers, opts),
      (raw) => encodeStripe(coder, raw, buffers),
    );
  } finally {
    await reader.close();
  }
}

export interface EncodeOptions {
  /** Memory for stripes being filled; unlimited when absent. */
  budget?: StripeBudget;
  /** Where full-sized stripe buffers come from; fresh ones when absent. */
  buffers?: StripeBuffers;
  /** The source's sender went away: a stripe waiting for the budget stops waiting. */
  signal?: AbortSignal;
  /**
   * The bytes the source is expected to hold (a declared length), when known. The first stripe's
   * buffer is then sized for them at once instead of grown as bytes arrive: a body of a stripe or
   * more takes a full buffer from `buffers`. Only a hint: a source that sends more or less is
   * still read exactly.
   */
  expectedBytes?: number;
}

/**
 * Memory for stripes being filled from the source. A stripe reserves its whole buffer once its
 * first bytes have arrived (a source that sends nothing holds nothing) and releases it when the
 * stripe is complete, so waiting for a reservation never happens halfway through a stripe.
 * `signal` (the source's sender went away) ends a wait: a stripe nobody will finish must not be
 * served its turn, take a buffer and only then find its source gone.
 */
export interface StripeBudget {
  reserve(bytes: number, signal?: AbortSignal): Promise<() => void>;
}

/**
 * Where a stripe's full-sized buffers (k and m blocks of blockSize) come from: fresh ones by default,
 * or a pool that takes them back through `release` (the gateway's; see common/buffer-pool.ts).
 */
export interface StripeBuffers {
  take(size: number): Buffer;
  release(buffer: Buffer): void;
}

const FRESH_BUFFERS: StripeBuffers = { take: (size) => Buffer.allocUnsafe(size), release: () => undefined };

/** The framed bytes of shard i of a stripe: [block, crcBytes(crc)]. */
export function shardFrame(stripe: EncodedStripe, shardIndex: number): Buffer[] {
  const block = stripe.blocks[shardIndex];
  const crc = stripe.crcs[shardIndex];
  if (block === undefined || crc === undefined) {
    throw new RangeError(`shard index ${shardIndex} is not in 0..${stripe.blocks.length - 1}`);
  }
  return [block, crcBytes(crc)];
}

/**
 * Rebuilds the segment's data bytes from any k of its k+m shards. `shards[i]` is shard i's
 * unframed block data (arbitrary chunking) or null when missing. Yields the data in order, padding
 * stripped. Reads the data shards when they are all there (no Reed-Solomon work), otherwise the
 * first k present; sources it does not need are closed unread. With `span`, decodes only those
 * stripes and the sources must start at block span.first.
 * Throws NotEnoughShardsError with fewer than k sources, ShardSourceError if one fails or ends early.
 */
export async function* decodeStripes(
  shards: (AsyncIterable<Uint8Array> | null)[],
  layout: Layout,
  segmentSize: number,
  codec?: StripeCodec,
  span?: StripeSpan,
): AsyncGenerator<Buffer> {
  const coder = codecFor(layout, codec);
  const stripes = spanOf(layout, segmentSize, span);
  const sources = await openSources(shards, layout, stripes);
  const missingData = range(0, layout.k).filter((i) => !sources.has(i));
  try {
    yield* pipelined(
      nextStripeReader(stripes, (s) => readShardStripe(sources, layout, segmentSize, s, missingData.length > 0)),
      async (stripe) => {
        if (missingData.length > 0) {
          await coder.recover(stripe.data, stripe.parity, stripe.len, missingData, [...sources.keys()]);
        }
        return stripe.data.subarray(0, stripe.dataLength);
      },
    );
    await requireEnded(sources);
  } finally {
    await closeAll(sources);
  }
}

// ---- encoding -------------------------------------------------------------------------------

interface RawStripe {
  index: number;
  data: Buffer;
  dataLength: number;
  blockLength: number;
}

async function readSourceStripe(
  reader: ExactReader,
  layout: Layout,
  index: number,
  buffers: StripeBuffers,
  { budget, signal, expectedBytes = 0 }: EncodeOptions,
): Promise<RawStripe | null> {
  const size = stripeDataSize(layout);
  // Wait for data before reserving or allocating: an idle upload then costs no stripe buffer.
  const first = await reader.readSome(size);
  if (!first) return null;
  const release = budget ? await budget.reserve(size, signal) : undefined;
  try {
    // A segment's first stripe starts small and grows: most objects are far smaller than a stripe,
    // and a full stripe buffer (1 MiB) per small PUT churned external memory into a scavenge every
    // few dozen PUTs. Later stripes of a segment are full-sized from the start (no growth copies),
    // and so is a first stripe whose source declared enough bytes: growing would only make garbage.
    // A thousand trickling 8 MiB uploads cut off at once each grew and dropped 320 KiB, while the
    // gateway read their backlogs to find them gone; its peak RSS was 240–262 MiB (mean 255, six
    // runs) with growth and 215–273 (mean 241, twelve) without: what the collector lags behind.
    const alloc = (bytes: number): Buffer => (bytes === size ? buffers.take(size) : Buffer.allocUnsafe(bytes));
    let buffer: Buffer = alloc(index === 0 ? Math.min(size, Math.max(first.length, FIRST_STRIPE_START_BYTES, expectedBytes)) : size);
    first.copy(buffer, 0);
    let filled = first.length;
    for (;;) {
      if (filled === buffer.length) {
        if (filled === size) break;
        buffer = grown(buffer, filled, alloc(Math.min(size, buffer.length * 4)));
      }
      const piece = await reader.readSome(buffer.length - filled);
      if (!piece) break;
      piece.copy(buffer, filled);
      filled += piece.length;
    }
    if (filled === size) return { index, data: buffer, dataLength: filled, blockLength: layout.blockSize };
    // The tail stripe: blocks shrink to fit the rest, zero padded.
    const blockLength = blockLengthFor(layout, filled);
    const dataBytes = layout.k * blockLength;
    if (buffer.length < dataBytes) buffer = grown(buffer, filled, alloc(dataBytes));
    buffer.fill(0, filled, dataBytes);
    return { index, data: buffer.subarray(0, dataBytes), dataLength: filled, blockLength };
  } finally {
    release?.();
  }
}

/** First allocation for a segment's first stripe; it grows ×4 up to a full stripe as bytes come. */
const FIRST_STRIPE_START_BYTES = 64 * 1024;

function grown(buffer: Buffer, used: number, bigger: Buffer): Buffer {
  buffer.copy(bigger, 0, 0, used);
  return bigger;
}

async function encodeStripe(codec: StripeCodec, raw: RawStripe, buffers: StripeBuffers): Promise<EncodedStripe> {
  const { k, m, blockSize } = codec.layout;
  const len = raw.blockLength;
  const parity = len === blockSize ? buffers.take(m * len) : Buffer.allocUnsafe(m * len);
  await codec.encode(raw.data, parity, len);
  const blocks = [...splitBlocks(raw.data, k, len), ...splitBlocks(parity, m, len)];
  const release = (): void => {
    buffers.release(raw.data);
    buffers.release(parity);
  };
  return { index: raw.index, dataLength: raw.dataLength, blockLength: len, blocks, crcs: blocks.map(blockCrc), release };
}

function splitBlocks(buf: Buffer, count: number, len: number): Buffer[] {
  return range(0, count).map((i) => buf.subarray(i * len, (i + 1) * len));
}

// ---- decoding and rebuilding ------------------------------------------------------------------

interface ShardStripe {
  index: number;
  data: Buffer;
  parity: Buffer;
  len: number;
  dataLength: number;
}

/** Readers for the first k present shards; all other sources are closed unread. */
async function openSources(
  shards: (AsyncIterable<Uint8Array> | null)[],
  layout: Layout,
  stripes: StripeSpan,
): Promise<Map<number, ExactReader>> {
  const total = layout.k + layout.m;
  if (shards.length !== total) throw new RangeError(`expected ${total} shard sources, got ${shards.length}`);
  const needed = stripes.last >= stripes.first ? layout.k : 0;
  const readers = new Map<number, ExactReader>();
  const unused: ExactReader[] = [];
  shards.forEach((shard, i) => {
    if (!shard) return;
    const reader = new ExactReader(shard);
    if (readers.size < needed) readers.set(i, reader);
    else unused.push(reader);
  });
  await Promise.all(unused.map((r) => r.close()));
  if (readers.size < needed) {
    await closeAll(readers);
    throw new NotEnoughShardsError(readers.size, needed);
  }
  return readers;
}

async function readShardStripe(
  sources: Map<number, ExactReader>,
  layout: Layout,
  segmentSize: number,
  index: number,
  withParity: boolean,
): Promise<ShardStripe> {
  const { k, m } = layout;
  const len = stripeBlockLength(layout, segmentSize, index);
  // Unsafe allocation is fine: every slot is either read into or recomputed before use; the rest is scratch.
  const stripe: ShardStripe = {
    index,
    data: Buffer.allocUnsafe(k * len),
    parity: withParity ? Buffer.allocUnsafe(m * len) : Buffer.alloc(0),
    len,
    dataLength: stripeDataLength(layout, segmentSize, index),
  };
  await Promise.all(
    [...sources].map(([i, reader]) =>
      reader.readInto(blockView(stripe, k, i)).catch((err: unknown) => {
        throw new ShardSourceError(i, `reading stripe ${index} failed: ${messageOf(err)}`, { cause: err });
      }),
    ),
  );
  return stripe;
}

function blockView(stripe: ShardStripe, k: number, shard: number): Buffer {
  const { len } = stripe;
  const [buf, at] = shard < k ? [stripe.data, shard] : [stripe.parity, shard - k];
  return buf.subarray(at * len, (at + 1) * len);
}

/** A source that keeps going past the segment means it is not the shard we think it is. */
async function requireEnded(sources: Map<number, ExactReader>): Promise<void> {
  for (const [i, reader] of sources) {
    if (!(await reader.atEnd())) throw new ShardSourceError(i, `has bytes beyond the ${reader.bytesRead} expected`);
  }
}

async function closeAll(sources: Map<number, ExactReader>): Promise<void> {
  await Promise.all([...sources.values()].map((r) => r.close()));
}

function spanOf(layout: Layout, segmentSize: number, span: StripeSpan | undefined): StripeSpan {
  if (!Number.isSafeInteger(segmentSize) || segmentSize < 0) {
    throw new RangeError(`segment size must be a non-negative integer, got ${segmentSize}`);
  }
  const count = stripeCount(layout, segmentSize);
  if (!span) return { first: 0, last: count - 1 };
  const { first, last } = span;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last < first || last >= count) {
    throw new RangeError(`stripes ${first}..${last} are not within the segment's ${count} stripes`);
  }
  return span;
}

// ---- plumbing -------------------------------------------------------------------------------

function codecFor(layout: Layout, codec: StripeCodec | undefined): StripeCodec {
  validateLayout(layout);
  if (!codec) return sharedCodec(layout);
  if (codec.layout.k !== layout.k || codec.layout.m !== layout.m) {
    throw new RangeError(`codec is for k=${codec.layout.k} m=${codec.layout.m}, layout is k=${layout.k} m=${layout.m}`);
  }
  return codec;
}

function nextStripeReader<T>(stripes: StripeSpan, read: (index: number) => Promise<T>): () => Promise<T | null> {
  let next = stripes.first;
  return async () => (next > stripes.last ? null : read(next++));
}

/**
 * Overlaps reading item n+1 with the (threadpool) work on item n and with the consumer's handling
 * of it. At most three items are alive: the consumer's, the one being worked on, the one being read.
 */
async function* pipelined<R, T>(read: () => Promise<R | null>, work: (item: R) => Promise<T>): AsyncGenerator<T> {
  let item = await read();
  while (item !== null) {
    const result = handled(work(item));
    const next = handled(read());
    yield await result;
    item = await next;
  }
}

/** Marks a promise as observed so that abandoning it (consumer stopped early) is not an unhandled rejection. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
