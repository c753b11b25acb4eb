// The storage node's API shapes: shared by its server and its client.

/** Request header naming the data bytes per block of a shard being written (all blocks but the last are this size). */
export const BLOCK_SIZE_HEADER = 'x-cairn-block-size';
/** Response header: the shard's data length in bytes (CRCs and header excluded). */
export const DATA_LENGTH_HEADER = 'x-cairn-data-length';

export interface ShardInfo {
  id: string;
  blockSize: number;
  /** Bytes of block data, CRCs and file header excluded. */
  dataLength: number;
  /** Bytes on disk. */
  storedLength: number;
  mtime: string;
}

export interface PutShardResponse extends ShardInfo {
  /** CRC32C of every block as received and stored, in order. */
  blockCrcs: number[];
}

export interface ShardListPage {
  shards: ShardInfo[];
  next?: string;
}

export interface VerifyShardResponse {
  id: string;
  blocks: number;
  /** Indices of blocks failing their CRC or missing; [WHOLE_SHARD_BLOCK] when the header itself is unreadable. */
  corruptBlocks: number[];
  /** Set when the file header is corrupt: blockSize and length are unknown, so the whole shard must be rebuilt. */
  headerCorrupt?: boolean;
  /**
   * The CRC32C stored with each block, in block order, as base64 of little-endian u32s: the scrubber
   * compares the data blocks' CRCs with those recorded at write time (the integrity chain).
   */
  blockCrcs?: string;
}

/** Error codes a storage node answers with; the gateway acts on CorruptBlock and NoSuchShard. */
export type StorageErrorCode =
  | 'NoSuchShard'
  | 'CorruptBlock'
  | 'InvalidShardId'
  | 'InvalidRange'
  | 'BadFrame'
  | 'InsufficientStorage'
  | 'Unavailable'
  /** A rebuild's source could not be read (its own code in the details). */
  | 'SourceFailed'
  | 'InternalError'
  | 'Unauthorized'
  | StorageLimitErrorCode;

// ---- Added with the storage node implementation ----

/** Error codes beyond the core set: bad arguments, oversize uploads and write back-pressure. */
export type StorageLimitErrorCode = 'InvalidArgument' | 'ShardTooLarge' | 'Busy';

/** Response headers of GET/HEAD besides the data length. */
export const STORED_LENGTH_HEADER = 'x-cairn-stored-length';
export const MTIME_HEADER = 'x-cairn-mtime';

/**
 * Shard ids are also file names, so they are held to a strict alphabet: no separators, no
 * leading dot (so never "." or ".."), nothing that needs escaping in a URL path segment.
 */
export const SHARD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export function isValidShardId(id: string): boolean {
  return SHARD_ID_PATTERN.test(id);
}

/**
 * The first this-many data bytes of a read are read and verified before the node answers, so a
 * corrupt block among them is a clean `409 CorruptBlock` (which readers report to repair); one
 * further on cuts the response. Readers that want clean answers ask for at most this much per
 * request (the gateway's read window). Kept at one window, not more: a whole-shard stream (repair,
 * drain) gets its first byte after 2 MiB read instead of after its whole 8 MiB shard, and an open
 * read holds 2 MiB of the node's buffers instead of 8 (a storage process serving a rebuild peaked
 * at 302 MiB RSS with 8, 153 MiB with 2).
 */
export const PREVERIFIED_READ_BYTES = 2 * 1024 * 1024;

/**
 * POST /shards/:id/rebuild (repair): the node rebuilds shard `index` of a segment from exactly k other
 * shards of it, read from the nodes that hold them, and stores it as :id. The answer is 200 at once
 * and streams one JSON object per line (RebuildShardLine): progress while the shard is written (a
 * line per stripe: the caller's idle timeout is its stall detection), then the outcome.
 */
export interface RebuildShardRequest {
  k: number;
  m: number;
  blockSize: number;
  /** Data bytes of the segment. */
  segmentSize: number;
  /** The shard (0..k+m-1) to rebuild. */
  index: number;
  sources: RebuildSource[];
  /** Paces the rebuild: bytes read and written per second (absent: as fast as it goes). */
  bytesPerSecond?: number;
}

export interface RebuildSource {
  index: number;
  /** The base URL of the node holding it. */
  url: string;
  shardId: string;
}

export type RebuildShardLine =
  | { progress: { bytes: number } }
  | { done: PutShardResponse }
  /** sourceIndex names a source that failed (its node's error code in sourceCode): retry without it. */
  | { failed: { code: StorageErrorCode; status: number; message: string; sourceIndex?: number; sourceCode?: string } };

/** A corrupt or unreadable shard header spoils every block; it is reported as this block index. */
export const WHOLE_SHARD_BLOCK = -1;

/** POST /scrub: verify shards in id order after `after`, at the node's scrub rate (no data leaves the node). */
export interface ScrubRequest {
  after?: string;
  /** At most this many shards (default 100, max 10000). */
  limit?: number;
  /** Stop after reading about this many bytes (default 256 MiB). */
  maxBytes?: number;
}

export interface ScrubResponse {
  /** Shards verified in this call. */
  checked: number;
  /** Bytes read and checked. */
  bytes: number;
  corrupt: { id: string; blocks: number[]; header?: boolean }[];
  /** For every shard checked and found intact: its stored block CRCs (see VerifyShardResponse.blockCrcs). */
  crcs?: Record<string, string>;
  /** Cursor for the next call; absent when the walk reached the last shard. */
  next?: string;
}
