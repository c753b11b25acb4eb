// CompleteMultipartUpload: POST /bucket/key?uploadId=X with the list of parts to assemble. No
// byte moves: the object's segments are the chosen parts' segments in order, committed in one
// namespace transaction that also drops the upload and queues unused parts' shards for GC. The
// ETag is md5(concatenated binary part MD5s)-N; the checksum is COMPOSITE (hash of the part
// checksums, "-N") or FULL_OBJECT (the parts' CRCs combined into the CRC of the whole object).
import { createHash } from 'node:crypto';
import { s3Error } from '../s3/errors.js';
import {
  CHECKSUM_ALGORITHMS,
  checksumHeaderName,
  isValidChecksumValue,
  type ChecksumAlgorithm,
} from '../s3/checksums.js';
import { compositeChecksum, fullObjectChecksum, parseChecksumType } from '../s3/multipart-checksums.js';
import { completeMultipartUploadXml, parseCompleteMultipartUpload, type CompletedPart } from '../s3/xml.js';
import { headerValue, type HeaderBag } from '../auth/canonical.js';
import { parseWritePrecondition, resolveWritePrecondition } from '../write-conditions.js';
import { checkAssembledSizes, asUploadError, requireUpload, uploadChecksum, uploadIdFrom, type UploadChecksum } from '../multipart.js';
import { newVersionId } from './put-object.js';
import { readSmallBody } from './body.js';
import { NamespaceError } from '../../namespace/client.js';
import type { CompleteUploadRequest, MultipartUploadRecord, ObjectRecord, PartRecord, PartSummary } from '../../namespace/types.js';
import type { GatewayServices } from '../services.js';
import type { OperationHandler } from '../server.js';

/** 10,000 parts with an ETag and a checksum each fit comfortably. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

export const completeMultipartUpload: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const uploadId = uploadIdFrom(ctx.query);
  const precondition = parseWritePrecondition(ctx.req.headers);
  const upload = await requireUpload(services, bucket, key, uploadId);
  const checksum = uploadChecksum(upload);
  const claimed = claimedChecksum(ctx.req.headersDistinct, checksum);

  const requested = parseCompleteMultipartUpload(await readSmallBody(ctx, services, MAX_BODY_BYTES, withoutObjectChecksums(ctx.req.headersDistinct)));
  for (const part of requested) checkPartChecksumSyntax(part);
  for (let i = 1; i < requested.length; i++) {
    if (requested[i]!.partNumber <= requested[i - 1]!.partNumber) throw s3Error('InvalidPartOrder');
  }
  const stored = await allParts(services, uploadId);
  const used = requested.map((wanted) => matchPart(wanted, stored.get(wanted.partNumber), uploadId, checksum));
  checkAssembledSizes(used);

  const record = assemble(bucket, key, upload, used, checksum);
  if (claimed !== undefined && checksum !== undefined) checkClaimedChecksum(claimed, record.checksums[checksum.algorithm]!);
  checkDeclaredSize(headerValue(ctx.req.headersDistinct, 'x-amz-mp-object-size'), record.size);
  const condition = await resolveWritePrecondition(precondition, services.namespace, bucket, key);
  const request: CompleteUploadRequest = { record, usedParts: used.map((p) => p.partNumber) };
  if (condition !== undefined) request.condition = condition;
  try {
    await services.namespace.completeUpload(uploadId, request);
  } catch (err) {
    // Another writer got there between our check and the commit: the namespace's atomic re-check.
    if (err instanceof NamespaceError && err.code === 'PreconditionFailed') {
      throw s3Error('PreconditionFailed', undefined, { Condition: precondition?.kind === 'if-match' ? 'If-Match' : 'If-None-Match' });
    }
    throw asUploadError(err, uploadId);
  }

  ctx.type = 'application/xml';
  ctx.body = completeMultipartUploadXml({
    location: `${ctx.origin}${ctx.path}`,
    bucket,
    key,
    etag: record.etag,
    checksums: record.checksums,
    ...(checksum === undefined ? {} : { checksumType: checksum.type }),
  });
};

function bare(etag: string): string {
  return etag.trim().replace(/^"(.*)"$/, '$1');
}

/** The upload's parts by number, read page by page. */
async function allParts(services: GatewayServices, uploadId: string): Promise<Map<number, PartRecord>> {
  const parts = new Map<number, PartRecord>();
  let after = 0;
  for (;;) {
    let page;
    try {
      page = await services.namespace.listParts(uploadId, { after, maxParts: 1000 });
    } catch (err) {
      throw asUploadError(err, uploadId);
    }
    for (const part of page.parts) parts.set(part.partNumber, part);
    if (!page.isTruncated || page.parts.length === 0) return parts;
    after = page.parts[page.parts.length - 1]!.partNumber;
  }
}

