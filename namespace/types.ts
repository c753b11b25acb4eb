// The namespace's records and API shapes: the contract between the namespace service and its
// clients (gateway, repair, storage nodes). Everything here is JSON over HTTP.

import type { Layout } from "../erasure/layout.js";
export type { Layout };

/** Where shard `i` of a segment lives. `nodeId` is null when the shard was never written (a degraded write): repair fills it. */
export interface ShardPlacement {
  nodeId: string | null;
  shardId: string;
}

/** A contiguous run of object bytes coded as one unit: `placements[i]` is shard i (0..k-1 data, k..k+m-1 parity). */
export interface Segment {
  size: number;
  placements: ShardPlacement[];
  /**
   * End-to-end integrity chain: the CRC32C of the segment's bytes as received from the client,
   * and the CRC32C of every data block as stored (base64 of little-endian u32s, stripe by stripe,
   * block 0..k-1), checked against each other by CRC combination before the commit.
   */
  crc32c?: number;
  blockCrcs?: string;
}

/**
 * The longest a gateway may answer from a bucket record it read (owner, policy) without reading it
 * again, counted from when it asked.
 */
export const BUCKET_RECORD_MAX_AGE_MS = 2_000;

/**
 * How long a deleted bucket's name is held from other owners (CreateBucket answers OperationAborted,
 * as AWS does while a deleted name is not yet free). Longer than BUCKET_RECORD_MAX_AGE_MS: a gateway
 * that still trusts the deleted bucket's record would otherwise authorize its old owner, or users
 * its old policy named, in a stranger's new bucket of the same name. Its owner may re-create it at once.
 */
export const BUCKET_NAME_HOLD_MS = 10_000;

export interface BucketRecord {
  name: string;
  createdAt: string; // ISO-8601
  /** The owning user's id ('root' for the gateway's root credentials). */
  owner: string;
  /** The bucket policy document as the owner sent it (JSON text, at most 20 KB; validated by the gateway). */
  policy?: string;
  /**
   * With the policy: for each user it names, who that user was when it was put (user id → the
   * gateway's pin of them, their uniqueId). A user deleted and made again under a named id is not
   * who the policy named and gets nothing from it until the policy is put again, as in AWS.
   */
  policyPrincipals?: Record<string, string>;
  /** The bucket's tags (PutBucketTagging), in the order given; absent when none. */
  tags?: Tag[];
}

export interface ObjectRecord {
  bucket: string;
  key: string;
  /** Unique per write; shard ids embed it, and compare-and-swap on it guards concurrent updates. */
  versionId: string;
  size: number;
  /** Quoted, as S3 sends it: "\"<md5 hex>\"" or "\"<hex>-N\"" for multipart. */
  etag: string;
  lastModified: string; // ISO-8601
  contentType: string;
  /** x-amz-meta-* without the prefix, lower-cased names. */
  userMetadata: Record<string, string>;
  /** Other stored response headers (content-encoding, content-disposition, cache-control, ...). */
  headers: Record<string, string>;
  /** S3 additional checksums, e.g. { CRC32: "base64" }. */
  checksums: Record<string, string>;
  layout: Layout;
  segments: Segment[];
  /**
   * Multipart objects: the parts in order, each covering `segmentCount` consecutive segments. Absent
   * from a record read with a SegmentSelection that did not ask for them.
   */
  parts?: PartSummary[];
  /** Set when the object's bytes are kept in the namespace itself instead of erasure-coded shards (then `segments` is empty). */
  inline?: InlineData;
  /** S3 object tags in the order they were given; absent when the object has none. */
  tags?: Tag[];
  /** Set on a record read with a SegmentSelection: `segments` are then only those it selected. Never stored. */
  segmentSlice?: SegmentSlice;
}

/**
 * Which segments of an object a read wants back: none (HEAD, conditions), or those holding bytes of
 * one HTTP-style range: bytes `start` to `end` (inclusive; to the end of the object when absent), or
 * the last `suffix` bytes. A read without one gets every segment. A ranged GET of a large object
 * needs a few of its segments (a 1 GiB object's record is ~95 KB of JSON, 128 segments).
 *
 * A selected record leaves out `parts` too unless `parts: true` asks for them: only a request by
 * part number (HEAD with ?partNumber) reads them from a selected record, and a 1 GiB object's 128
 * part summaries were most of what a ranged GET's record weighed once its segments were cut.
 */
export type SegmentSelection = ({ none: true } | { start: number; end?: number } | { suffix: number }) & { parts?: true };

