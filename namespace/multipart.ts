// Rules of multipart uploads that need no I/O: which records a finished upload leaves behind,
// whether a completed object really is its parts, and the S3 listing range of uploads.
import type { KvOp, KvRange } from './engine.js';
import { NamespaceError } from './errors.js';
import * as k from './keys.js';
import type * as T from './types.js';
import * as v from './validate.js';

export function forgetUpload(upload: T.MultipartUploadRecord, parts: T.PartRecord[]): KvOp[] {
  return [
    { type: 'del', space: 'uploads', key: k.uploadKey(upload.uploadId) },
    { type: 'del', space: 'upload-keys', key: k.uploadIndexKey(upload.bucket, upload.key, upload.uploadId) },
    ...parts.map((p): KvOp => ({ type: 'del', space: 'parts', key: k.partKey(upload.uploadId, p.partNumber) })),
  ];
}

/**
 * The completed object must be exactly the used parts, in order: no shard orphaned, none shared.
 * Returns the segments to commit, which are the stored parts' own. The caller's copy of their
 * placements may be out of date: repair can move a part's shard between the gateway's ListParts
 * and its Complete. So only what repair never changes is compared: sizes, the integrity chain (where
 * the record carries it) and the part summaries, which also tell a re-uploaded part from the one listed.
 */
export function checkAssembly(record: T.ObjectRecord, usedParts: number[], parts: T.PartRecord[]): T.Segment[] {
  const byNumber = new Map(parts.map((p) => [p.partNumber, p]));
  const used = usedParts.map((n) => byNumber.get(n) ?? invalidPart(`part ${n} was not uploaded`));
  const stored = used.flatMap((p) => p.segments);
  const same = stored.length === record.segments.length && stored.every((seg, i) => sameContent(seg, record.segments[i]));
  if (!same) invalidPart('record segments are not the segments of usedParts in order');
  if (record.parts) {
    const matches =
      record.parts.length === used.length &&
      record.parts.every((s, i) => s.partNumber === used[i].partNumber && s.segmentCount === used[i].segments.length && s.size === used[i].size && s.etag === used[i].etag);
    if (!matches) invalidPart('record parts do not match usedParts');
  }
  return stored;
}

function sameContent(stored: T.Segment, claimed: T.Segment): boolean {
  const chain = (claimed.crc32c === undefined || claimed.crc32c === stored.crc32c) && (claimed.blockCrcs === undefined || claimed.blockCrcs === stored.blockCrcs);
  return stored.size === claimed.size && chain;
}

function invalidPart(why: string): never {
  throw new NamespaceError(400, 'InvalidPart', why);
}

/** The upload-keys range of one bucket: within the prefix, after (keyMarker, uploadIdMarker) as S3 defines them. */
export function uploadRange(bucket: string, query: T.ListUploadsQuery): KvRange {
  const prefix = Buffer.concat([k.bucketObjectsPrefix(bucket), k.utf8(query.prefix === undefined ? '' : v.text(query.prefix, 'prefix', v.MAX_KEY_BYTES, 0))]);
  const range: KvRange = { gte: prefix, lt: k.pastPrefix(prefix) };
  if (query.keyMarker === undefined || query.keyMarker === '') return range;
  const marker = v.objectKey(query.keyMarker);
  // With an upload-id marker, later uploads of the marker key follow; without one, the marker key is skipped entirely.
  const after =
    query.uploadIdMarker !== undefined && query.uploadIdMarker !== ''
      ? k.uploadIndexKey(bucket, marker, v.uploadId(query.uploadIdMarker))
      : k.pastPrefix(k.uploadIndexKey(bucket, marker, ''));
  return Buffer.compare(after, prefix) >= 0 ? { gt: after, lt: range.lt } : range;
}
