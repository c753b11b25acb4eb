// Rebuilding shards (segment repair): reads k healthy shards stripe by stripe, recomputes the
// wanted shards' blocks, and hands each out already framed (block ‖ CRC32C) in one buffer.
//
// Shaped by profiles of the repair benchmark (repair reads k bytes for every byte it writes, so
// per-byte costs on the read side count k times):
// - stripe buffers (k + m blocks, ~1.5 MiB at the default layout) are recycled instead of
//   allocated per stripe: each one is external memory that V8 counts towards its next GC, and the
//   garbage collector was the largest single cost of the repair process;
// - a rebuilt block leaves as one fresh framed buffer (one copy of 1/k of the bytes read), so the
//   stripe buffer is free again as soon as the block is copied out, however long the target node
//   takes, and the upload sends one body chunk per block instead of two;
// - the k sources are opened at once, with no lazy wrapper generator per chunk.
import { crc32c } from '@node-rs/crc32';
import type { StripeCodec } from './codec.js';
import { ExactReader } from './exact-reader.js';
import { CRC_BYTES, stripeBlockLength, stripeCount, type Layout } from './layout.js';
import { ShardSourceError } from './stream.js';

export interface RebuiltBlocks {
  stripe: number;
  /** Block length (without its CRC) of this stripe. */
  length: number;
  /** One framed buffer (block ‖ CRC32C LE) per wanted shard, in the order asked for. */
  frames: Buffer[];
}

/** Opens shard `index` for reading from its start; called once per source. */
export type OpenShard = (index: number) => Promise<AsyncIterable<Uint8Array>>;

/**
 * Yields the wanted shards' framed blocks, stripe by stripe. `sources` are exactly the k shard
 * indices to read (none of them wanted). Stripe n + 1 is read while stripe n is decoded and while
 * the consumer writes it out. Throws ShardSourceError naming the shard when a source fails, ends
 * early or runs long, so the caller can retry without it.
 */
export async function* rebuildFramed(
  open: OpenShard,
  sources: readonly number[],
  wanted: readonly number[],
  layout: Layout,
  segmentSize: number,
  codec: StripeCodec,
): AsyncGenerator<RebuiltBlocks> {
  checkPlan(sources, wanted, layout);
  const readers = await openAll(open, sources);
  const pool = stripePool(layout);
  const stripes = stripeCount(layout, segmentSize);
  try {
    const read = (stripe: number): Promise<Slot> => readStripe(readers, layout, segmentSize, stripe, pool);
    let next = stripes > 0 ? handled(read(0)) : undefined;
    for (let stripe = 0; stripe < stripes; stripe++) {
      const slot = await next!;
      next = stripe + 1 < stripes ? handled(read(stripe + 1)) : undefined;
      try {
        yield await decodeSlot(slot, sources, wanted, layout.k, codec, stripe);
      } finally {
        pool.release(slot);
      }
    }
    await requireEnded(readers);
  } finally {
    await Promise.all([...readers.values()].map((r) => r.close()));
  }
}

// ---- stripe buffers ---------------------------------------------------------------------------

/** k data blocks side by side and m parity blocks side by side: the only layout the codec takes. */
interface Slot {
  data: Buffer;
  parity: Buffer;
  /** Block length of the stripe read into it (the last stripe's may be shorter). */
  len: number;
}

interface StripePool {
  take(len: number): Slot;
  release(slot: Slot): void;
}

/**
 * Recycled full-size stripe buffers per layout. At most two are in use per running rebuild (the one
 * being decoded and the one being read), and at most MAX_IDLE_SLOTS idle ones are kept.
 */
const pools = new Map<string, Slot[]>();
const MAX_IDLE_SLOTS = 16;

function stripePool(layout: Layout): StripePool {
  const { k, m, blockSize } = layout;
  const key = `${k}+${m}+${blockSize}`;
  let idle = pools.get(key);
  if (!idle) pools.set(key, (idle = []));
  const free = idle;
  return {
    take(len: number): Slot {
      // Unsafe allocation is fine: every byte used is read into or recomputed first.
      const slot = free.pop() ?? { data: Buffer.allocUnsafeSlow(k * blockSize), parity: Buffer.allocUnsafeSlow(m * blockSize), len };
      slot.len = len;
      return slot;
    },
    release(slot: Slot): void {
      if (free.length < MAX_IDLE_SLOTS) free.push(slot);
    },
  };
}

