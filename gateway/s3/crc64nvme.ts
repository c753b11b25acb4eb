// CRC-64/NVME (the S3 "CRC64NVME" checksum): reflected polynomial 0x9a6c9329ac4bc9b5, init and
// xorout all ones. It is on every PUT that arrives without a checksum of its own, and no native
// implementation is installed (aws-crt has one, but it is 44 MB and 60 packages for 1.7 GB/s).
//
// The loop runs in a tiny WebAssembly module whose bytes are assembled below from its instructions
// (no toolchain, no dependency): slicing-by-16 over 64-bit table entries, 16 table loads per 16
// bytes, where JavaScript, holding the state as two int32 halves (BigInt arithmetic is two orders of
// magnitude slower), needed 32: 1.4 → 2.7 GB/s on this machine kind (64 MiB in 64 KiB pieces), and
// 3.0 → 1.6 µs for a 4 KiB body. Bytes are copied into the module's memory a chunk at a time (a
// copy costs far less than the CRC), and the 64-bit state crosses into the module as a BigInt once
// per chunk.

const POLY = 0x9a6c9329ac4bc9b5n;
const MASK64 = 0xffffffffffffffffn;
const SLICES = 16;
/** Table k lives at k * TABLE_BYTES in the module's memory: 256 little-endian u64 entries. */
const TABLE_BYTES = 256 * 8;
/** Where the bytes to checksum are copied: right after the tables. */
const DATA_AT = SLICES * TABLE_BYTES;
/** Bytes handed to the module per call. */
const CHUNK = 64 * 1024;
const PAGES = Math.ceil((DATA_AT + CHUNK) / 65536);

/** The 16 slicing tables: T0 is the byte-wise table, Tk[i] = (Tk-1[i] >> 8) ^ T0[Tk-1[i] & 0xff]. */
function slicingTables(): BigUint64Array {
  const t = new BigUint64Array(SLICES * 256);
  for (let i = 0; i < 256; i++) {
    let crc = BigInt(i);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ POLY : crc >> 1n;
    t[i] = crc;
  }
  for (let k = 1; k < SLICES; k++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(k - 1) * 256 + i]!;
      t[k * 256 + i] = (prev >> 8n) ^ t[Number(prev & 0xffn)]!;
    }
  }
  return t;
}

// ---- the module -----------------------------------------------------------------------------------

/** The opcodes used, from the WebAssembly core specification (binary format). */
const OP = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  i64Load: 0x29,
  i64Load8U: 0x31,
  i32Const: 0x41,
  i64Const: 0x42,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32And: 0x71,
  i32Shl: 0x74,
  i64Xor: 0x85,
  i64ShrU: 0x88,
  i32WrapI64: 0xa7,
} as const;
const VOID_BLOCK = 0x40;
const I32 = 0x7f;
const I64 = 0x7e;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vector = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (text: string): number[] => vector([...Buffer.from(text)].map((b) => [b]));
/** A memory access: alignment hint (log2 bytes) and a constant offset added to the address. */
const memarg = (alignLog2: number, offset: number): number[] => [...uleb(alignLog2), ...uleb(offset)];

// update(crc: i64, length: i32) -> i64 over the `length` bytes at DATA_AT.
const CRC = 0; // param
const LEN = 1; // param
const P = 2; // i32: offset into the data
const END16 = 3; // i32: length rounded down to 16
const A = 4; // i64: bytes 0..7 of a step, xored with the state
const B = 5; // i64: bytes 8..15

/** T[table][byte `j` of local `v`]: the byte index, times 8, is the load address; the table base is its offset. */
function lookup(v: number, j: number, table: number): number[] {
  return [
    OP.localGet, v,
    ...(j > 0 ? [OP.i64Const, ...sleb(8 * j), OP.i64ShrU] : []),
    OP.i32WrapI64,
    ...(j < 7 ? [OP.i32Const, ...sleb(0xff), OP.i32And] : []),
    OP.i32Const, 3, OP.i32Shl,
    OP.i64Load, ...memarg(3, table * TABLE_BYTES),
  ];
}

