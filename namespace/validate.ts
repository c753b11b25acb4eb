// Parsers for everything that reaches the namespace from outside. Each takes `unknown` and returns
// a freshly built value holding only the contract's fields, so a malformed or padded record is
// refused (InvalidArgument) and never stored.
import { crc32c } from '@node-rs/crc32';
import { validateLayout, type Layout } from '../erasure/layout.js';
import { invalidArgument } from './errors.js';
import type {
  CompleteUploadRequest,
  CreateUploadRequest,
  Tag,
  SetObjectTagsRequest,
  DamageReport,
  HeartbeatRequest,
  InlineData,
  NodeMode,
  ObjectRecord,
  PartRecord,
  PartSummary,
  PlacementRequest,
  RepairReason,
  ReplaceShardsRequest,
  Segment,
  SegmentSelection,
  ShardPlacement,
  WriteCondition,
} from './types.js';
import { MAX_BUCKET_TAGS, MAX_INLINE_BYTES, MAX_OBJECT_TAGS } from './types.js';

type Fields = Record<string, unknown>;

export const MAX_KEY_BYTES = 1024;
export const MAX_PART_NUMBER = 10_000;
/** Segments per record (the bound `segments` enforces); a segment index is below it. */
export const MAX_SEGMENTS = 1_000_000;
/** Far above any layout's k+m (erasure/layout.ts caps them at 24+6); bounds shard indices from outside. */
export const MAX_SHARD_INDEX = 255;
/** Entries per repair-queue, ack and lookup call. */
export const MAX_BATCH = 1000;
const MAX_SIZE = Number.MAX_SAFE_INTEGER;
// Control characters would break the 0x00-joined key schema (0x00) or logs and URLs (the rest).
const CONTROL = /[\x00-\x1f\x7f]/;
// In a /u regex a well-formed surrogate pair is one code point, so this matches only lone halves.
const LONE_SURROGATE = /\p{Cs}/u;

export function fail(why: string): never {
  throw invalidArgument(why);
}

