// Batches of small shard writes and reads.
//
// The body of POST /batch/shards: several whole small shards in one request, so a busy gateway pays
// a request's fixed cost (HTTP parsing, signing, a connection's turn) once per batch instead of once
// per shard. A 64 KiB object is six shards of 16 KiB; their requests, not their bytes, were most of
// its cost on both sides (gateway 1.2 ms and nodes 1.4 ms of CPU per 20 KB object against 0.5 and 0
// for an inline one).
//
// Layout: u32 LE manifest length ‖ manifest (JSON ShardBatchManifest) ‖ each shard's framed bytes
// (block ‖ CRC32C, as PUT /shards/:id takes them), in manifest order. The body is sent
// UNSIGNED-PAYLOAD, as a streamed shard is: every frame carries its CRC32C, which the store checks
// before storing, and hashing the whole body on both sides cost the gateway ~4% of its CPU on
// 64 KiB PUTs. The manifest, which says under which ids the bytes are stored, stays covered by the
// signature through BATCH_MANIFEST_SHA256_HEADER.
//
// POST /batch/reads takes JSON {reads: [{id, start, end}]} (data byte ranges, end inclusive) and
// answers u32 LE manifest length ‖ manifest (JSON {results: BatchResult<{length}>[]}) ‖ the bytes of
// each read that succeeded, in order: a small GET reads k shards of a few KiB each, and their
// requests were most of its cost too.

import type { BatchError, BatchResponse } from '../common/http.js';

/** Most shards one batch carries. */
export const MAX_SHARD_BATCH = 64;
/** Most framed bytes one batch carries (the node reads a signed body whole, up to 1 MiB). */
export const MAX_SHARD_BATCH_BYTES = 768 * 1024;
/** Shards at most this long (framed) are gathered into batches; longer ones go alone. */
export const BATCHED_SHARD_MAX_BYTES = 128 * 1024;
/** Reads of at most this many bytes are gathered into batches; longer ones go alone. */
export const BATCHED_READ_MAX_BYTES = 128 * 1024;
/** Most data bytes one read batch asks for. */
export const MAX_READ_BATCH_BYTES = 768 * 1024;
export const MAX_READ_BATCH = 64;

/**
 * Hex SHA-256 of a batch body's manifest head (its length prefix and JSON): an x-cairn-* header, so
 * the request's signature covers it, and the node refuses a batch whose manifest does not match.
 */
export const BATCH_MANIFEST_SHA256_HEADER = 'x-cairn-batch-manifest-sha256';

/** The manifest is small JSON: 64 entries of an id (≤ 200 chars) and two numbers. */
const MAX_MANIFEST_BYTES = 64 * 1024;
const LENGTH_PREFIX = 4;

export interface BatchedShard {
  id: string;
  blockSize: number;
  /** The shard's framed bytes. */
  framed: Buffer;
}

interface ShardBatchManifest {
  shards: { id: string; blockSize: number; length: number }[];
}

export class ShardBatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardBatchError';
  }
}

/** The batch body, in one buffer: it goes out with its content-length in one write. */
export function encodeShardBatch(shards: readonly BatchedShard[]): Buffer {
  const manifest: ShardBatchManifest = { shards: shards.map((s) => ({ id: s.id, blockSize: s.blockSize, length: s.framed.length })) };
  return Buffer.concat([...manifestHead(manifest), ...shards.map((s) => s.framed)]);
}

/**
 * Splits a batch body back into its shards (views of `body`). Only the framing is checked here: ids,
 * block sizes and frames are each shard's own business, checked by the store as for a lone PUT.
 */
export function decodeShardBatch(body: Buffer): BatchedShard[] {
  const { manifest, end } = readManifest(body, 'shard batch');
  const entries = manifestEntries(manifest);
  const framed = cutBytes(body, end, entries.map((e) => e.length));
  return entries.map(({ id, blockSize }, i) => ({ id, blockSize, framed: framed[i]! }));
}

/** The bytes BATCH_MANIFEST_SHA256_HEADER hashes: the length prefix and the manifest (as far as the body holds it). */
export function shardBatchManifestHead(body: Buffer): Buffer {
  if (body.length < LENGTH_PREFIX) throw new ShardBatchError('a shard batch starts with its manifest length');
  return body.subarray(0, Math.min(body.length, LENGTH_PREFIX + body.readUInt32LE(0)));
}

// ---- the framing both bodies share ----------------------------------------------------------------

/** A manifest as it leads a body: its length (u32 LE), then its JSON. */
function manifestHead(manifest: unknown): Buffer[] {
  const json = Buffer.from(JSON.stringify(manifest));
  const prefix = Buffer.allocUnsafe(LENGTH_PREFIX);
  prefix.writeUInt32LE(json.length, 0);
  return [prefix, json];
}

