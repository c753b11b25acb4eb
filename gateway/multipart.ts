// What the multipart operations share: S3's limits, the uploadId/partNumber parameters, finding the
// upload a request names, and storing a part (UploadPart and UploadPartCopy write alike: each part
// is erasure-coded under a version id of its own, so re-uploading a part number never reuses a
// shard id, and the namespace queues the replaced part's shards for GC).
import type { ParsedUrlQuery } from 'node:querystring';
import { s3Error } from './s3/errors.js';
import { parseChecksumAlgorithm, type ChecksumAlgorithm } from './s3/checksums.js';
import { defaultChecksumType, parseChecksumType, type ChecksumType } from './s3/multipart-checksums.js';
import { commitRefused, discardSegments, writeObjectData } from './data/writer.js';
import { writeOptions, type SourceHints } from './data/options.js';
import { newVersionId } from './operations/put-object.js';
import { NamespaceError } from '../namespace/client.js';
import type { MultipartUploadRecord, PartRecord } from '../namespace/types.js';
import type { GatewayServices } from './services.js';

/** Every part but the last must be at least this big (checked at completion, as S3 does). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 ** 3;
/** S3's largest object: 10,000 parts of 5 GiB could otherwise assemble ten times that. */
export const MAX_OBJECT_SIZE = 5 * 1024 ** 4;

/** The parts of a completion must be at least 5 MiB each but the last, and at most 5 TiB together. */
export function checkAssembledSizes(parts: readonly { partNumber: number; size: number; etag: string }[]): void {
  parts.forEach((part, i) => {
    if (i < parts.length - 1 && part.size < MIN_PART_SIZE) {
      throw s3Error('EntityTooSmall', undefined, { ProposedSize: part.size, MinSizeAllowed: MIN_PART_SIZE, PartNumber: part.partNumber, ETag: part.etag.replace(/"/g, '') });
    }
  });
  const total = parts.reduce((sum, p) => sum + p.size, 0);
  if (total > MAX_OBJECT_SIZE) throw s3Error('EntityTooLarge', undefined, { ProposedSize: total, MaxSizeAllowed: MAX_OBJECT_SIZE });
}
export const MAX_PART_NUMBER = 10_000;

export function single(query: ParsedUrlQuery, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `partNumber`, 1..10000 (UploadPart, UploadPartCopy, GetObject, HeadObject). */
export function parsePartNumber(query: ParsedUrlQuery): number {
  const text = single(query, 'partNumber') ?? '';
  const n = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_PART_NUMBER)) {
    throw s3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
      ArgumentName: 'partNumber',
      ArgumentValue: text,
    });
  }
  return n;
}

export function uploadIdFrom(query: ParsedUrlQuery): string {
  return single(query, 'uploadId') ?? '';
}

export function noSuchUpload(uploadId: string): never {
  throw s3Error('NoSuchUpload', undefined, { UploadId: uploadId });
}

/** The namespace's NoSuchUpload, with the upload id S3 puts in the error. */
export function asUploadError(err: unknown, uploadId: string): unknown {
  if (err instanceof NamespaceError && err.code === 'NoSuchUpload') return s3Error('NoSuchUpload', undefined, { UploadId: uploadId });
  return err;
}

/** The upload, which must belong to this bucket and key: another key's upload id is NoSuchUpload. */
export async function requireUpload(services: GatewayServices, bucket: string, key: string, uploadId: string): Promise<MultipartUploadRecord> {
  let upload: MultipartUploadRecord | undefined;
  try {
    if (uploadId !== '') upload = await services.namespace.getUpload(uploadId);
  } catch (err) {
    // An id the namespace could never have issued is just as unknown.
    if (!(err instanceof NamespaceError && (err.code === 'NoSuchUpload' || err.code === 'InvalidArgument'))) throw err;
  }
  if (upload === undefined || upload.bucket !== bucket || upload.key !== key) {
    await services.namespace.getBucket(bucket); // a missing bucket is NoSuchBucket, as S3 answers first
    noSuchUpload(uploadId);
  }
  return upload;
}

export interface UploadChecksum {
  algorithm: ChecksumAlgorithm;
  type: ChecksumType;
}

/** The checksum the upload was created with, if any. */
export function uploadChecksum(upload: MultipartUploadRecord): UploadChecksum | undefined {
  const algorithm = upload.checksumAlgorithm === undefined ? undefined : parseChecksumAlgorithm(upload.checksumAlgorithm);
  if (algorithm === undefined) return undefined;
  const type = (upload.checksumType === undefined ? undefined : parseChecksumType(upload.checksumType)) ?? defaultChecksumType(algorithm);
  return { algorithm, type };
}

export interface PartDigests {
  md5Hex: string;
  checksums: Readonly<Partial<Record<string, string>>>;
}

/**
 * Erasure-codes `source` as part `partNumber` and records it. `digests` is called once the source
 * has been read to its end (and has verified it); a failure leaves no shard behind, except when the
 * namespace's answer was lost (the part may be recorded): the orphan collector takes those if it is not.
 * `hints`: the client that sends `source` (clientGoneSignal), when it is the client, and the size it declared.
 */
export async function storePart(
  services: GatewayServices,
  upload: MultipartUploadRecord,
  partNumber: number,
  source: AsyncIterable<Uint8Array>,
  digests: () => PartDigests,
  hints: SourceHints = {},
): Promise<PartRecord> {
  const written = await writeObjectData(source, writeOptions(services, newVersionId(), hints), services);
  let committing = false;
  try {
    const { md5Hex, checksums } = digests();
    services.metrics.bytesIn.inc(undefined, written.size);
    const part: PartRecord = {
      uploadId: upload.uploadId,
      partNumber,
      size: written.size,
      etag: `"${md5Hex}"`,
      lastModified: new Date().toISOString(),
      checksums: Object.fromEntries(Object.entries(checksums).filter((e): e is [string, string] => e[1] !== undefined)),
      layout: services.config.layout,
      segments: written.segments,
    };
    committing = true;
    await services.namespace.putPart(part);
    return part;
  } catch (err) {
    if (!committing || commitRefused(err)) discardSegments(written.segments, services);
    throw asUploadError(err, upload.uploadId);
  }
}

/** Response headers naming a part's or object's checksums. */
export function checksumHeaders(checksums: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(checksums).map(([algorithm, value]) => [`x-amz-checksum-${algorithm.toLowerCase()}`, value]);
}
