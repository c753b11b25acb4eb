// Object contents: every object is a window into one random pool (made once per run), starting at
// an offset derived from its key. Writing streams zero-copy slices of the pool; reading compares
// each received chunk with the pool (memcmp), so verifying costs the load generator almost nothing
// and any byte range of any object can be checked without keeping the object.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { MiB } from './stats.js';

/** Pool period: not a power of two, so repeated data never lines up with blocks or stripes. */
const PERIOD = 16 * MiB + 4104;
/** Longest slice handed out at once. */
const MAX_SLICE = MiB;

export class Pattern {
  /** PERIOD random bytes followed by a copy of the first MAX_SLICE, so every slice is contiguous. */
  private readonly pool: Buffer;

  constructor() {
    this.pool = Buffer.allocUnsafe(PERIOD + MAX_SLICE);
    randomBytes(PERIOD).copy(this.pool, 0);
    this.pool.copy(this.pool, PERIOD, 0, MAX_SLICE);
  }

  /** Where object `key` starts in the pool. */
  base(key: string): number {
    return createHash('sha1').update(key).digest().readUInt32LE(0) % PERIOD;
  }

  /** A view (no copy) of `length` ≤ 1 MiB bytes of `key` from `offset`. */
  slice(key: string, offset: number, length: number): Buffer {
    if (length > MAX_SLICE) throw new RangeError('slice longer than 1 MiB; use bytes()');
    const at = (this.base(key) + offset) % PERIOD;
    return this.pool.subarray(at, at + length);
  }

  /** A copy of any length. */
  bytes(key: string, offset: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const n = Math.min(MAX_SLICE, length - done);
      this.slice(key, offset + done, n).copy(out, done);
      done += n;
    }
    return out;
  }

  /** The object's bytes [offset, offset+length) as a stream of ≤ 1 MiB views. */
  stream(key: string, length: number, offset = 0): Readable {
    const self = this;
    return Readable.from(
      (function* () {
        for (let done = 0; done < length; ) {
          const n = Math.min(MAX_SLICE, length - done);
          yield self.slice(key, offset + done, n);
          done += n;
        }
      })(),
      { objectMode: false },
    );
  }

  /** Checks received chunks against the object's bytes from `offset` on. */
  verifier(key: string, offset = 0): Verifier {
    return new Verifier(this, key, offset);
  }
}

/** Every read whose bytes were wrong, over the whole run (the bench then exits 1). */
export const verificationFailures = { count: 0, first: '' };

export class Verifier {
  bytes = 0;
  mismatchAt: number | undefined;

  constructor(private readonly pattern: Pattern, private readonly key: string, private readonly offset: number) {}

  update(chunk: Uint8Array): void {
    if (this.mismatchAt === undefined) {
      for (let at = 0; at < chunk.length; ) {
        const n = Math.min(MAX_SLICE, chunk.length - at);
        const expected = this.pattern.slice(this.key, this.offset + this.bytes + at, n);
        const got = Buffer.from(chunk.buffer, chunk.byteOffset + at, n);
        if (!got.equals(expected)) {
          let i = 0;
          while (i < n && got[i] === expected[i]) i++;
          this.mismatchAt = this.offset + this.bytes + at + i;
          break;
        }
        at += n;
      }
    }
    this.bytes += chunk.length;
  }

  /** Throws unless exactly `length` bytes came and all matched. */
  check(length: number, what: string): void {
    let problem: string | undefined;
    if (this.mismatchAt !== undefined) problem = `${what}: wrong byte at offset ${this.mismatchAt}`;
    else if (this.bytes !== length) problem = `${what}: got ${this.bytes} bytes, expected ${length}`;
    if (problem === undefined) return;
    verificationFailures.count++;
    verificationFailures.first ||= problem;
    throw new Error(problem);
  }
}
