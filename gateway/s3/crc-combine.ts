// CRC combination: the CRC of A‖B from crc(A), crc(B) and the length of B, without the bytes
// (zlib's crc32_combine, widened to 64 bits). Running n zero bytes through a CRC register is a
// linear map over GF(2); its matrix for 2^(k+1) bytes is the square of the one for 2^k bytes, so
// those powers are built once per algorithm and combining costs one matrix-vector product per set
// bit of the length. A multipart object's full-object checksum then needs only the parts' CRCs.
//
// crc(A‖B) = Z(len B)·crc(A) ⊕ crc(B) ⊕ Z(len B)·(init ⊕ xorout): the last term vanishes for
// CRC32, CRC32C and CRC64NVME, whose init and xorout are both all ones.

export const COMBINABLE_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME'] as const;
export type CombinableAlgorithm = (typeof COMBINABLE_ALGORITHMS)[number];

/** A GF(2) matrix of `width` columns; column n is the image of bit n, as low and high 32-bit halves. */
interface Matrix {
  lo: Uint32Array;
  hi: Uint32Array;
}

/** Reflected polynomials, split into 32-bit halves: 64-bit values would need BigInt in the inner loop. */
const SPECS: Readonly<Record<CombinableAlgorithm, { width: 32 | 64; polyLo: number; polyHi: number }>> = {
  CRC32: { width: 32, polyLo: 0xedb88320, polyHi: 0 },
  CRC32C: { width: 32, polyLo: 0x82f63b78, polyHi: 0 },
  CRC64NVME: { width: 64, polyLo: 0xac4bc9b5, polyHi: 0x9a6c9329 },
};

function times(m: Matrix, width: number, lo: number, hi: number): [number, number] {
  let rLo = 0;
  let rHi = 0;
  for (let n = 0; n < width; n++) {
    const bit = n < 32 ? (lo >>> n) & 1 : (hi >>> (n - 32)) & 1;
    if (bit) {
      rLo ^= m.lo[n]!;
      rHi ^= m.hi[n]!;
    }
  }
  return [rLo >>> 0, rHi >>> 0];
}

function square(m: Matrix, width: number): Matrix {
  const out: Matrix = { lo: new Uint32Array(width), hi: new Uint32Array(width) };
  for (let n = 0; n < width; n++) [out.lo[n], out.hi[n]] = times(m, width, m.lo[n]!, m.hi[n]!);
  return out;
}

class ZeroOperators {
  /** powers[k] appends 2^k zero bytes. */
  private readonly powers: Matrix[];

  constructor(readonly width: 32 | 64, polyLo: number, polyHi: number) {
    // One zero bit: shift right by one, folding the polynomial in when bit 0 falls out.
    const bit: Matrix = { lo: new Uint32Array(width), hi: new Uint32Array(width) };
    bit.lo[0] = polyLo;
    bit.hi[0] = polyHi;
    for (let n = 1; n < width; n++) {
      const target = n - 1;
      if (target < 32) bit.lo[n] = (1 << target) >>> 0;
      else bit.hi[n] = (1 << (target - 32)) >>> 0;
    }
    const byte = square(square(square(bit, width), width), width);
    this.powers = [byte];
  }

  power(k: number): Matrix {
    while (this.powers.length <= k) this.powers.push(square(this.powers[this.powers.length - 1]!, this.width));
    return this.powers[k]!;
  }
}

const operators = new Map<CombinableAlgorithm, ZeroOperators>();

function operatorsFor(algorithm: CombinableAlgorithm): ZeroOperators {
  let ops = operators.get(algorithm);
  if (ops === undefined) {
    const spec = SPECS[algorithm];
    ops = new ZeroOperators(spec.width, spec.polyLo, spec.polyHi);
    operators.set(algorithm, ops);
  }
  return ops;
}

export function isCombinable(algorithm: string): algorithm is CombinableAlgorithm {
  return (COMBINABLE_ALGORITHMS as readonly string[]).includes(algorithm);
}

function split(value: Buffer, width: number): [number, number] {
  if (value.length * 8 !== width) throw new RangeError(`a ${width}-bit CRC must be ${width / 8} bytes, got ${value.length}`);
  return width === 32 ? [value.readUInt32BE(0), 0] : [value.readUInt32BE(4), value.readUInt32BE(0)];
}

function join(lo: number, hi: number, width: number): Buffer {
  const out = Buffer.allocUnsafe(width / 8);
  if (width === 32) out.writeUInt32BE(lo >>> 0, 0);
  else {
    out.writeUInt32BE(hi >>> 0, 0);
    out.writeUInt32BE(lo >>> 0, 4);
  }
  return out;
}

/**
 * The CRC of A‖B. CRCs are the big-endian digest bytes S3 base64-encodes; `secondLength` is the
 * byte length of B (any safe integer).
 */
export function crcCombine(algorithm: CombinableAlgorithm, first: Buffer, second: Buffer, secondLength: number): Buffer {
  if (!Number.isSafeInteger(secondLength) || secondLength < 0) throw new RangeError(`bad length ${secondLength}`);
  const ops = operatorsFor(algorithm);
  let [lo, hi] = split(first, ops.width);
  const [secondLo, secondHi] = split(second, ops.width);
  // Powers of one operator commute, so the bits of the length can be taken in any order.
  let remaining = secondLength;
  for (let k = 0; remaining > 0; k++) {
    if (remaining % 2 === 1) [lo, hi] = times(ops.power(k), ops.width, lo, hi);
    remaining = Math.floor(remaining / 2);
  }
  return join(lo ^ secondLo, hi ^ secondHi, ops.width);
}

/** The CRC of the concatenation of pieces, each given by its CRC and byte length. */
export function crcOfConcatenation(algorithm: CombinableAlgorithm, pieces: readonly { crc: Buffer; length: number }[]): Buffer {
  const width = SPECS[algorithm].width;
  // The CRC of nothing is 0 for these algorithms (init and xorout cancel).
  let crc: Buffer = Buffer.alloc(width / 8);
  for (const piece of pieces) crc = crcCombine(algorithm, crc, piece.crc, piece.length);
  return crc;
}
