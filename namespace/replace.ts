// Placement compare-and-swap, the commit step of a repair: pure rules (no I/O), called by the store
// with the object's key (or the upload) locked. The version id does not change, so a reader holding
// the record from before still reads a valid object (the old shards are only queued for GC, never
// overwritten). The same rules serve object records and the parts of uploads in progress: an upload
// may stay open for days, and a part that lost shards meanwhile would become an object born with
// too few to survive the next loss.
import type { KvOp } from './engine.js';
import { placementConflict } from './errors.js';
import { refKey } from './keys.js';
import { encode, garbageOp, type RefMaker } from './records.js';
import type { ReplaceShardsRequest, Segment, ShardPlacement } from './types.js';
import * as v from './validate.js';

const describe = (p: ShardPlacement): string => `${p.nodeId ?? '(none)'}/${p.shardId}`;

/**
 * The record (an object, or a part) after the swap; `version` is what req.versionId must name: the
 * object's version, or the part's upload id. Throws PlacementConflict when the record moved on,
 * InvalidArgument when the request cannot apply.
 */
export function applyReplacement<R extends { segments: Segment[] }>(current: R, version: string, req: ReplaceShardsRequest): R {
  if (version !== req.versionId) throw placementConflict(`the record is at version ${version}, not ${req.versionId}`);
  const segment = current.segments[req.segment];
  if (!segment) v.fail(`segment ${req.segment} does not exist: the record has ${current.segments.length}`);
  checkFrom(segment.placements, req);
  checkNewIds(current.segments, req);
  const placements = segment.placements.map((p) => ({ ...p }));
  for (const c of req.changes) placements[c.index] = { nodeId: c.to.nodeId, shardId: c.to.shardId };
  checkSpread(placements, req);
  return { ...current, segments: current.segments.map((s, i) => (i === req.segment ? { ...s, placements } : s)) };
}

function checkFrom(placements: ShardPlacement[], req: ReplaceShardsRequest): void {
  for (const c of req.changes) {
    const now = placements[c.index];
    if (!now) v.fail(`shard index ${c.index} does not exist: segments have ${placements.length} shards`);
    if (now.nodeId !== c.from.nodeId || now.shardId !== c.from.shardId) {
      throw placementConflict(`shard ${c.index} of segment ${req.segment} is ${describe(now)}, not ${describe(c.from)}`);
    }
  }
}

/** A reused id would share a reverse-index entry and GC fate with another shard. */
function checkNewIds(segments: Segment[], req: ReplaceShardsRequest): void {
  const used = new Set(segments.flatMap((s) => s.placements.map((p) => p.shardId)));
  for (const c of req.changes) if (used.has(c.to.shardId)) v.fail(`shard id ${JSON.stringify(c.to.shardId)} is already used by this record`);
}

/** Two shards of a segment on one node are lost together; the clash comes from a placement repair did not touch, so it is a conflict. */
function checkSpread(placements: ShardPlacement[], req: ReplaceShardsRequest): void {
  for (const c of req.changes) {
    const clash = placements.findIndex((p, i) => i !== c.index && p.nodeId === c.to.nodeId);
    if (clash !== -1) throw placementConflict(`node ${c.to.nodeId} already holds shard ${clash} of segment ${req.segment}`);
  }
}

/** Reverse index and GC ops of a swap: the replaced shards lose their entries and go to GC, the new ones gain entries (made by `makeRef`). */
export function replacementOps(makeRef: RefMaker, req: ReplaceShardsRequest, nowMs: number): KvOp[] {
  return req.changes.flatMap((c): KvOp[] => {
    const { from, to } = c;
    const nodeId = to.nodeId ?? v.fail(`changes: shard ${c.index} must move to a node`);
    const ref = makeRef({ nodeId, shardId: to.shardId, segment: req.segment, index: c.index });
    const ops: KvOp[] = [{ type: 'put', space: 'shards', key: refKey(ref.nodeId, ref.shardId), value: encode(ref) }];
    if (from.nodeId !== null) ops.push({ type: 'del', space: 'shards', key: refKey(from.nodeId, from.shardId) }, garbageOp(from, nowMs));
    return ops;
  });
}
