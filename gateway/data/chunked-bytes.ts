// A shard window as it arrived from the network: the socket's chunks, kept as they are. Gathering
// them into one buffer copied every byte of every GET once more and left the chunks for the garbage
// collector; views across the chunks serve the response without a copy, and the decoder copies
// only the windows it has to rebuild.
export class ChunkedBytes {
  readonly length: number;
  /** starts[i] is the offset of chunks[i]; a final entry holds the total length. */
  private readonly starts: number[];

  constructor(private readonly chunks: readonly Buffer[]) {
    this.starts = new Array<number>(chunks.length + 1);
    let at = 0;
    chunks.forEach((chunk, i) => {
      this.starts[i] = at;
      at += chunk.length;
    });
    this.starts[chunks.length] = at;
    this.length = at;
  }

  /** Bytes [from, to) as views of the chunks (no copy). */
  views(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    if (from >= to) return out;
    for (let i = this.chunkAt(from); i < this.chunks.length && this.starts[i]! < to; i++) {
      const start = this.starts[i]!;
      out.push(this.chunks[i]!.subarray(Math.max(0, from - start), Math.min(this.chunks[i]!.length, to - start)));
    }
    return out;
  }

  /** Copies bytes [sourceStart, sourceEnd) to `target` at `targetStart`, as Buffer.copy does. */
  copy(target: Buffer, targetStart: number, sourceStart: number, sourceEnd: number): number {
    let at = targetStart;
    for (const view of this.views(sourceStart, sourceEnd)) at += view.copy(target, at);
    return at - targetStart;
  }

  /** The chunk holding byte `offset` (binary search over the chunk starts). */
  private chunkAt(offset: number): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