export function fields(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${what} must be a JSON object`);
  return value as Fields;
}

export function text(value: unknown, what: string, maxBytes = 1024, minLength = 1): string {
  if (typeof value !== 'string') fail(`${what} must be a string`);
  if (value.length < minLength) fail(`${what} must not be empty`);
  if (Buffer.byteLength(value) > maxBytes) fail(`${what} is longer than ${maxBytes} bytes`);
  if (LONE_SURROGATE.test(value)) fail(`${what} is not valid UTF-8`);
  return value;
}

/** Ids and names that become key components or path segments: no control characters. */
export function token(value: unknown, what: string, maxBytes = 256): string {
  const s = text(value, what, maxBytes);
  if (CONTROL.test(s)) fail(`${what} must not contain control characters`);
  return s;
}

export function integer(value: unknown, what: string, min = 0, max = MAX_SIZE): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(`${what} must be an integer in ${min}..${max}`);
  }
  return value;
}

function isoDate(value: unknown, what: string): string {
  const s = text(value, what, 64);
  if (Number.isNaN(Date.parse(s))) fail(`${what} must be an ISO-8601 date`);
  return s;
}

function stringMap(value: unknown, what: string): Record<string, string> {
  const obj = fields(value, what);
  // No prototype: a name may be "__proto__" (user metadata), which a plain object would swallow.
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let bytes = 0;
  for (const [name, v] of Object.entries(obj)) {
    out[text(name, `${what} name`, 256)] = text(v, `${what}.${name}`, 8192, 0);
    bytes += Buffer.byteLength(name) + Buffer.byteLength(out[name]);
  }
  if (bytes > 64 * 1024) fail(`${what} exceeds 64 KiB`);
  return out;
}

function array(value: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(value)) fail(`${what} must be an array`);
  if (value.length > max) fail(`${what} has more than ${max} entries`);
  return value;
}

/** The items of a batch, not checked one by one here (each fails alone): 1 to `max` of them. */
export function batchItems(value: unknown, what: string, max: number): unknown[] {
  const items = array(value, what, max);
  if (items.length === 0) fail(`${what} must not be empty`);
  return items;
}

export const bucketName = (value: unknown): string => {
  const name = token(value, 'bucket name', 255);
  if (name.includes('/') || name === '.' || name === '..') fail('bucket name must not contain "/" or be a dot segment');
  return name;
};

export const objectKey = (value: unknown): string => {
  const key = text(value, 'object key', MAX_KEY_BYTES);
  if (key.includes('\x00')) fail('object key must not contain U+0000');
  return key;
};

export const nodeId = (value: unknown): string => {
  const id = token(value, 'node id', 200);
  if (id.includes('/') || id === '.' || id === '..') fail('node id must not contain "/" or be a dot segment');
  return id;
};

export const shardId = (value: unknown): string => token(value, 'shard id', 512);
export const versionId = (value: unknown): string => token(value, 'versionId', 256);
export const uploadId = (value: unknown): string => token(value, 'uploadId', 256);
export const partNumber = (value: unknown): number => integer(value, 'partNumber', 1, MAX_PART_NUMBER);

function layout(value: unknown): Layout {
  const f = fields(value, 'layout');
  const out: Layout = { k: integer(f.k, 'layout.k', 1), m: integer(f.m, 'layout.m', 0), blockSize: integer(f.blockSize, 'layout.blockSize', 1) };
  try {
    validateLayout(out);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  return out;
}

function placement(value: unknown, what: string): ShardPlacement {
  const f = fields(value, what);
  return { nodeId: f.nodeId === null ? null : nodeId(f.nodeId), shardId: shardId(f.shardId) };
}

function base64Text(value: unknown, what: string): string {
  base64Bytes(value, what);
  return value as string;
}

/**
 * The bytes of a base64 text, which must be their canonical encoding: Node's decoder skips what is
 * not base64, so the bytes are encoded again and compared. That is also cheaper than a pattern
 * test: 5.5 KB of text (a 4 KiB inline object) took 12 us through /^[A-Za-z0-9+/]*={0,2}$/ and
 * 3 us to decode and compare.
 */
function base64Bytes(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || value.length > 64 * 1024 * 1024) fail(`${what} must be base64`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) fail(`${what} must be base64`);
  return bytes;
}

function segments(value: unknown, shape: Layout): Segment[] {
  const width = shape.k + shape.m;
  return array(value, 'segments', MAX_SEGMENTS).map((raw, i) => {
    const f = fields(raw, `segments[${i}]`);
    const placements = array(f.placements, `segments[${i}].placements`, width).map((p, j) => placement(p, `segments[${i}].placements[${j}]`));
    if (placements.length !== width) fail(`segments[${i}] must have k+m = ${width} placements`);
    const segment: Segment = { size: integer(f.size, `segments[${i}].size`), placements };
    if (f.crc32c !== undefined) segment.crc32c = integer(f.crc32c, `segments[${i}].crc32c`, 0, 0xffffffff);
    if (f.blockCrcs !== undefined) segment.blockCrcs = base64Text(f.blockCrcs, `segments[${i}].blockCrcs`);
    return segment;
  });
}

/** Every shard id of a record must be distinct: the reverse index and GC are keyed by it. */
function checkShardIdsDistinct(list: Segment[]): void {
  const seen = new Set<string>();
  for (const seg of list) {
    for (const p of seg.placements) {
      if (seen.has(p.shardId)) fail(`shard id ${JSON.stringify(p.shardId)} is used twice`);
      seen.add(p.shardId);
    }
  }
}

function sizeMatches(size: number, list: Segment[]): void {
  const total = list.reduce((sum, s) => sum + s.size, 0);
  if (total !== size) fail(`size ${size} does not equal the sum of segment sizes ${total}`);
}

function partSummaries(value: unknown, record: { size: number; segments: Segment[] }): PartSummary[] {
  let previous = 0;
  let segmentsCovered = 0;
  let bytes = 0;
  const parts = array(value, 'parts', MAX_PART_NUMBER).map((raw, i) => {
    const f = fields(raw, `parts[${i}]`);
    const part: PartSummary = {
      partNumber: partNumber(f.partNumber),
      size: integer(f.size, `parts[${i}].size`),
      etag: text(f.etag, `parts[${i}].etag`, 256),
      segmentCount: integer(f.segmentCount, `parts[${i}].segmentCount`),
    };
    if (f.checksums !== undefined) part.checksums = stringMap(f.checksums, `parts[${i}].checksums`);
    if (part.partNumber <= previous) fail('parts must be in strictly ascending partNumber order');
    previous = part.partNumber;
    segmentsCovered += part.segmentCount;
    bytes += part.size;
    return part;
  });
  if (segmentsCovered !== record.segments.length) fail('parts[].segmentCount must add up to the number of segments');
  if (bytes !== record.size) fail('parts[].size must add up to the object size');
  return parts;
}

/** A read's segment selection: absent, or exactly one of its three forms, with `parts: true` or without (see SegmentSelection). */
export function segmentSelection(value: unknown, what: string): SegmentSelection | undefined {
  if (value === undefined) return undefined;
  const { parts, ...f } = fields(value, what);
  if (parts !== undefined && parts !== true) fail(`${what}.parts must be true when given`);
  const withParts = parts === true ? { parts: true as const } : {};
  const names = Object.keys(f).sort().join(',');
  if (names === 'none' && f.none === true) return { none: true, ...withParts };
  if (names === 'suffix') return { suffix: integer(f.suffix, `${what}.suffix`, 1, MAX_SIZE), ...withParts };
  if (names === 'start') return { start: integer(f.start, `${what}.start`, 0, MAX_SIZE), ...withParts };
  if (names === 'end,start') {
    const start = integer(f.start, `${what}.start`, 0, MAX_SIZE);
    return { start, end: integer(f.end, `${what}.end`, start, MAX_SIZE), ...withParts };
  }
  return fail(`${what} must be {none: true}, {start[, end]} or {suffix}, each with parts: true or without`);
}

export function objectRecord(value: unknown): ObjectRecord {
  const f = fields(value, 'record');
  const shape = layout(f.layout);
  const record: ObjectRecord = {
    bucket: bucketName(f.bucket),
    key: objectKey(f.key),
    versionId: versionId(f.versionId),
    size: integer(f.size, 'size'),
    etag: text(f.etag, 'etag', 256),
    lastModified: isoDate(f.lastModified, 'lastModified'),
    contentType: text(f.contentType, 'contentType', 1024, 0),
    userMetadata: stringMap(f.userMetadata, 'userMetadata'),
    headers: stringMap(f.headers, 'headers'),
    checksums: stringMap(f.checksums, 'checksums'),
    layout: shape,
    segments: segments(f.segments, shape),
  };
  const tags = f.tags === undefined ? [] : objectTags(f.tags, 'tags');
  if (tags.length > 0) record.tags = tags;
  if (f.inline !== undefined) {
    if (record.segments.length > 0 || f.parts !== undefined) fail('an inline object has no segments and no parts');
    record.inline = inlineData(f.inline, record.size);
    return record;
  }
  sizeMatches(record.size, record.segments);
  checkShardIdsDistinct(record.segments);
  if (f.parts !== undefined) record.parts = partSummaries(f.parts, record);
  return record;
}

/**
 * An inline object's bytes must be there, once (raw, as a blob lines batch brings them, or base64
 * in JSON), be exactly `size` long and have the CRC32C the record claims. The checked record holds
 * them raw.
 */
function inlineData(value: unknown, size: number): InlineData {
  const f = fields(value, 'inline');
  const crc = integer(f.crc32c, 'inline.crc32c', 0, 0xffffffff);
  if (size < 1 || size > MAX_INLINE_BYTES) fail(`an inline object holds 1 to ${MAX_INLINE_BYTES} bytes, not ${size}`);
  if (f.bytes !== undefined && f.data !== undefined) fail('inline bytes came both raw and as inline.data');
  const bytes = Buffer.isBuffer(f.bytes) ? f.bytes : base64Bytes(f.data, 'inline.data');
  if (bytes.length !== size) fail(`inline data is ${bytes.length} bytes, size says ${size}`);
  if (crc32c(bytes) >>> 0 !== crc) fail('inline data does not match its CRC32C');
  return { crc32c: crc, bytes };
}

/** An inline object's bytes, from a record that holds them raw or as base64. */
export function inlineBytes(inline: InlineData): Buffer {
  return inline.bytes ?? Buffer.from(inline.data ?? '', 'base64');
}

export function partRecord(value: unknown): PartRecord {
  const f = fields(value, 'part');
  const shape = layout(f.layout);
  const part: PartRecord = {
    uploadId: uploadId(f.uploadId),
    partNumber: partNumber(f.partNumber),
    size: integer(f.size, 'size'),
    etag: text(f.etag, 'etag', 256),
    lastModified: isoDate(f.lastModified, 'lastModified'),
    checksums: stringMap(f.checksums, 'checksums'),
    layout: shape,
    segments: segments(f.segments, shape),
  };
  sizeMatches(part.size, part.segments);
  checkShardIdsDistinct(part.segments);
  return part;
}

export function condition(value: unknown): WriteCondition | undefined {
  if (value === undefined || value === null) return undefined;
  const f = fields(value, 'condition');
  const out: WriteCondition = {};
  if (f.ifNoneMatch !== undefined) {
    if (typeof f.ifNoneMatch !== 'boolean') fail('condition.ifNoneMatch must be a boolean');
    out.ifNoneMatch = f.ifNoneMatch;
  }
  if (f.ifVersionId !== undefined) out.ifVersionId = versionId(f.ifVersionId);
  if (f.ifEtag !== undefined) out.ifEtag = text(f.ifEtag, 'condition.ifEtag', 256);
  return out;
}

export function heartbeat(value: unknown): HeartbeatRequest {
  const f = fields(value, 'heartbeat');
  const url = text(f.url, 'url', 2048);
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) fail('url must be an http(s) URL');
  const out: HeartbeatRequest = {
    url,
    capacityBytes: integer(f.capacityBytes, 'capacityBytes'),
    usedBytes: integer(f.usedBytes, 'usedBytes'),
    freeBytes: integer(f.freeBytes, 'freeBytes'),
  };
  if (f.zone !== undefined) out.zone = token(f.zone, 'zone', 128);
  if (f.bootId !== undefined) out.bootId = token(f.bootId, 'bootId', 64);
  return out;
}

export function placementRequest(value: unknown): PlacementRequest {
  const f = fields(value, 'placement request');
  const out: PlacementRequest = { count: integer(f.count, 'count', 1, 256) };
  if (f.exclude !== undefined) out.exclude = array(f.exclude, 'exclude', 10_000).map(nodeId);
  return out;
}

export function createUploadRequest(value: unknown): CreateUploadRequest {
  const f = fields(value, 'upload');
  const out: CreateUploadRequest = {
    bucket: bucketName(f.bucket),
    key: objectKey(f.key),
    contentType: text(f.contentType, 'contentType', 1024, 0),
    userMetadata: stringMap(f.userMetadata, 'userMetadata'),
    headers: stringMap(f.headers, 'headers'),
  };
  if (f.initiated !== undefined) out.initiated = isoDate(f.initiated, 'initiated');
  if (f.checksumAlgorithm !== undefined) out.checksumAlgorithm = token(f.checksumAlgorithm, 'checksumAlgorithm', 64);
  if (f.checksumType !== undefined) out.checksumType = token(f.checksumType, 'checksumType', 64);
  const tags = f.tags === undefined ? [] : objectTags(f.tags, 'tags');
  if (tags.length > 0) out.tags = tags;
  return out;
}

/** S3's limits on an object's (or, with `max` MAX_BUCKET_TAGS, a bucket's) tags (see Tag); an empty list stands for none. */
export function objectTags(value: unknown, what: string, max = MAX_OBJECT_TAGS): Tag[] {
  const seen = new Set<string>();
  return array(value, what, max).map((item, i) => {
    const f = fields(item, `${what}[${i}]`);
    const tag = { key: text(f.key, `${what}[${i}].key`, 512), value: text(f.value, `${what}[${i}].value`, 1024, 0) };
    if (tag.key.length > 128 || tag.value.length > 256) fail(`${what}[${i}]: a tag key holds at most 128 characters and a value 256`);
    if (seen.has(tag.key)) fail(`${what}: the key ${JSON.stringify(tag.key)} is given twice`);
    seen.add(tag.key);
    return tag;
  });
}

export function bucketTags(value: unknown): Tag[] {
  return objectTags(value, 'tags', MAX_BUCKET_TAGS);
}

export function setObjectTagsRequest(value: unknown): SetObjectTagsRequest {
  const f = fields(value, 'body');
  const out: SetObjectTagsRequest = { tags: objectTags(f.tags, 'tags') };
  const cond = condition(f.condition);
  if (cond?.ifNoneMatch !== undefined || cond?.ifEtag !== undefined) fail('tags take only the condition ifVersionId');
  if (cond) out.condition = cond;
  return out;
}

export function completeUploadRequest(value: unknown): CompleteUploadRequest {
  const f = fields(value, 'complete request');
  const used = array(f.usedParts, 'usedParts', MAX_PART_NUMBER).map(partNumber);
  used.forEach((n, i) => {
    if (i > 0 && n <= used[i - 1]) fail('usedParts must be in strictly ascending order');
  });
  const out: CompleteUploadRequest = { record: objectRecord(f.record), usedParts: used };
  const cond = condition(f.condition);
  if (cond) out.condition = cond;
  return out;
}

const REPAIR_REASONS: ReadonlySet<string> = new Set<RepairReason>(['degraded-write', 'corrupt', 'missing', 'unreadable', 'node-down', 'drain']);
const NODE_MODES: ReadonlySet<string> = new Set<NodeMode>(['normal', 'draining']);

function repairReason(value: unknown, what: string): RepairReason {
  if (typeof value !== 'string' || !REPAIR_REASONS.has(value)) fail(`${what} must be one of ${[...REPAIR_REASONS].join(', ')}`);
  return value as RepairReason;
}

export function nodeMode(value: unknown): NodeMode {
  if (typeof value !== 'string' || !NODE_MODES.has(value)) fail(`mode must be one of ${[...NODE_MODES].join(', ')}`);
  return value as NodeMode;
}

const segmentIndex = (value: unknown, what: string): number => integer(value, what, 0, MAX_SEGMENTS - 1);
const shardIndex = (value: unknown, what: string): number => integer(value, what, 0, MAX_SHARD_INDEX);

function damageReport(value: unknown, what: string): DamageReport {
  const f = fields(value, what);
  const isPart = f.part !== undefined;
  const out: DamageReport = {
    bucket: bucketName(f.bucket),
    key: objectKey(f.key),
    // A part's segments belong to its upload until it completes.
    versionId: isPart ? uploadId(f.versionId) : versionId(f.versionId),
    segment: segmentIndex(f.segment, `${what}.segment`),
    reason: repairReason(f.reason, `${what}.reason`),
  };
  if (isPart) out.part = integer(f.part, `${what}.part`, 1, MAX_PART_NUMBER);
  if (f.shardIndex !== undefined) out.shardIndex = shardIndex(f.shardIndex, `${what}.shardIndex`);
  if (f.nodeId !== undefined) out.nodeId = f.nodeId === null ? null : nodeId(f.nodeId);
  return out;
}

export function damageReports(value: unknown): DamageReport[] {
  return array(value, 'reports', MAX_BATCH).map((r, i) => damageReport(r, `reports[${i}]`));
}

/** A list of at most MAX_BATCH ids, each checked by `parse`. */
export function idList<R>(value: unknown, what: string, parse: (id: unknown) => R): R[] {
  return array(value, what, MAX_BATCH).map(parse);
}

function distinct<V>(values: V[], what: string): void {
  if (new Set(values).size !== values.length) fail(`${what} must be distinct`);
}

/**
 * The request on its own must make sense: indices, new shard ids and new nodes all distinct (two
 * shards of one segment on one node would fall together), and every `to` on a real node.
 */
export function replaceShardsRequest(value: unknown): ReplaceShardsRequest {
  const f = fields(value, 'replace request');
  const raw = array(f.changes, 'changes', MAX_SHARD_INDEX + 1);
  if (raw.length === 0) fail('changes must not be empty');
  const changes = raw.map((c, i) => {
    const g = fields(c, `changes[${i}]`);
    const to = placement(g.to, `changes[${i}].to`);
    if (to.nodeId === null) fail(`changes[${i}].to.nodeId must name a node`);
    return { index: shardIndex(g.index, `changes[${i}].index`), from: placement(g.from, `changes[${i}].from`), to };
  });
  distinct(changes.map((c) => c.index), 'changes[].index');
  distinct(changes.map((c) => c.to.shardId), 'changes[].to.shardId');
  distinct(changes.map((c) => c.to.nodeId), 'changes[].to.nodeId');
  return { versionId: versionId(f.versionId), segment: segmentIndex(f.segment, 'segment'), changes };
}

/** A count from a query string: absent → fallback, above max → max (as S3 clamps max-keys). */
export function countParam(raw: string | null | undefined, what: string, fallback: number, max: number, min = 0): number {
  if (raw === null || raw === undefined || raw === '') return fallback;
  if (!/^\d{1,12}$/.test(raw)) fail(`${what} must be a non-negative integer`);
  const n = Number(raw);
  if (n < min) fail(`${what} must be at least ${min}`);
  return Math.min(n, max);
}

// ---- users, access keys, bucket policies ----

/** IAM's user-name characters; also what may appear in a policy principal ARN. */
const USER_ID = /^[A-Za-z0-9+=,.@_-]{1,64}$/;
/** The gateway's root credentials act as this user; no namespace user may take the name. */
export const ROOT_USER_ID = 'root';
/** What the namespace issues ("AKIA" + 16 base32 characters); looked-up ids are checked loosely. */
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
/** AWS's limit on a bucket policy document. */
export const MAX_POLICY_BYTES = 20 * 1024;

export const userId = (value: unknown): string => {
  const id = text(value, 'user id', 64);
  // Only dots would be a dot segment in a URL path.
  if (!USER_ID.test(id) || /^\.+$/.test(id)) fail('user id must be 1..64 of A-Z a-z 0-9 + = , . @ _ - (not only dots)');
  return id;
};

/** A new user's id: the root user's name is reserved. */
export const newUserId = (value: unknown): string => {
  const id = userId(value);
  if (id.toLowerCase() === ROOT_USER_ID) fail(`user id "${id}" is reserved for the root credentials`);
  return id;
};

export const displayName = (value: unknown): string => token(value, 'display name', 256);

export const accessKeyId = (value: unknown): string => {
  const id = text(value, 'access key id', 128);
  if (!ACCESS_KEY_ID.test(id)) fail('access key id must be 16..128 of A-Z 0-9');
  return id;
};

export const principalStatus = (value: unknown): 'active' | 'disabled' => {
  if (value !== 'active' && value !== 'disabled') fail('status must be "active" or "disabled"');
  return value;
};

/** Users a policy names, each pinned (BucketRecord.policyPrincipals): user id → pin of at most 64 bytes. */
export const policyPrincipals = (value: unknown): Record<string, string> | undefined => {
  if (value === undefined) return undefined;
  // No prototype: a user may be called "__proto__", which a plain object would swallow.
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries = Object.entries(fields(value, 'principals'));
  // A 20 KB policy names fewer users than this.
  if (entries.length > 1000) fail('principals has more than 1000 entries');
  for (const [id, pin] of entries) out[userId(id)] = token(pin, `principals.${id}`, 64);
  return out;
};

/** A policy document is opaque text here (the gateway parses and checks it); only its size is bounded. */
export const bucketPolicy = (value: unknown): string | null => {
  if (value === null) return null;
  return text(value, 'policy', MAX_POLICY_BYTES);
};
