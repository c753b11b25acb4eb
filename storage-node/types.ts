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
  corruptBlocks: number[];
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
  | 'InternalError';
