// The write path: cuts an object's bytes into segments, erasure-codes each segment stripe by stripe
// and streams shard i of every stripe to its node, all k+m nodes in parallel. Memory is bounded by a
// couple of stripes per segment, whatever the object size. A segment of one stripe (a small object)
// is not streamed: its shards are whole once encoded and go as whole-shard writes, which the node
// client batches.
import { encodeStripes, shardFrame, type EncodedStripe, type StripeBudget, type StripeBuffers } from '../../erasure/stream.js';
import type { StripeCodec } from '../../erasure/codec.js';
import { stripeDataSize, type Layout } from '../../erasure/layout.js';
import { NamespaceError, type NamespaceClient } from '../../namespace/client.js';
import type { Segment, ShardPlacement } from '../../namespace/types.js';
import type { StorageNodePool } from '../../storage-node/client.js';
import type { Logger } from '../../common/log.js';
import { ChunkSource } from './chunk-source.js';
import { checkSegmentChain, crcTap } from './integrity.js';
import { encodeBlockCrcs } from '../../erasure/frames.js';
import { s3Error } from '../s3/errors.js';
import { sharedUploadBudget } from './memory-budget.js';
import { FrameChannel } from './frame-channel.js';
import { pooledStripeBuffers } from './stripe-buffers.js';
import type { NodeDirectory } from './node-directory.js';

export interface WriterDeps {
  namespace: NamespaceClient;
  /** Chooses each new segment's nodes (from the node list it keeps). */
  directory: Pick<NodeDirectory, 'place'>;
  nodes: StorageNodePool;
  codec: StripeCodec;
  log: Logger;
  /** Memory for stripes being filled; the process-wide budget when absent. */
  uploadBudget?: StripeBudget;
  /** Where full stripe buffers come from; the process-wide pool when absent. */
  stripeBuffers?: StripeBuffers;
}

export interface WriteOptions {
  layout: Layout;
  /** Bytes of object data per segment; each segment gets its own placement. */
  segmentSize: number;
  /** Embedded in every shard id, so shards can be traced back to the object version that wrote them. */
  versionId: string;
  /** Shards that must be durable for the write to succeed (k by default: up to m nodes may be down). */
  writeQuorum: number;
  /**
   * A node that accepts no bytes for this long is treated as failed for this write, so one hung
   * node (stopped, not dead) cannot stall every upload that placed a shard on it.
   */
  stallTimeoutMs: number;
  /** Aborted when the client has gone: a stripe waiting for upload memory stops waiting. */
  signal?: AbortSignal;
  /** The object's size as its client declared it, when known: sizes each segment's first stripe buffer (EncodeOptions.expectedBytes). */
  expectedSize?: number;
}

export interface WrittenData {
  size: number;
  segments: Segment[];
}

export function shardIdFor(versionId: string, segment: number, index: number): string {
  return `${versionId}.${segment}.${index}`;
}

/** Writes all bytes of `source`; on failure, deletes what it wrote (best effort) and throws an S3Error. */
export async function writeObjectData(source: AsyncIterable<Uint8Array>, opts: WriteOptions, deps: WriterDeps): Promise<WrittenData> {
  const chunks = new ChunkSource(source);
  const segments: Segment[] = [];
  // At most two segments at once: one sending its bytes, the one before waiting for its nodes to
  // confirm (their last writes and fsyncs), so that the next segment's placement and first stripes
  // overlap that wait instead of following it.
  const inFlight: Promise<Segment>[] = [];
  try {
    while (!(await chunks.atEnd())) {
      let allSent!: () => void;
      const sent = new Promise<void>((resolve) => (allSent = resolve));
      const writing = writeSegment(chunks.take(opts.segmentSize), segments.length + inFlight.length, opts, deps, allSent);
      writing.catch(() => undefined); // awaited below, or in the catch
      inFlight.push(writing);
      await Promise.race([sent, writing]);
      if (inFlight.length > 1) segments.push(await inFlight.shift()!);
    }
    while (inFlight.length > 0) segments.push(await inFlight.shift()!);
    return { size: segments.reduce((sum, s) => sum + s.size, 0), segments };
  } catch (err) {
    // A failed segment discarded its own shards; the others are discarded once they have settled.
    for (const writing of inFlight.splice(0)) {
      const segment = await writing.catch(() => undefined);
      if (segment) segments.push(segment);
    }
    discardSegments(segments, deps);
    throw err;
  }
}

/**
 * Whether a failed commit (commitObject, putPart) certainly did not apply, so that its shards may be
 * discarded: the namespace answered and refused (4xx). When its answer was lost (unreachable, killed
 * after its batch, a timeout) the commit may have applied, and discarding would leave a visible object
 * without its bytes; the orphan collector deletes those shards later if no record references them.
 */
export function commitRefused(err: unknown): boolean {
  return err instanceof NamespaceError && err.status >= 400 && err.status < 500;
}

