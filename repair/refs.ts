// From a reverse-index entry (a shard on a node) to the segment it belongs to, in the two forms the
// repair service passes around: a damage report for the namespace's durable queue, and a segment
// reference for the in-memory queue. One place, so every walker (node loss, drain, scrub, audit)
// names segments the same way.
import type { DamageReport, RepairReason, ShardRef } from '../namespace/types.js';
import type { SegmentRef } from './queue.js';

export function damageReportOf(ref: ShardRef, reason: RepairReason): DamageReport {
  return { ...segmentRefOf(ref), shardIndex: ref.index, nodeId: ref.nodeId, reason };
}

/** A part's segments are numbered within the part, so the part number is part of the name (`versionId` is the upload id). */
export function segmentRefOf(ref: ShardRef): SegmentRef {
  const segment: SegmentRef = { bucket: ref.bucket, key: ref.key, versionId: ref.versionId, segment: ref.segment };
  if (ref.upload) segment.part = ref.upload.partNumber;
  return segment;
}
