// ListParts: GET /bucket/key?uploadId=X[&max-parts=N][&part-number-marker=M]. Pages come straight
// from the namespace's ordered part records.
import { ownerOf } from '../authorize.js';
import { s3Error } from '../s3/errors.js';
import { listPartsXml } from '../s3/xml.js';
import { MAX_PART_NUMBER, asUploadError, requireUpload, single, uploadChecksum, uploadIdFrom } from '../multipart.js';
import type { ListPartsResponse } from '../../namespace/types.js';
import type { OperationHandler } from '../server.js';

const MAX_PARTS = 1000;
const INT32_MAX = 2 ** 31 - 1;

/** S3 takes any non-negative 32-bit integer and serves at most 1000 parts a page. */
function nonNegativeInt(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(n <= INT32_MAX)) {
    throw s3Error('InvalidArgument', `Argument ${name} must be an integer between 0 and ${INT32_MAX}`, { ArgumentName: name, ArgumentValue: text });
  }
  return n;
}

export const listParts: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const uploadId = uploadIdFrom(ctx.query);
  const maxParts = Math.min(nonNegativeInt(single(ctx.query, 'max-parts'), 'max-parts', MAX_PARTS), MAX_PARTS);
  const marker = nonNegativeInt(single(ctx.query, 'part-number-marker'), 'part-number-marker', 0);
  const upload = await requireUpload(services, bucket, key, uploadId);

  let page: ListPartsResponse = { parts: [], isTruncated: false };
  if (maxParts > 0 && marker < MAX_PART_NUMBER) {
    try {
      page = await services.namespace.listParts(uploadId, { after: marker, maxParts });
    } catch (err) {
      throw asUploadError(err, uploadId);
    }
  }
  const owner = ownerOf(ctx.state.principal);
  const checksum = uploadChecksum(upload);
  const last = page.parts[page.parts.length - 1];
  ctx.type = 'application/xml';
  ctx.body = listPartsXml({
    bucket,
    key,
    uploadId,
    initiator: owner,
    owner,
    partNumberMarker: marker,
    // S3 names the last part of every page, truncated or not.
    ...(last === undefined ? {} : { nextPartNumberMarker: last.partNumber }),
    maxParts,
    isTruncated: page.isTruncated,
    ...(checksum === undefined ? {} : { checksumAlgorithm: checksum.algorithm, checksumType: checksum.type }),
    parts: page.parts.map((p) => ({
      partNumber: p.partNumber,
      lastModified: new Date(p.lastModified),
      etag: p.etag,
      size: p.size,
      checksums: p.checksums,
    })),
  });
};