/** The parsed manifest leading `body`, and where the bytes after it start. */
function readManifest(body: Buffer, what: string): { manifest: unknown; end: number } {
  if (body.length < LENGTH_PREFIX) throw new ShardBatchError(`a ${what} starts with its manifest length`);
  const length = body.readUInt32LE(0);
  const end = LENGTH_PREFIX + length;
  if (length > MAX_MANIFEST_BYTES || end > body.length) {
    throw new ShardBatchError(`a ${what} manifest of ${length} bytes does not fit (at most ${MAX_MANIFEST_BYTES}, body ${body.length})`);
  }
  try {
    return { manifest: JSON.parse(body.toString('utf8', LENGTH_PREFIX, end)), end };
  } catch {
    throw new ShardBatchError(`the ${what} manifest is not JSON`);
  }
}

/** Views of `body` from `start` on, one per length (none where it is undefined); they must use up the body exactly. */
function cutBytes(body: Buffer, start: number, lengths: (number | undefined)[]): (Buffer | undefined)[] {
  let at = start;
  const views = lengths.map((length) => {
    if (length === undefined) return undefined;
    if (at + length > body.length) throw new ShardBatchError(`the manifest runs past the ${body.length}-byte body`);
    at += length;
    return body.subarray(at - length, at);
  });
  if (at !== body.length) throw new ShardBatchError(`the manifest accounts for ${at} bytes of a ${body.length}-byte body`);
  return views;
}

function manifestEntries(parsed: unknown): ShardBatchManifest['shards'] {
  const shards = (parsed as Partial<ShardBatchManifest> | null)?.shards;
  if (!Array.isArray(shards) || shards.length === 0 || shards.length > MAX_SHARD_BATCH) {
    throw new ShardBatchError(`a batch carries 1..${MAX_SHARD_BATCH} shards`);
  }
  return shards.map((entry: unknown, i) => {
    const { id, blockSize, length } = (entry ?? {}) as Record<string, unknown>;
    if (typeof id !== 'string' || !isCount(blockSize) || !isCount(length)) {
      throw new ShardBatchError(`shards[${i}] needs an id, a blockSize and a length`);
    }
    return { id, blockSize, length };
  });
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// ---- read batches -------------------------------------------------------------------------------

export interface BatchedRead {
  id: string;
  start: number;
  /** Inclusive. */
  end: number;
}

export interface ShardReadBatchRequest {
  reads: BatchedRead[];
}

/** A read's answer: its bytes, or the error it would have had alone. */
export type ReadResult = { ok: Buffer[] } | { error: BatchError };

/** The reply's parts, ready to be written in order (the bytes are not copied). */
export function encodeReadResults(results: readonly ReadResult[]): Buffer[] {
  const manifest: BatchResponse<{ length: number }> = {
    results: results.map((r) => ('ok' in r ? { ok: { length: r.ok.reduce((sum, b) => sum + b.length, 0) } } : { error: r.error })),
  };
  return [...manifestHead(manifest), ...results.flatMap((r) => ('ok' in r ? r.ok : []))];
}

/** Splits a read batch reply into one answer per read asked for (the bytes are views of `body`). */
export function decodeReadResults(body: Buffer, asked: number): ({ ok: Buffer } | { error: BatchError })[] {
  const { manifest, end } = readManifest(body, 'read batch reply');
  const results = (manifest as Partial<BatchResponse<{ length: number }>> | null)?.results;
  if (!Array.isArray(results) || results.length !== asked) throw new ShardBatchError(`${asked} reads got ${Array.isArray(results) ? results.length : 'no'} answers`);
  const lengths = results.map((r) => {
    if ('error' in r) return undefined;
    if (!isCount(r.ok.length)) throw new ShardBatchError('a read answer has no length');
    return r.ok.length;
  });
  const bytes = cutBytes(body, end, lengths);
  return results.map((r, i) => ('error' in r ? { error: r.error } : { ok: bytes[i]! }));
}

/** Checks a read batch request: 1..MAX_READ_BATCH reads, within MAX_READ_BATCH_BYTES in all. */
export function readBatchItems(body: unknown): BatchedRead[] {
  const reads = (body as Partial<ShardReadBatchRequest> | null)?.reads;
  if (!Array.isArray(reads) || reads.length === 0 || reads.length > MAX_READ_BATCH) throw new ShardBatchError(`a read batch carries 1..${MAX_READ_BATCH} reads`);
  let bytes = 0;
  const items = reads.map((entry: unknown, i) => {
    const { id, start, end } = (entry ?? {}) as Record<string, unknown>;
    if (typeof id !== 'string' || !isCount(start) || !isCount(end) || end < start) throw new ShardBatchError(`reads[${i}] needs an id and a range start <= end`);
    bytes += end - start + 1;
    return { id, start, end };
  });
  if (bytes > MAX_READ_BATCH_BYTES) throw new ShardBatchError(`a read batch asks for ${bytes} bytes, at most ${MAX_READ_BATCH_BYTES}`);
  return items;
}