/** The segments a selected record carries are the object's segments `first`.. in order, the first starting at object byte `offset`. */
export interface SegmentSlice {
  first: number;
  offset: number;
}

/** An item of POST /batch/records. */
export interface ObjectReadRequest {
  bucket: string;
  key: string;
  select?: SegmentSelection;
}

/**
 * A small object's bytes, kept beside its record in the namespace (one synced batch to write, one
 * read to serve) instead of k+m shard files that would each be smaller than a filesystem block.
 * The stored record keeps only `crc32c`; the bytes (`bytes` in memory and beside the JSON in blob
 * lines, `data` inside JSON: namespace/inline-wire.ts) travel with commitObject requests and
 * getObject answers, and are absent everywhere else (listings, replaced or deleted records).
 */
export interface InlineData {
  /** CRC32C of the bytes: checked by the namespace on commit and by the gateway on every read. */
  crc32c: number;
  /** The bytes, base64: how they travel inside JSON (a record's own route, JSON lines batches). */
  data?: string;
  /** The bytes themselves: how a record holds them in memory, and how they travel as blob lines (common/json-lines.ts); never inside JSON. */
  bytes?: Buffer;
}

/**
 * One S3 tag, of an object or a bucket. The namespace checks only the shape and S3's limits
 * (MAX_OBJECT_TAGS or MAX_BUCKET_TAGS, key 1–128 and value 0–256 UTF-16 units, keys distinct);
 * which characters S3 allows is the gateway's rule.
 */
export interface Tag {
  key: string;
  value: string;
}

/** S3's limits of tags per object and per bucket. */
export const MAX_OBJECT_TAGS = 10;
export const MAX_BUCKET_TAGS = 50;

/** PUT /objects/:bucket/:key/tags: the object's tags replaced in place (its version, ETag and date kept); `[]` removes them. */
export interface SetObjectTagsRequest {
  tags: Tag[];
  /** Only `ifVersionId` applies: the tags go on that version or nowhere. */
  condition?: WriteCondition;
}

export interface SetObjectTagsResponse {
  /** The version that now carries the tags. */
  versionId: string;
}

/** The namespace refuses inline objects larger than this (the gateway's threshold is at most this). */
export const MAX_INLINE_BYTES = 64 * 1024;

export interface PartSummary {
  partNumber: number;
  size: number;
  etag: string;
  segmentCount: number;
  /** The part's own S3 checksums: GetObject with partNumber returns them for that part. */
  checksums?: Record<string, string>;
}

/** Preconditions on a commit or delete, checked atomically with it. */
export interface WriteCondition {
  /** Commit only if no object exists under the key ("If-None-Match: *"). */
  ifNoneMatch?: boolean;
  /** Commit only if the current object has this version id. */
  ifVersionId?: string;
  /** Commit only if the current object has this ETag (quoted). */
  ifEtag?: string;
}

export interface CommitObjectRequest {
  record: ObjectRecord;
  condition?: WriteCondition;
}

export interface CommitObjectResponse {
  record: ObjectRecord;
  /** The object this commit replaced, whose shards are now queued for garbage collection. */
  replaced: ObjectRecord | null;
}

// Batches (POST /batch/commits of CommitObjectRequests, /batch/records of ObjectReadRequests,
// /batch/placements of PlacementRequests; body and reply are JSON lines, or blob lines carrying
// inline objects' bytes raw, common/json-lines.ts): each item is applied and answered as if sent
// alone, and the reply has one BatchResult per item, in order, in the body's format.

/** Most items one batch carries, per kind. */
export const MAX_COMMIT_BATCH = 64;
export const MAX_READ_BATCH = 64;
export const MAX_PLACEMENT_BATCH = 64;

export type { BatchError, BatchResponse, BatchResult } from '../common/http.js';

export interface DeleteObjectResponse {
  deleted: ObjectRecord | null;
}

export interface ListObjectsQuery {
  prefix?: string;
  delimiter?: string;
  /** Exclusive start key (S3 start-after / marker). */
  startAfter?: string;
  /** Opaque token from a previous page's `nextContinuation`; wins over startAfter. */
  continuation?: string;
  maxKeys?: number; // 0..1000, default 1000
}

export interface ListEntry {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
}

