// Typed, guarded access to the @ronomon/reed-solomon native addon.
//
// The addon is CommonJS with no type declarations, so it is loaded through createRequire.
// Every call goes through the guards below because the addon assert()s on a zero-length Buffer
// (its data pointer is NULL) and that aborts the whole process instead of throwing.
import { createRequire } from 'node:module';

interface Binding {
  readonly MAX_K: number;
  readonly MAX_M: number;
  create(k: number, m: number): Buffer;
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    // The addon calls back with no arguments: argument errors throw synchronously instead.
    callback: () => void,
  ): void;
}

const binding = createRequire(import.meta.url)('@ronomon/reed-solomon') as Binding;

export const NATIVE_MAX_K = binding.MAX_K;
export const NATIVE_MAX_M = binding.MAX_M;

/** The addon reads lengths and offsets as uint32 and asserts beyond that. */
const MAX_U32 = 0xffffffff;

/** One call of the addon: `buffer` holds the k data shards side by side, `parity` the m parity shards. */
export interface RsCall {
  context: Buffer;
  /** Bitmask of the shards holding valid bytes (bit i < k: data shard i; bit k + j: parity shard j). */
  sources: number;
  /** Bitmask of the shards to compute. */
  targets: number;
  buffer: Buffer;
  bufferOffset: number;
  bufferSize: number;
  parity: Buffer;
  parityOffset: number;
  paritySize: number;
}

/** Builds a coding context; cheap enough to call once per (k, m) and reuse, also concurrently. */
export function createContext(k: number, m: number): Buffer {
  requireInt('k', k, 1, NATIVE_MAX_K);
  requireInt('m', m, 1, NATIVE_MAX_M);
  return binding.create(k, m);
}

/** Runs one encode/reconstruct on the libuv threadpool. The buffers must not be touched until it settles. */
export function rsEncode(call: RsCall): Promise<void> {
  guard(call);
  return new Promise<void>((resolve) => {
    binding.encode(
      call.context,
      call.sources,
      call.targets,
      call.buffer,
      call.bufferOffset,
      call.bufferSize,
      call.parity,
      call.parityOffset,
      call.paritySize,
      resolve,
    );
  });
}

function guard(call: RsCall): void {
  requireNonEmptyBuffer('context', call.context);
  requireNonEmptyBuffer('buffer', call.buffer);
  requireNonEmptyBuffer('parity', call.parity);
  requireRegion('buffer', call.buffer, call.bufferOffset, call.bufferSize);
  requireRegion('parity', call.parity, call.parityOffset, call.paritySize);
  requireInt('sources', call.sources, 1, MAX_U32);
  requireInt('targets', call.targets, 1, MAX_U32);
}

function requireNonEmptyBuffer(name: string, value: Buffer): void {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${name} must be a Buffer`);
  if (value.length === 0) throw new RangeError(`${name} must not be empty (the addon would abort the process)`);
  if (value.length > MAX_U32) throw new RangeError(`${name} is longer than the addon supports (${value.length} bytes)`);
}

function requireRegion(name: string, buf: Buffer, offset: number, size: number): void {
  requireInt(`${name} offset`, offset, 0, MAX_U32);
  requireInt(`${name} size`, size, 1, MAX_U32);
  if (offset + size > buf.length) {
    throw new RangeError(`${name} offset + size (${offset} + ${size}) exceeds its length ${buf.length}`);
  }
}

function requireInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  }
}
