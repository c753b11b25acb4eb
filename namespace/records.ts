// Pure builders of the batch operations that keep the reverse index (node → shards) and the GC
// queue in step with the records. Every commit, delete, part upload, abort and completion is
// "these shards are referenced now, those were before": the difference goes to the GC queue.
import type { KvOp } from './engine.js';
import { gcKey, refKey } from './keys.js';
import type { GarbageEntry, ObjectRecord, PartRecord, Segment, ShardRef } from './types.js';

export const encode = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');
/** Only for values this process wrote itself; anything from outside goes through validate.ts. */
export const decode = <T>(raw: Buffer): T => JSON.parse(raw.toString('utf8')) as T;

/** One placement with its position in the record. */
export interface PlacedShard {
  nodeId: string | null;
  shardId: string;
  segment: number;
  index: number;
}

export function placedShards(segments: Segment[]): PlacedShard[] {
  return segments.flatMap((seg, segment) => seg.placements.map((p, index) => ({ nodeId: p.nodeId, shardId: p.shardId, segment, index })));
}

const identity = (s: { nodeId: string | null; shardId: string }): string => `${s.nodeId ?? ''}\x00${s.shardId}`;

export type RefMaker = (shard: PlacedShard & { nodeId: string }) => ShardRef;

export const objectRefs =
  (record: ObjectRecord): RefMaker =>
  (s) => ({ nodeId: s.nodeId, shardId: s.shardId, bucket: record.bucket, key: record.key, versionId: record.versionId, segment: s.segment, index: s.index });

export const partRefs =
  (upload: { bucket: string; key: string; uploadId: string }, part: PartRecord): RefMaker =>
  (s) => ({
    nodeId: s.nodeId,
    shardId: s.shardId,
    bucket: upload.bucket,
    key: upload.key,
    versionId: upload.uploadId,
    segment: s.segment,
    index: s.index,
    upload: { uploadId: upload.uploadId, partNumber: part.partNumber },
  });

/**
 * Ops that move the reverse index from `before` to `after`: shards only in `before` lose their
 * index entry and are queued for GC; every placed shard of `after` gets its entry (re)written, so
 * a shard that changes owner (a part becoming an object) points at its new owner. A shard present
 * in both (a repair commit that re-places one shard of an object) is not garbage.
 */
export function shardTransition(before: PlacedShard[], after: PlacedShard[], makeRef: RefMaker | undefined, nowMs: number): KvOp[] {
  const kept = new Set(after.map(identity));
  const ops: KvOp[] = [];
  for (const s of before) {
    if (kept.has(identity(s))) continue;
    if (s.nodeId !== null) ops.push({ type: 'del', space: 'shards', key: refKey(s.nodeId, s.shardId) });
    ops.push(garbageOp(s, nowMs));
  }
  if (makeRef) {
    for (const s of after) {
      if (s.nodeId !== null) ops.push({ type: 'put', space: 'shards', key: refKey(s.nodeId, s.shardId), value: encode(makeRef({ ...s, nodeId: s.nodeId })) });
    }
  }
  return ops;
}

/** Queues a shard for GC at `nowMs`. */
export function garbageOp(s: { nodeId: string | null; shardId: string }, nowMs: number): KvOp {
  const key = gcKey(nowMs, s.shardId, s.nodeId);
  const entry: GarbageEntry = { id: key.toString('utf8'), nodeId: s.nodeId, shardId: s.shardId, queuedAt: new Date(nowMs).toISOString() };
  return { type: 'put', space: 'gc', key, value: encode(entry) };
}
