// A small seeded PRNG (xoshiro128**): the whole chaos schedule — every client's operations and
// every fault — is drawn from named streams of one seed, so a seed reproduces the schedule.
import { createHash } from 'node:crypto';

export class Prng {
  private readonly s: Uint32Array;

  /** Independent streams of one seed: `new Prng(seed, 'client-3')` never correlates with 'faults'. */
  constructor(seed: number, stream: string) {
    const digest = createHash('sha256').update(`cairn-chaos:${seed}:${stream}`).digest();
    this.s = new Uint32Array([digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)]);
    // An all-zero state would only ever yield zeros.
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** Uniform u32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)];
  }

  /** Picks a name by relative weight, e.g. { put: 3, get: 2 }. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    let r = this.next() * total;
    for (const [name, w] of entries) {
      r -= w;
      if (r < 0) return name;
    }
    return entries[entries.length - 1][0];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