/** Best-effort removal of shards that no committed object will reference; GC catches what this misses. */
export function discardSegments(segments: Segment[], deps: Pick<WriterDeps, 'nodes' | 'namespace' | 'log'>): void {
  // An upload cut off before its first stripe was placed wrote nothing: no node list to ask for
  // (a thousand uploads whose clients left at once each asked the namespace for one).
  if (!segments.some((segment) => segment.placements.some((p) => p.nodeId))) return;
  void (async () => {
    const nodes = await deps.namespace.listNodes().catch(() => []);
    const urls = new Map(nodes.map((n) => [n.id, n.url]));
    for (const segment of segments) {
      for (const placement of segment.placements) {
        const url = placement.nodeId ? urls.get(placement.nodeId) : undefined;
        if (url) await deps.nodes.get(url).deleteShard(placement.shardId).catch(() => undefined);
      }
    }
  })().catch((err: unknown) => deps.log.warn('discarding shards failed', { err }));
}

/** One shard of a segment being written to its node. */
interface ShardWrite {
  index: number;
  nodeId: string;
  /** Settles (never rejects) when the node has answered; `failed` then says how. */
  done: Promise<void>;
  failed: Error | undefined;
  /** Gives up on the shard: destroys a streamed body, or withdraws a whole shard not sent yet. */
  cancel(): void;
}

interface ShardUpload extends ShardWrite {
  body: FrameChannel;
}

/** Writes one segment; `allSent` is called once its source is consumed and every byte is queued for its nodes. */
async function writeSegment(source: AsyncIterable<Uint8Array>, segmentIndex: number, opts: WriteOptions, deps: WriterDeps, allSent?: () => void): Promise<Segment> {
  const { k } = opts.layout;
  // Placed and opened only once the first stripe is encoded: an upload whose client is slow to send
  // holds no placement, no node connections and no shard buffers while its first stripe fills.
  let uploads: ShardUpload[] = [];
  let writes: ShardWrite[] = [];
  const received = crcTap(source);
  const dataBlockCrcs: number[] = [];
  const dataBlockLengths: number[] = [];
  let size = 0;
  try {
    const stripes = encodeStripes(received.bytes, opts.layout, deps.codec, {
      budget: deps.uploadBudget ?? sharedUploadBudget,
      buffers: deps.stripeBuffers ?? pooledStripeBuffers,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.expectedSize === undefined ? {} : { expectedBytes: Math.min(opts.segmentSize, Math.max(0, opts.expectedSize - segmentIndex * opts.segmentSize)) }),
    });
    for await (const stripe of stripes) {
      size += stripe.dataLength;
      for (let i = 0; i < k; i++) {
        dataBlockCrcs.push(stripe.crcs[i]!);
        dataBlockLengths.push(stripe.blockLength);
      }
      if (stripe.index === 0 && stripe.dataLength < stripeDataSize(opts.layout)) {
        // A short first stripe means the source ended: the segment is this one stripe.
        writes = await startWholeWrites(stripe, segmentIndex, opts, deps);
        break;
      }
      if (stripe.index === 0) writes = uploads = await startUploads(segmentIndex, opts, deps);
      const full = uploads.map((u) => queueFrames(u, shardFrame(stripe, u.index)));
      stripe.release(); // the uploads hold what they queued
      await Promise.all(uploads.map((u, i) => (full[i] ? awaitDrain(u, opts.stallTimeoutMs) : undefined)));
      requireQuorum(uploads, opts.writeQuorum);
    }
    for (const upload of uploads) if (!upload.failed) upload.body.end();
    allSent?.();
    await Promise.all(writes.map((w) => awaitCompletion(w, opts.stallTimeoutMs)));
    requireQuorum(writes, opts.writeQuorum);
    checkSegmentChain(received.crc(), received.length(), dataBlockCrcs, dataBlockLengths);
  } catch (err) {
    for (const w of writes) w.cancel();
    await Promise.all(writes.map((w) => w.done));
    if (writes.length > 0) discardSegments([{ size, placements: placementsOf(writes, segmentIndex, opts) }], deps);
    throw err;
  }
  for (const w of writes) if (w.failed) deps.log.warn('shard write failed; repair will rebuild it', { shard: shardIdFor(opts.versionId, segmentIndex, w.index), node: w.nodeId, err: w.failed });
  return { size, placements: placementsOf(writes, segmentIndex, opts), crc32c: received.crc(), blockCrcs: encodeBlockCrcs(dataBlockCrcs) };
}

/** The segment's k + m nodes, as the node directory places them. */
async function placeSegment(opts: WriteOptions, deps: WriterDeps): Promise<{ id: string; url: string }[]> {
  const { k, m } = opts.layout;
  const nodes = await deps.directory.place(k + m);
  if (nodes.length < opts.writeQuorum) {
    throw s3Error('ServiceUnavailable', `only ${nodes.length} storage nodes are up; a write needs ${opts.writeQuorum}`);
  }
  return nodes;
}