function checkPartChecksumSyntax(part: CompletedPart): void {
  const entries = Object.entries(part.checksums) as [ChecksumAlgorithm, string][];
  if (entries.length > 1 || entries.some(([algorithm, value]) => !isValidChecksumValue(algorithm, value))) {
    throw s3Error('InvalidArgument', 'Invalid Base64 or multiple checksums present in request', {
      ArgumentName: 'Checksum',
      ArgumentValue: entries.map(([algorithm, value]) => `${algorithm}:${value};`).join(''),
    });
  }
}

/** The stored part a <Part> names: it must exist, with the same ETag and (if given) the same checksum. */
function matchPart(wanted: CompletedPart, part: PartRecord | undefined, uploadId: string, checksum: UploadChecksum | undefined): PartRecord {
  const invalid = (): never => {
    throw s3Error('InvalidPart', undefined, { UploadId: uploadId, PartNumber: wanted.partNumber, ETag: bare(wanted.etag) });
  };
  if (part === undefined || bare(part.etag) !== bare(wanted.etag)) return invalid();
  for (const [algorithm, value] of Object.entries(wanted.checksums)) {
    if (part.checksums[algorithm] !== value) invalid();
  }
  if (checksum !== undefined) {
    if (part.checksums[checksum.algorithm] === undefined) invalid();
    // A composite checksum is built from the values the client lists, so each one must be there.
    if (checksum.type === 'COMPOSITE' && wanted.checksums[checksum.algorithm] === undefined) {
      throw s3Error(
        'InvalidRequest',
        `The upload was created using a ${checksum.algorithm.toLowerCase()} checksum. The complete request must include the checksum for each part. It was missing for part ${wanted.partNumber} in the request.`,
      );
    }
  }
  return part;
}

/** The finished object: the parts' segments in order, with what CreateMultipartUpload recorded for it (type, metadata, headers, tags). */
function assemble(bucket: string, key: string, upload: MultipartUploadRecord, used: PartRecord[], checksum: UploadChecksum | undefined): ObjectRecord {
  const layout = used[0]!.layout;
  if (used.some((p) => p.layout.k !== layout.k || p.layout.m !== layout.m || p.layout.blockSize !== layout.blockSize)) {
    // One record has one layout; parts written by gateways configured differently cannot be joined.
    throw s3Error('InvalidRequest', 'The parts of this upload were stored with different erasure-coding layouts and cannot be combined.');
  }
  const md5 = createHash('md5');
  for (const part of used) md5.update(Buffer.from(bare(part.etag), 'hex'));
  const checksums: Record<string, string> = {};
  if (checksum !== undefined) {
    const { algorithm, type } = checksum;
    checksums[algorithm] =
      type === 'COMPOSITE'
        ? compositeChecksum(algorithm, used.map((p) => p.checksums[algorithm]!))
        : fullObjectChecksum(algorithm, used.map((p) => ({ value: p.checksums[algorithm]!, size: p.size })));
  }
  const parts = used.map((p): PartSummary => {
    const summary: PartSummary = { partNumber: p.partNumber, size: p.size, etag: p.etag, segmentCount: p.segments.length };
    if (Object.keys(p.checksums).length > 0) summary.checksums = p.checksums;
    return summary;
  });
  return {
    bucket,
    key,
    versionId: newVersionId(),
    size: used.reduce((sum, p) => sum + p.size, 0),
    etag: `"${md5.digest('hex')}-${used.length}"`,
    lastModified: new Date().toISOString(),
    contentType: upload.contentType,
    userMetadata: upload.userMetadata,
    headers: upload.headers,
    checksums,
    layout,
    segments: used.flatMap((p) => p.segments),
    parts,
    ...(upload.tags ? { tags: upload.tags } : {}),
  };
}

