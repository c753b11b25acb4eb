// The key schema. Every key is raw bytes so LevelDB's bytewise order is UTF-8 binary order, the
// order S3 lists in (JS string order is UTF-16 and differs above U+FFFF). Components are joined
// with 0x00, which no bucket name, node id or upload id contains (validate.ts refuses it); since
// 0x00 is the lowest byte, "a" + 0x00 + ... sorts before "a!" and "a/", as S3 key order needs.
// 0xFF never occurs in valid UTF-8, so prefix + 0xFF is an exclusive upper bound for the prefix.

const SEP = Buffer.from([0x00]);
const HIGH = Buffer.from([0xff]);

export const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

function join(...parts: string[]): Buffer {
  const out: Buffer[] = [];
  parts.forEach((part, i) => {
    if (i > 0) out.push(SEP);
    out.push(utf8(part));
  });
  return Buffer.concat(out);
}

/** The smallest byte string after every string that starts with `prefix`. */
export const pastPrefix = (prefix: Buffer): Buffer => Buffer.concat([prefix, HIGH]);

/** buckets: name → BucketRecord */
export const bucketKey = (bucket: string): Buffer => utf8(bucket);

/** bucket-holds: name → BucketHold (a deleted bucket's name, held from other owners for a while) */
export const bucketHoldKey = bucketKey;

/** objects: bucket 0x00 key → ObjectRecord */
export const objectKey = (bucket: string, key: string): Buffer => join(bucket, key);
export const bucketObjectsPrefix = (bucket: string): Buffer => join(bucket, '');

/** uploads: uploadId → MultipartUploadRecord */
export const uploadKey = (uploadId: string): Buffer => utf8(uploadId);

/** upload-keys: bucket 0x00 key 0x00 uploadId → MultipartUploadRecord (ordered as S3 lists uploads). */
export const uploadIndexKey = (bucket: string, key: string, uploadId: string): Buffer => join(bucket, key, uploadId);

/** parts: uploadId 0x00 zero-padded part number → PartRecord */
export const partKey = (uploadId: string, partNumber: number): Buffer => join(uploadId, String(partNumber).padStart(5, '0'));
export const uploadPartsPrefix = (uploadId: string): Buffer => join(uploadId, '');

/** nodes: nodeId → stored node (NodeRecord without the computed state) */
export const nodeKey = (nodeId: string): Buffer => utf8(nodeId);

/** shards (reverse index): nodeId 0x00 shardId → ShardRef */
export const refKey = (nodeId: string, shardId: string): Buffer => join(nodeId, shardId);
export const nodeRefsPrefix = (nodeId: string): Buffer => join(nodeId, '');

/** gc: 15-digit queued-at ms 0x00 shardId 0x00 nodeId ('' for none) → GarbageEntry. Ids are this key as text. */
export const gcTime = (ms: number): string => String(ms).padStart(15, '0');
export const gcKey = (ms: number, shardId: string, nodeId: string | null): Buffer => join(gcTime(ms), shardId, nodeId ?? '');

/**
 * repairs: bucket 0x00 key 0x00 versionId 0x00 zero-padded segment [0x00 zero-padded part] → stored
 * repair task. One key per segment, so every report about a segment lands on (and merges into) the
 * same task. A part's segments (versionId = upload id) add the part number, since every part
 * numbers its segments from 0; object keys have no such suffix, so tasks queued before parts were
 * repaired keep their keys.
 */
export const repairKey = (bucket: string, key: string, versionId: string, segment: number, part?: number): Buffer => {
  const segmentKey = join(bucket, key, versionId, String(segment).padStart(10, '0'));
  return part === undefined ? segmentKey : Buffer.concat([segmentKey, SEP, utf8(String(part).padStart(5, '0'))]);
};

/** users: user id → UserRecord */
export const userKey = (userId: string): Buffer => utf8(userId);

/** access-keys: access key id → stored key (CreatedAccessKey: the record with its secret) */
export const accessKeyKey = (accessKeyId: string): Buffer => utf8(accessKeyId);
