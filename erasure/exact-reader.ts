// Pulls exact byte counts out of an async iterable that delivers arbitrary chunks (sockets, files,
// generators). Holds at most one source chunk beyond what the caller has taken.

export class UnexpectedEndError extends Error {
  constructor(readonly wanted: number, readonly got: number, readonly position: number) {
    super(`source ended after ${got} of ${wanted} wanted bytes (at byte ${position})`);
    this.name = 'UnexpectedEndError';
  }
}

export class ExactReader {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private leftover: Buffer | undefined;
  private ended = false;
  private position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Bytes handed out so far. */
  get bytesRead(): number {
    return this.position;
  }

  /** Fills target[offset, offset + length) from the source; throws UnexpectedEndError if it ends first. */
  async readInto(target: Uint8Array, offset = 0, length = target.length - offset): Promise<void> {
    if (offset < 0 || length < 0 || offset + length > target.length) {
      throw new RangeError(`readInto(${offset}, ${length}) is outside a target of ${target.length} bytes`);
    }
    let done = 0;
    while (done < length) {
      const piece = await this.readSome(length - done);
      if (!piece) throw new UnexpectedEndError(length, done, this.position);
      target.set(piece, offset + done);
      done += piece.length;
    }
  }

  /**
   * Exactly n bytes. When one source chunk holds them all this is a view of that chunk (no copy),
   * so it stays valid only as long as the producer does not reuse its chunks.
   */
  async read(n: number): Promise<Buffer> {
    const first = await this.readSome(n);
    if (!first) {
      if (n === 0) return Buffer.alloc(0);
      throw new UnexpectedEndError(n, 0, this.position);
    }
    if (first.length === n) return first;
    const out = Buffer.allocUnsafe(n);
    first.copy(out, 0);
    await this.readInto(out, first.length, n - first.length);
    return out;
  }

  /** Between 1 and max bytes as they arrive, or undefined at the end of the source (or when max is 0). */
  async readSome(max: number): Promise<Buffer | undefined> {
    if (max <= 0) return undefined;
    if (!this.leftover) await this.fill();
    const chunk = this.leftover;
    if (!chunk) return undefined;
    const piece = chunk.length <= max ? chunk : chunk.subarray(0, max);
    this.leftover = chunk.length <= max ? undefined : chunk.subarray(max);
    this.position += piece.length;
    return piece;
  }

  /** Discards exactly n bytes; throws UnexpectedEndError if the source ends first. */
  async discard(n: number): Promise<void> {
    let done = 0;
    while (done < n) {
      const piece = await this.readSome(n - done);
      if (!piece) throw new UnexpectedEndError(n, done, this.position);
      done += piece.length;
    }
  }

  /** True when no bytes remain; may pull one more chunk to find out. */
  async atEnd(): Promise<boolean> {
    if (!this.leftover) await this.fill();
    return !this.leftover;
  }

  /** Releases the source (e.g. destroys a stream) without reading the rest; errors on the way out are moot. */
  async close(): Promise<void> {
    this.leftover = undefined;
    if (this.ended) return;
    this.ended = true;
    try {
      await this.iterator.return?.();
    } catch {
      // The source is being abandoned; whatever it failed with is no longer anyone's concern.
    }
  }

  private async fill(): Promise<void> {
    while (!this.ended && !this.leftover) {
      const { value, done } = await this.iterator.next();
      if (done) this.ended = true;
      else if (value.length > 0) this.leftover = asBuffer(value);
    }
  }
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