/** Block `shard` of the stripe held in `slot` (a view, valid until the slot is released). */
function blockOf(slot: Slot, k: number, shard: number): Buffer {
  const { len } = slot;
  const [buf, at] = shard < k ? [slot.data, shard] : [slot.parity, shard - k];
  return buf.subarray(at * len, (at + 1) * len);
}

// ---- reading and decoding ---------------------------------------------------------------------

async function openAll(open: OpenShard, sources: readonly number[]): Promise<Map<number, ExactReader>> {
  const opened = await Promise.allSettled(sources.map((i) => open(i)));
  const readers = new Map<number, ExactReader>();
  opened.forEach((r, n) => {
    if (r.status === 'fulfilled') readers.set(sources[n], new ExactReader(r.value));
  });
  const failed = opened.findIndex((r) => r.status === 'rejected');
  if (failed >= 0) {
    await Promise.all([...readers.values()].map((r) => r.close()));
    const reason = (opened[failed] as PromiseRejectedResult).reason;
    throw new ShardSourceError(sources[failed], `opening failed: ${messageOf(reason)}`, { cause: reason });
  }
  return readers;
}

async function readStripe(readers: Map<number, ExactReader>, layout: Layout, segmentSize: number, stripe: number, pool: StripePool): Promise<Slot> {
  const slot = pool.take(stripeBlockLength(layout, segmentSize, stripe));
  // On failure the slot is not given back: other reads into it may still be under way.
  await Promise.all(
    [...readers].map(([i, reader]) =>
      reader.readInto(blockOf(slot, layout.k, i)).catch((err: unknown) => {
        throw new ShardSourceError(i, `reading stripe ${stripe} failed: ${messageOf(err)}`, { cause: err });
      }),
    ),
  );
  return slot;
}

async function decodeSlot(slot: Slot, sources: readonly number[], wanted: readonly number[], k: number, codec: StripeCodec, stripe: number): Promise<RebuiltBlocks> {
  const { len } = slot;
  // The codec checks that data and parity are exactly k and m blocks of `len`: views of the slot.
  const data = slot.data.subarray(0, k * len);
  const parity = slot.parity.subarray(0, codec.layout.m * len);
  await codec.recover(data, parity, len, [...wanted], [...sources]);
  const view: Slot = { data, parity, len };
  const frames = wanted.map((i) => frame(blockOf(view, k, i)));
  return { stripe, length: len, frames };
}

/** A fresh buffer holding the block followed by its CRC32C (little-endian), as shards store it. */
function frame(block: Buffer): Buffer {
  const out = Buffer.allocUnsafe(block.length + CRC_BYTES);
  block.copy(out, 0);
  out.writeUInt32LE(crc32c(block) >>> 0, block.length);
  return out;
}

/** A source that keeps going past the segment is not the shard we think it is. */
async function requireEnded(readers: Map<number, ExactReader>): Promise<void> {
  for (const [i, reader] of readers) {
    if (!(await reader.atEnd())) throw new ShardSourceError(i, `has bytes beyond the ${reader.bytesRead} expected`);
  }
}

function checkPlan(sources: readonly number[], wanted: readonly number[], layout: Layout): void {
  const total = layout.k + layout.m;
  const all = [...sources, ...wanted];
  if (all.some((i) => !Number.isInteger(i) || i < 0 || i >= total)) throw new RangeError(`shard indices must be in 0..${total - 1}`);
  if (new Set(all).size !== all.length) throw new RangeError('a shard is listed twice, or both read and rebuilt');
  if (sources.length !== layout.k) throw new RangeError(`rebuilding reads exactly k = ${layout.k} shards, got ${sources.length}`);
  if (wanted.length < 1 || wanted.length > layout.m) throw new RangeError(`can rebuild 1..${layout.m} shards, asked for ${wanted.length}`);
}

/** Marks a promise as observed so that abandoning it (consumer stopped early) is not an unhandled rejection. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