// ---- the object checksum a client may send with the request (x-amz-checksum-<algorithm>) ----

interface ClaimedChecksum {
  algorithm: ChecksumAlgorithm;
  value: string;
  /** A composite value may carry the part count ("…-3"). */
  partCount?: number;
}

/** On this request x-amz-checksum-* name the finished object, not the XML body. */
function withoutObjectChecksums(headers: HeaderBag): HeaderBag {
  const skip = new Set<string>([...CHECKSUM_ALGORITHMS.map(checksumHeaderName), 'x-amz-sdk-checksum-algorithm']);
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !skip.has(name.toLowerCase())));
}

function claimedChecksum(headers: HeaderBag, checksum: UploadChecksum | undefined): ClaimedChecksum | undefined {
  const typeText = headerValue(headers, 'x-amz-checksum-type');
  if (typeText !== undefined && checksum !== undefined) {
    const type = parseChecksumType(typeText);
    if (type === undefined) throw s3Error('InvalidRequest', 'Value for x-amz-checksum-type header is invalid.');
    if (type !== checksum.type) {
      throw s3Error('InvalidRequest', `The upload was created using the ${checksum.type} checksum mode. The complete request must use the same checksum mode.`);
    }
  }
  const present = CHECKSUM_ALGORITHMS.filter((a) => headerValue(headers, checksumHeaderName(a)) !== undefined);
  if (present.length === 0) return undefined;
  if (present.length > 1) throw s3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
  const algorithm = present[0]!;
  if (checksum?.algorithm !== algorithm) {
    throw s3Error(
      'InvalidRequest',
      `Checksum Type mismatch occurred, expected checksum Type: ${checksum?.algorithm.toLowerCase() ?? 'null'}, actual checksum Type: ${algorithm.toLowerCase()}`,
    );
  }
  const text = headerValue(headers, checksumHeaderName(algorithm))!.trim();
  const match = checksum.type === 'COMPOSITE' ? /^(.*?)(?:-([0-9]+))?$/.exec(text) : [text, text];
  const value = match?.[1] ?? '';
  if (!isValidChecksumValue(algorithm, value)) throw s3Error('InvalidRequest', `Value for ${checksumHeaderName(algorithm)} header is invalid.`);
  return match?.[2] === undefined ? { algorithm, value } : { algorithm, value, partCount: Number(match[2]) };
}

function checkClaimedChecksum(claimed: ClaimedChecksum, computed: string): void {
  const [value, count] = computed.split('-');
  if (claimed.value !== value || (claimed.partCount !== undefined && String(claimed.partCount) !== count)) {
    throw s3Error('BadDigest', `The ${claimed.algorithm.toLowerCase()} you specified did not match the calculated checksum.`);
  }
}

/** x-amz-mp-object-size lets a client assert the total size it uploaded. */
function checkDeclaredSize(declared: string | undefined, size: number): void {
  if (declared === undefined) return;
  const text = declared.trim();
  if (!/^[0-9]{1,16}$/.test(text)) throw s3Error('InvalidRequest', 'Value for x-amz-mp-object-size header is invalid.');
  if (Number(text) !== size) {
    throw s3Error('InvalidRequest', `The provided x-amz-mp-object-size (${text}) does not match the size of the completed object (${size}).`);
  }
}