function updateBody(): number[] {
  // Byte j of the first word goes through table 15 - j, byte j of the second through table 7 - j.
  // The second word does not depend on the state: its lookups are folded first, in a chain the CPU
  // can run ahead on; the first word's, which wait for the previous step, fold as a balanced tree
  // (three xors deep instead of sixteen on the path from one step to the next: 2.0 → 2.7 GB/s).
  const fold: number[] = [...lookup(B, 0, 7)];
  for (let j = 1; j < 8; j++) fold.push(...lookup(B, j, 7 - j), OP.i64Xor);
  const pair = (j: number): number[] => [...lookup(A, j, 15 - j), ...lookup(A, j + 1, 14 - j), OP.i64Xor];
  fold.push(...pair(0), ...pair(2), OP.i64Xor, ...pair(4), ...pair(6), OP.i64Xor, OP.i64Xor, OP.i64Xor);
  const code = [
    OP.localGet, LEN, OP.i32Const, ...sleb(-16), OP.i32And, OP.localSet, END16,
    // 16 bytes a step.
    OP.block, VOID_BLOCK, OP.loop, VOID_BLOCK,
    OP.localGet, P, OP.localGet, END16, OP.i32GeU, OP.brIf, 1,
    OP.localGet, P, OP.i64Load, ...memarg(3, DATA_AT), OP.localGet, CRC, OP.i64Xor, OP.localSet, A,
    OP.localGet, P, OP.i64Load, ...memarg(3, DATA_AT + 8), OP.localSet, B,
    ...fold, OP.localSet, CRC,
    OP.localGet, P, OP.i32Const, 16, OP.i32Add, OP.localSet, P,
    OP.br, 0,
    OP.end, OP.end,
    // The tail a byte at a time: crc = T0[(crc ^ byte) & 0xff] ^ (crc >> 8).
    OP.block, VOID_BLOCK, OP.loop, VOID_BLOCK,
    OP.localGet, P, OP.localGet, LEN, OP.i32GeU, OP.brIf, 1,
    OP.localGet, CRC, OP.localGet, P, OP.i64Load8U, ...memarg(0, DATA_AT), OP.i64Xor,
    OP.i32WrapI64, OP.i32Const, ...sleb(0xff), OP.i32And, OP.i32Const, 3, OP.i32Shl, OP.i64Load, ...memarg(3, 0),
    OP.localGet, CRC, OP.i64Const, 8, OP.i64ShrU, OP.i64Xor, OP.localSet, CRC,
    OP.localGet, P, OP.i32Const, 1, OP.i32Add, OP.localSet, P,
    OP.br, 0,
    OP.end, OP.end,
    OP.localGet, CRC,
    OP.end,
  ];
  const locals = vector([[...uleb(2), I32], [...uleb(2), I64]]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}

/** The module's bytes: one function `update`, one memory `memory` (tables, then the data chunk). */
function crc64ModuleBytes(): Uint8Array<ArrayBuffer> {
  const FUNC = 0x60;
  const EXPORT_FUNC = 0x00;
  const EXPORT_MEMORY = 0x02;
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[FUNC, ...vector([[I64], [I32]]), ...vector([[I64]])]])),
    ...section(3, vector([[0]])),
    ...section(5, vector([[0x00, ...uleb(PAGES)]])),
    ...section(7, vector([[...name('update'), EXPORT_FUNC, 0], [...name('memory'), EXPORT_MEMORY, 0]])),
    ...section(10, vector([updateBody()])),
  ]);
}

interface Crc64Exports {
  update(crc: bigint, length: number): bigint;
  memory: WebAssembly.Memory;
}

/** One instance per thread (module state: a digest worker has its own), compiled on first use. */
let instance: { update: Crc64Exports['update']; data: Uint8Array } | undefined;

function module64(): NonNullable<typeof instance> {
  if (!instance) {
    // Synchronous compilation is fine for a module this small (about 600 bytes).
    const exports = new WebAssembly.Instance(new WebAssembly.Module(crc64ModuleBytes())).exports as unknown as Crc64Exports;
    new BigUint64Array(exports.memory.buffer, 0, SLICES * 256).set(slicingTables());
    instance = { update: exports.update, data: new Uint8Array(exports.memory.buffer, DATA_AT, CHUNK) };
  }
  return instance;
}

/** Incremental CRC64NVME; feed any split of the data and get the same digest. */
export class Crc64Nvme {
  private crc = MASK64;

  update(data: Uint8Array): this {
    const { update, data: window } = module64();
    for (let at = 0; at < data.length; at += CHUNK) {
      const piece = data.subarray(at, Math.min(data.length, at + CHUNK));
      window.set(piece);
      this.crc = BigInt.asUintN(64, update(this.crc, piece.length));
    }
    return this;
  }

  /** The 8-byte big-endian CRC, the form S3 base64-encodes in x-amz-checksum-crc64nvme. */
  digest(): Buffer {
    const out = Buffer.allocUnsafe(8);
    out.writeBigUInt64BE(this.crc ^ MASK64, 0);
    return out;
  }
}

export function crc64nvme(data: Uint8Array): Buffer {
  return new Crc64Nvme().update(data).digest();
}