export interface ListObjectsResponse {
  entries: ListEntry[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** Present when isTruncated: pass back as `continuation`. */
  nextContinuation?: string;
  /** The last key or common prefix returned (S3 v1 NextMarker). */
  lastReturned?: string;
}

export type NodeState = 'up' | 'suspect' | 'down';

export interface HeartbeatRequest {
  url: string;
  capacityBytes: number;
  usedBytes: number;
  freeBytes: number;
  zone?: string;
  /** Random per storage-node process start: a new value means the node restarted and may have lost files. */
  bootId?: string;
}

export interface NodeRecord {
  id: string;
  url: string;
  zone?: string;
  capacityBytes: number;
  usedBytes: number;
  freeBytes: number;
  firstSeen: string;
  lastHeartbeat: string;
  /** The bootId of the latest heartbeat. */
  bootId?: string;
  state: NodeState;
  /** 'draining': an operator asked for the node to be emptied; it gets no new placements. */
  mode?: NodeMode;
}

export interface PlacementRequest {
  /** How many distinct nodes are wanted (k+m). */
  count: number;
  /** Nodes that must not be chosen (e.g. ones that just failed). */
  exclude?: string[];
}

export interface PlacementResponse {
  /** Up to `count` distinct live nodes; fewer when fewer are up. The caller decides if that is enough. */
  nodes: { id: string; url: string }[];
}

/** One entry of the reverse index node → shards. */
export interface ShardRef {
  nodeId: string;
  shardId: string;
  bucket: string;
  key: string;
  versionId: string;
  segment: number;
  index: number;
  /** Set while the shard belongs to a part of a multipart upload that is not completed yet. */
  upload?: ShardRefUpload;
}

export interface ShardRefPage {
  refs: ShardRef[];
  /** Pass as `after` for the next page; absent at the end. */
  next?: string;
}

/** A shard no object references any more (overwritten, deleted, aborted), waiting out the GC grace period. */
export interface GarbageEntry {
  id: string; // queue key, pass back to acknowledge
  nodeId: string | null;
  shardId: string;
  queuedAt: string;
}

export interface MultipartUploadRecord {
  uploadId: string;
  bucket: string;
  key: string;
  initiated: string;
  contentType: string;
  userMetadata: Record<string, string>;
  headers: Record<string, string>;
  checksumAlgorithm?: string;
  /** "COMPOSITE" or "FULL_OBJECT": how the parts' checksums make the object's (with checksumAlgorithm). */
  checksumType?: string;
  /** The tags the object gets at completion (x-amz-tagging of CreateMultipartUpload). */
  tags?: Tag[];
}

export interface PartRecord {
  uploadId: string;
  partNumber: number;
  size: number;
  etag: string;
  lastModified: string;
  checksums: Record<string, string>;
  layout: Layout;
  segments: Segment[];
}

// ---- Added with the namespace service (existing shapes above are unchanged). ----

/** The upload and part a ShardRef's shard belongs to, before completion; `versionId` then holds the upload id. */
export interface ShardRefUpload {
  uploadId: string;
  partNumber: number;
}

export interface CreateBucketRequest {
  owner: string;
}

export interface ListBucketsResponse {
  buckets: BucketRecord[];
}

export interface DeleteObjectRequest {
  condition?: WriteCondition;
}

export interface ListNodesResponse {
  nodes: NodeRecord[];
}

export interface GarbageResponse {
  entries: GarbageEntry[];
}

export interface GarbageAckRequest {
  ids: string[];
}

export interface GarbageAckResponse {
  acked: number;
}

/** A new upload: the id is chosen by the namespace; `initiated` defaults to now. */
export type CreateUploadRequest = Omit<MultipartUploadRecord, 'uploadId' | 'initiated'> & { initiated?: string };

export interface PutPartResponse {
  part: PartRecord;
  /** The earlier upload of the same part number, whose shards are now queued for garbage collection. */
  replaced: PartRecord | null;
}

export interface ListPartsQuery {
  /** Exclusive part-number marker. */
  after?: number;
  maxParts?: number; // 1..1000, default 1000
}

export interface ListPartsResponse {
  parts: PartRecord[];
  isTruncated: boolean;
  nextPartNumberMarker?: number;
}

export interface ListUploadsQuery {
  prefix?: string;
  keyMarker?: string;
  uploadIdMarker?: string;
  maxUploads?: number; // 0..1000, default 1000
}

export interface ListUploadsResponse {
  uploads: MultipartUploadRecord[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
}

export interface CompleteUploadRequest {
  /** The final object: its segments must be exactly the segments of `usedParts`, in order. */
  record: ObjectRecord;
  usedParts: number[];
  condition?: WriteCondition;
}

// ---------------------------------------------------------------------------------------------
// Repair (issue 4). The namespace keeps the durable record of what needs repair; the repair
// service consumes it. Everything repair derives can be recomputed from namespace state, so a
// repair process that crashes loses no work and, thanks to compare-and-swap, duplicates none.

export type RepairReason = 'degraded-write' | 'corrupt' | 'missing' | 'unreadable' | 'node-down' | 'drain';

/** A report that one shard of a segment is missing or bad (from a gateway, the scrubber, or repair itself). */
export interface DamageReport {
  bucket: string;
  key: string;
  versionId: string;
  segment: number;
  /** The shard index that is bad; absent = "check the whole segment". */
  shardIndex?: number;
  nodeId?: string | null;
  reason: RepairReason;
  /** Set for a part of an upload in progress: `versionId` is then the upload id, `segment` a segment of this part. */
  part?: number;
}

/** One queued repair: a segment of one object version. Several reports of one segment collapse into one task. */
export interface RepairTask {
  /** Queue key; pass back to ackRepairs. */
  id: string;
  bucket: string;
  key: string;
  versionId: string;
  segment: number;
  /** Set for a part of an upload in progress (`versionId` is then the upload id), as in DamageReport. */
  part?: number;
  reasons: RepairReason[];
  /** Shard indices reported bad (may be empty: check all). */
  shardIndices: number[];
  queuedAt: string;
}

export interface RepairTaskPage {
  tasks: RepairTask[];
  next?: string;
}

/**
 * Swap shard placements of one segment, only if the object is still at `versionId` and each `from`
 * still holds. For a part of an upload in progress, `versionId` is the upload id.
 */
export interface ReplaceShardsRequest {
  versionId: string;
  segment: number;
  changes: { index: number; from: ShardPlacement; to: ShardPlacement }[];
}

export interface ReplaceShardsResponse {
  record: ObjectRecord;
}

export interface ReplacePartShardsResponse {
  part: PartRecord;
}

export type NodeMode = 'normal' | 'draining';

export interface NodeModeRequest {
  mode: NodeMode;
}

// ---- Wire shapes of the repair API (added with its implementation; the contract above is unchanged). ----

export interface DamageReportRequest {
  /** At most 1000 per call (the client splits longer lists). */
  reports: DamageReport[];
}

export interface RepairAckRequest {
  /** Task ids as listed; at most 1000 per call (the client splits longer lists). */
  ids: string[];
}

export interface RepairAckResponse {
  /** Tasks removed. A task updated by a report after it was listed is kept (its id changed) and not counted. */
  acked: number;
}

export interface ShardLookupRequest {
  /** At most 1000 per call (the client splits longer lists). */
  shardIds: string[];
}

export interface ShardLookupResponse {
  /** The reverse-index entries that exist, in request order; ids without one are left out. */
  refs: ShardRef[];
}

// ---------------------------------------------------------------------------------------------
// Access control (issue 6): users own buckets and access keys. A key's secret is stored (SigV4
// verification needs it) but leaves the namespace only in CreatedAccessKey and AccessKeyCredential.

export type PrincipalStatus = 'active' | 'disabled';

export interface UserRecord {
  /** IAM-style user name, also the id (bucket owner, policy principal): [A-Za-z0-9+=,.@_-], 1..64. */
  id: string;
  /**
   * Never reused: "AIDA" + 17 of [A-Z2-7], the shape of AWS's unique user ids. A user deleted and
   * made again under the same id is someone else and gets a new one, so what was granted to the
   * old user by name (a bucket policy, pinned to this) does not pass to the new. Absent on users
   * made before it existed.
   */
  uniqueId?: string;
  displayName: string;
  createdAt: string;
  status: PrincipalStatus;
}

/** An access key as listed: never the secret. */
export interface AccessKeyRecord {
  /** "AKIA" + 16 of [A-Z2-7]. */
  accessKeyId: string;
  userId: string;
  createdAt: string;
  status: PrincipalStatus;
}

/** The answer to creating a key: the only time a client other than a gateway sees the secret. */
export interface CreatedAccessKey extends AccessKeyRecord {
  secretAccessKey: string;
}

/** What a gateway needs to verify a request signed with a key, and whose request it is. */
export interface AccessKeyCredential {
  key: CreatedAccessKey;
  user: UserRecord;
}

export interface CreateUserRequest {
  displayName?: string;
}

export interface StatusRequest {
  status: PrincipalStatus;
}

export interface ListUsersResponse {
  users: UserRecord[];
}

export interface ListAccessKeysResponse {
  keys: AccessKeyRecord[];
}

export interface BucketPolicyRequest {
  /** The policy text, or null to remove it. */
  policy: string | null;
  /** See BucketRecord.policyPrincipals (ignored with a null policy). */
  principals?: Record<string, string>;
}
