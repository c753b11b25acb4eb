// CRC-64/NVME (the S3 "CRC64NVME" checksum): reflected polynomial 0x9a6c9329ac4bc9b5,
// init and xorout all ones. No native implementation is installed (aws-crt has one, but it is
// 44 MB and 60 packages for 1.7 GB/s), so this is a slicing-by-16 table walk that loads the data
// as 32-bit little-endian words: 1.6x the byte-wise slicing-by-8 it replaced (0.69 → 1.15 GB/s on
// this machine kind), and it is on every PUT that arrives without a checksum of its own. The
// 64-bit state is kept as two int32 halves because BigInt arithmetic is two orders of magnitude
// slower in the hot loop.
import { endianness } from 'node:os';

const POLY_HI = 0x9a6c9329;
const POLY_LO = 0xac4bc9b5;
const SLICES = 16;
/** Word loads read the bytes in memory order only on a little-endian machine. */
const WORDS = endianness() === 'LE';

/** Table k at offset k*256; LO and HI hold the low and high 32 bits of each entry. */
const LO = new Int32Array(SLICES * 256);
const HI = new Int32Array(SLICES * 256);

function buildTables(): void {
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const carry = lo & 1;
      lo = (lo >>> 1) | ((hi & 1) << 31);
      hi = hi >>> 1;
      if (carry) {
        lo ^= POLY_LO;
        hi ^= POLY_HI;
      }
    }
    LO[i] = lo;
    HI[i] = hi;
  }
  for (let k = 1; k < SLICES; k++) {
    for (let i = 0; i < 256; i++) {
      const prevLo = LO[(k - 1) * 256 + i]!;
      const prevHi = HI[(k - 1) * 256 + i]!;
      const idx = prevLo & 0xff;
      LO[k * 256 + i] = ((prevLo >>> 8) | (prevHi << 24)) ^ LO[idx]!;
      HI[k * 256 + i] = (prevHi >>> 8) ^ HI[idx]!;
    }
  }
}
buildTables();

/** Incremental CRC64NVME; feed any split of the data and get the same digest. */
export class Crc64Nvme {
  private lo = -1;
  private hi = -1;

  update(data: Uint8Array): this {
    const n = data.length;
    // Byte-wise up to a 4-byte boundary, then 16 bytes a step, then the tail byte-wise.
    const head = WORDS ? Math.min(n, (4 - (data.byteOffset & 3)) & 3) : n;
    this.bytes(data, 0, head);
    const words = WORDS ? (n - head) >>> 4 : 0;
    if (words > 0) this.blocks(new Int32Array(data.buffer, data.byteOffset + head, words * 4));
    this.bytes(data, head + words * 16, n);
    return this;
  }

  private bytes(data: Uint8Array, from: number, to: number): void {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = from; i < to; i++) {
      const idx = (data[i]! ^ lo) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ LO[idx]!;
      hi = (hi >>> 8) ^ HI[idx]!;
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** 16 bytes (four little-endian words) per step; the state folds into the first two. */
  private blocks(w: Int32Array): void {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = 0; i < w.length; i += 4) {
      const a = w[i]! ^ lo;
      const b = w[i + 1]! ^ hi;
      const c = w[i + 2]!;
      const d = w[i + 3]!;
      lo =
        LO[3840 + (a & 0xff)]! ^ LO[3584 + ((a >>> 8) & 0xff)]! ^ LO[3328 + ((a >>> 16) & 0xff)]! ^ LO[3072 + (a >>> 24)]! ^
        LO[2816 + (b & 0xff)]! ^ LO[2560 + ((b >>> 8) & 0xff)]! ^ LO[2304 + ((b >>> 16) & 0xff)]! ^ LO[2048 + (b >>> 24)]! ^
        LO[1792 + (c & 0xff)]! ^ LO[1536 + ((c >>> 8) & 0xff)]! ^ LO[1280 + ((c >>> 16) & 0xff)]! ^ LO[1024 + (c >>> 24)]! ^
        LO[768 + (d & 0xff)]! ^ LO[512 + ((d >>> 8) & 0xff)]! ^ LO[256 + ((d >>> 16) & 0xff)]! ^ LO[d >>> 24]!;
      hi =
        HI[3840 + (a & 0xff)]! ^ HI[3584 + ((a >>> 8) & 0xff)]! ^ HI[3328 + ((a >>> 16) & 0xff)]! ^ HI[3072 + (a >>> 24)]! ^
        HI[2816 + (b & 0xff)]! ^ HI[2560 + ((b >>> 8) & 0xff)]! ^ HI[2304 + ((b >>> 16) & 0xff)]! ^ HI[2048 + (b >>> 24)]! ^
        HI[1792 + (c & 0xff)]! ^ HI[1536 + ((c >>> 8) & 0xff)]! ^ HI[1280 + ((c >>> 16) & 0xff)]! ^ HI[1024 + (c >>> 24)]! ^
        HI[768 + (d & 0xff)]! ^ HI[512 + ((d >>> 8) & 0xff)]! ^ HI[256 + ((d >>> 16) & 0xff)]! ^ HI[d >>> 24]!;
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** The 8-byte big-endian CRC, the form S3 base64-encodes in x-amz-checksum-crc64nvme. */
  digest(): Buffer {
    const out = Buffer.allocUnsafe(8);
    out.writeUInt32BE((~this.hi) >>> 0, 0);
    out.writeUInt32BE((~this.lo) >>> 0, 4);
    return out;
  }
}

export function crc64nvme(data: Uint8Array): Buffer {
  return new Crc64Nvme().update(data).digest();
}