/**
 * A one-stripe segment (most small objects) has whole shards as soon as it is encoded: each goes in
 * one request with its length and no stream, which lets the node client gather small ones into
 * batches while the node is busy (see storage-node/shard-batch.ts).
 */
async function startWholeWrites(stripe: EncodedStripe, segmentIndex: number, opts: WriteOptions, deps: WriterDeps): Promise<ShardWrite[]> {
  const nodes = await placeSegment(opts, deps);
  const writes = nodes.map((node, index) => {
    const abort = new AbortController();
    const write: ShardWrite = { index, nodeId: node.id, failed: undefined, done: Promise.resolve(), cancel: () => abort.abort() };
    const framed = Buffer.concat(shardFrame(stripe, index)); // a copy: the stripe's buffers may be reused
    write.done = deps.nodes
      .get(node.url)
      .putWholeShard(shardIdFor(opts.versionId, segmentIndex, index), opts.layout.blockSize, framed, abort.signal)
      .then(
        () => undefined,
        (err: unknown) => {
          write.failed ??= err instanceof Error ? err : new Error(String(err));
        },
      );
    return write;
  });
  stripe.release();
  return writes;
}

/** Chooses the segment's nodes and opens one shard upload to each. */
async function startUploads(segmentIndex: number, opts: WriteOptions, deps: WriterDeps): Promise<ShardUpload[]> {
  const nodes = await placeSegment(opts, deps);
  return nodes.map((node, index) => startUpload(node, index, segmentIndex, opts, deps));
}

function startUpload(node: { id: string; url: string }, index: number, segmentIndex: number, opts: WriteOptions, deps: WriterDeps): ShardUpload {
  const body = new FrameChannel(1024 * 1024);
  const abort = new AbortController();
  const cancel = (): void => {
    body.destroy();
    abort.abort();
  };
  const upload: ShardUpload = { index, nodeId: node.id, body, failed: undefined, done: Promise.resolve(), cancel };
  const shardId = shardIdFor(opts.versionId, segmentIndex, index);
  upload.done = deps.nodes
    .get(node.url)
    .putShard(shardId, opts.layout.blockSize, body, abort.signal)
    .then(
      () => undefined,
      (err: unknown) => {
        upload.failed = err instanceof Error ? err : new Error(String(err));
        body.destroy();
      },
    );
  return upload;
}

/** Queues one stripe's frame on a shard upload; true if the upload is full and must drain first. */
function queueFrames(upload: ShardUpload, frames: Buffer[]): boolean {
  if (upload.failed || upload.body.destroyed) return false;
  let full = false;
  for (const frame of joinSmall(frames)) full = !upload.body.write(frame) || full;
  return full;
}

/** Waits for a full upload to drain: the slowest node sets the pace, and one that takes nothing for too long has failed. */
async function awaitDrain(upload: ShardUpload, stallTimeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), stallTimeoutMs)));
  const outcome = await Promise.race([upload.body.drained(), upload.done, stalled]);
  clearTimeout(timer);
  if (outcome === 'stalled') {
    upload.failed = new Error(`node accepted no data for ${stallTimeoutMs} ms`);
    upload.cancel(); // the abort reaches undici even while it waits on a full socket
  }
}

/**
 * Every buffer written to a shard upload goes out as its own HTTP chunk (a size line and a write
 * of its own), so a small block and its 4-byte CRC cost more as two chunks than copying them into
 * one; a large block is not worth the copy.
 */
const JOIN_BELOW = 64 * 1024;

function joinSmall(frames: Buffer[]): Buffer[] {
  const bytes = frames.reduce((sum, f) => sum + f.length, 0);
  return frames.length > 1 && bytes <= JOIN_BELOW ? [Buffer.concat(frames, bytes)] : frames;
}

/** Waits for the node to confirm the shard is durable; a node that does not answer in time has failed. */
async function awaitCompletion(upload: ShardWrite, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([upload.done, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout' && !upload.failed) {
    upload.failed = new Error(`node did not confirm the shard within ${timeoutMs} ms`);
    upload.cancel();
  }
}

function requireQuorum(uploads: ShardWrite[], quorum: number): void {
  const healthy = uploads.filter((u) => !u.failed).length;
  if (healthy < quorum) {
    const reasons = uploads.filter((u) => u.failed).map((u) => `${u.nodeId}: ${u.failed?.message}`);
    throw s3Error('ServiceUnavailable', `only ${healthy} shard writes succeeded, ${quorum} needed (${reasons.join('; ')})`);
  }
}

/** Placements by shard index; a shard that was not written (node missing or failed) gets nodeId null. */
function placementsOf(uploads: ShardWrite[], segmentIndex: number, opts: WriteOptions): ShardPlacement[] {
  const total = opts.layout.k + opts.layout.m;
  return Array.from({ length: total }, (_, index) => {
    const upload = uploads.find((u) => u.index === index);
    return { nodeId: upload && !upload.failed ? upload.nodeId : null, shardId: shardIdFor(opts.versionId, segmentIndex, index) };
  });
}
