// UploadPart: PUT /bucket/key?partNumber=N&uploadId=X. The part is verified (signature, MD5,
// checksum) and erasure-coded as it arrives, like a PutObject body; re-uploading a part number
// replaces the earlier part.
import { s3Error } from '../s3/errors.js';
import { requestPayload } from './body.js';
import {
  MAX_PART_SIZE,
  checksumHeaders,
  parsePartNumber,
  requireUpload,
  storePart,
  uploadChecksum,
  uploadIdFrom,
} from '../multipart.js';
import { uploadPartCopy } from './upload-part-copy.js';
import { sendEmpty, type OperationHandler } from '../server.js';
import { clientGoneSignal } from '../client-gone.js';

export const uploadPart: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const partNumber = parsePartNumber(ctx.query);
  const upload = await requireUpload(services, bucket, key, uploadIdFrom(ctx.query));
  const expected = uploadChecksum(upload);
  const payload = requestPayload(ctx, services, {
    maxSize: MAX_PART_SIZE,
    // A full-object checksum is combined from every part's CRC, so a part sent without one gets it computed.
    ...(expected?.type === 'FULL_OBJECT' ? { defaultChecksum: expected.algorithm } : {}),
  });
  if (expected !== undefined && payload.checksumAlgorithm !== expected.algorithm) {
    throw s3Error(
      'InvalidRequest',
      `Checksum Type mismatch occurred, expected checksum Type: ${expected.algorithm.toLowerCase()}, actual checksum Type: ${payload.checksumAlgorithm?.toLowerCase() ?? 'null'}`,
    );
  }
  const part = await storePart(services, upload, partNumber, payload.body, () => payload.digests(), {
    signal: clientGoneSignal(ctx),
    expectedSize: payload.declaredLength,
  });
  ctx.set('ETag', part.etag);
  for (const [name, value] of checksumHeaders(part.checksums)) ctx.set(name, value);
  sendEmpty(ctx, 200);
};

/** UploadPartCopy shares UploadPart's route; x-amz-copy-source tells them apart. */
export const uploadPartOrCopy: OperationHandler = async (ctx, services) => {
  if (ctx.req.headers['x-amz-copy-source'] === undefined) return uploadPart(ctx, services);
  ctx.state.operation = 'UploadPartCopy';
  return uploadPartCopy(ctx, services);
};
