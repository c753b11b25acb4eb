// Hands out a byte stream in pieces of bounded size, so that one request body can be cut into
// segments without knowing its length in advance (aws-chunked bodies may not declare one).
export class ChunkSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private leftover: Buffer | undefined;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** True once the source has no more bytes; may wait for the next chunk to find out. */
  async atEnd(): Promise<boolean> {
    if (this.leftover?.length) return false;
    await this.fill();
    return this.ended && !this.leftover?.length;
  }

  /** Up to `max` bytes, or undefined at the end of the source. */
  async next(max: number): Promise<Buffer | undefined> {
    if (!this.leftover?.length) await this.fill();
    const chunk = this.leftover;
    if (!chunk?.length) return undefined;
    if (chunk.length <= max) {
      this.leftover = undefined;
      return chunk;
    }
    this.leftover = chunk.subarray(max);
    return chunk.subarray(0, max);
  }

  /** The next `limit` bytes (fewer if the source ends first) as their own async iterable. */
  async *take(limit: number): AsyncGenerator<Buffer> {
    let remaining = limit;
    while (remaining > 0) {
      const chunk = await this.next(remaining);
      if (!chunk) return;
      remaining -= chunk.length;
      yield chunk;
    }
  }

  private async fill(): Promise<void> {
    while (!this.ended && !this.leftover?.length) {
      const { value, done } = await this.iterator.next();
      if (done) this.ended = true;
      else if (value.length) this.leftover = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
}
