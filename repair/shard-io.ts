// Streaming shard transfers for repair: an upload that takes framed blocks (block ‖ CRC32C) with
// back-pressure from the target node, and a reader that cuts a shard's data bytes (as a storage
// node serves them) back into its blocks, so a shard can be copied without decoding anything.
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { withDeadline } from '../common/deadline.js';
import { ExactReader } from '../erasure/exact-reader.js';
import { blockCrc } from '../erasure/frames.js';
import { CRC_BYTES, stripeBlockLength, stripeCount, type Layout } from '../erasure/layout.js';
import type { PutShardResponse } from '../storage-node/types.js';
import type { RepairNodeClient } from './deps.js';

/** Bytes buffered toward one target before the writer waits for the node to take them. */
const UPLOAD_BUFFER_BYTES = 1024 * 1024;

/** A shard being written to one node. write() resolves once the node has taken the bytes (or fails). */
export class ShardUpload {
  private readonly body = new PassThrough({ highWaterMark: UPLOAD_BUFFER_BYTES });
  private readonly abortController = new AbortController();
  private readonly done: Promise<PutShardResponse>;
  private failure: Error | undefined;

  constructor(
    client: RepairNodeClient,
    readonly nodeId: string,
    readonly shardId: string,
    blockSize: number,
    private readonly stallTimeoutMs: number,
    /** The shard's framed length (known from the segment): sent as content-length. */
    framedLength?: number,
  ) {
    this.done = client.putShard(shardId, blockSize, this.body, this.abortController.signal, framedLength);
    this.done.catch((err: unknown) => {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
      this.body.destroy();
    });
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  async write(frames: Buffer[]): Promise<void> {
    this.throwIfFailed();
    let full = false;
    for (const frame of frames) full = !this.body.write(frame) || full;
    if (full) await this.within(Promise.race([once(this.body, 'drain'), once(this.body, 'close'), this.done]), 'accepted no data');
    this.throwIfFailed();
  }

  /** Ends the body and waits for the node to confirm the shard is durable. */
  async finish(): Promise<PutShardResponse> {
    this.throwIfFailed();
    this.body.end();
    return this.within(this.done, 'did not confirm the shard');
  }

  /** Gives up: the node discards an incomplete upload, so nothing is stored. */
  abort(reason: Error = new Error('repair abandoned the shard')): void {
    this.failure ??= reason;
    this.abortController.abort();
    this.body.destroy();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /** A hung node must not stall repair forever: no progress within the stall timeout fails the upload. */
  private async within<T>(promise: Promise<T>, what: string): Promise<T> {
    try {
      return await withDeadline(promise, this.stallTimeoutMs, () => new StallError(`node ${this.nodeId} ${what} within ${this.stallTimeoutMs} ms`));
    } catch (err) {
      this.abort(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  }
}

/** A node that took no data (or did not confirm) within the stall timeout. */
export class StallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StallError';
  }
}

/** A failure of the shard being read (as opposed to the one being written). */
export class SourceError extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'SourceError';
  }
}

/**
 * Yields the framed blocks of a shard read from `source` (its data bytes in order), checking the
 * length against the segment geometry. Errors of the source surface as SourceError.
 */
export async function* framedBlocks(source: AsyncIterable<Uint8Array>, layout: Layout, segmentSize: number): AsyncGenerator<{ frames: Buffer[]; bytes: number }> {
  const reader = new ExactReader(source);
  try {
    const stripes = stripeCount(layout, segmentSize);
    for (let stripe = 0; stripe < stripes; stripe++) {
      // Block and CRC in one buffer: one body chunk per block on the way to the target.
      const length = stripeBlockLength(layout, segmentSize, stripe);
      const frame = Buffer.allocUnsafe(length + CRC_BYTES);
      const block = frame.subarray(0, length);
      await reader.readInto(block).catch((err: unknown) => {
        throw new SourceError(`reading block ${stripe} failed: ${err instanceof Error ? err.message : String(err)}`, err);
      });
      frame.writeUInt32LE(blockCrc(block), length);
      yield { frames: [frame], bytes: length };
    }
    if (!(await reader.atEnd())) throw new SourceError(`source has more than ${reader.bytesRead} bytes`, undefined);
  } finally {
    await reader.close();
  }
}
