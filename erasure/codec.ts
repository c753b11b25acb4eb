// Reed-Solomon coding of one stripe at a time, on top of the guarded native addon.
// A stripe is k data blocks side by side in one buffer and m parity blocks side by side in another,
// because that is the only arrangement the addon accepts.
import { type Layout, validateLayout } from './layout.js';
import { createContext, rsEncode } from './native.js';

// Contexts are immutable and safe to share between concurrent calls, so one per (k, m) is enough.
const contexts = new Map<string, Buffer>();

function contextFor(k: number, m: number): Buffer {
  const key = `${k}+${m}`;
  let context = contexts.get(key);
  if (!context) {
    context = createContext(k, m);
    contexts.set(key, context);
  }
  return context;
}

export class StripeCodec {
  readonly layout: Readonly<Layout>;
  private readonly context: Buffer;

  constructor(layout: Layout) {
    validateLayout(layout);
    this.layout = Object.freeze({ k: layout.k, m: layout.m, blockSize: layout.blockSize });
    this.context = contextFor(layout.k, layout.m);
  }

  /** data: k*len bytes (block i at offset i*len); fills parity: m*len bytes. len % 8 == 0, len > 0. */
  encode(data: Buffer, parity: Buffer, len: number): Promise<void> {
    const { k, m } = this.layout;
    return this.recover(data, parity, len, range(k, k + m), range(0, k));
  }

  /** Recomputes the shards listed in `missing` (indices 0..k+m-1, at most m of them) in place, from all the others. */
  reconstruct(data: Buffer, parity: Buffer, len: number, missing: number[]): Promise<void> {
    const missingSet = new Set(missing);
    const others = range(0, this.layout.k + this.layout.m).filter((i) => !missingSet.has(i));
    return this.recover(data, parity, len, missing, others);
  }

  /**
   * Recomputes `targets` from `sources` only (at least k of them). Shards in neither list are
   * scratch: the addon may overwrite them. Lets a reader fetch just k shards and compute just
   * the blocks it needs.
   */
  async recover(data: Buffer, parity: Buffer, len: number, targets: number[], sources: number[]): Promise<void> {
    this.checkBuffers(data, parity, len);
    const targetMask = this.maskOf('targets', targets, 1, this.layout.m);
    const sourceMask = this.maskOf('sources', sources, this.layout.k, this.layout.k + this.layout.m);
    if ((targetMask & sourceMask) !== 0) throw new RangeError('a shard cannot be both a source and a target');
    await rsEncode({
      context: this.context,
      sources: sourceMask,
      targets: targetMask,
      buffer: data,
      bufferOffset: 0,
      bufferSize: this.layout.k * len,
      parity,
      parityOffset: 0,
      paritySize: this.layout.m * len,
    });
  }

  private checkBuffers(data: Buffer, parity: Buffer, len: number): void {
    if (!Number.isInteger(len) || len <= 0 || len % 8 !== 0) {
      throw new RangeError(`block length must be a positive multiple of 8, got ${len}`);
    }
    const { k, m } = this.layout;
    if (data.length !== k * len) throw new RangeError(`data must be k*len = ${k * len} bytes, got ${data.length}`);
    if (parity.length !== m * len) throw new RangeError(`parity must be m*len = ${m * len} bytes, got ${parity.length}`);
  }

  private maskOf(name: string, indices: number[], min: number, max: number): number {
    const total = this.layout.k + this.layout.m;
    let mask = 0;
    for (const i of indices) {
      if (!Number.isInteger(i) || i < 0 || i >= total) throw new RangeError(`${name}: shard index ${i} is not in 0..${total - 1}`);
      if (mask & (1 << i)) throw new RangeError(`${name}: shard index ${i} is listed twice`);
      mask |= 1 << i;
    }
    if (indices.length < min || indices.length > max) {
      throw new RangeError(`${name}: need ${min}..${max} shards, got ${indices.length}`);
    }
    return mask;
  }
}

const shared = new Map<string, StripeCodec>();

/** One codec per layout for the whole process (they hold no per-call state). */
export function sharedCodec(layout: Layout): StripeCodec {
  const key = `${layout.k}+${layout.m}+${layout.blockSize}`;
  let codec = shared.get(key);
  if (!codec) shared.set(key, (codec = new StripeCodec(layout)));
  return codec;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}
