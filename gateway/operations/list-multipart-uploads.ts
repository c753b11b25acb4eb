// ListMultipartUploads: GET /bucket?uploads with prefix, delimiter, key-marker, upload-id-marker,
// max-uploads and encoding-type. The namespace lists uploads in (key, upload id) order; rolling keys
// up into CommonPrefixes happens here, each prefix counting once toward max-uploads.
import { ownerOf } from '../authorize.js';
import { s3Error } from '../s3/errors.js';
import { listMultipartUploadsXml, type UploadEntry } from '../s3/xml.js';
import { single } from '../multipart.js';
import type { ListUploadsQuery, MultipartUploadRecord } from '../../namespace/types.js';
import type { OperationHandler } from '../server.js';

const MAX_UPLOADS = 1000;
const INT32_MAX = 2 ** 31 - 1;

function parseMaxUploads(text: string | undefined): number {
  if (text === undefined) return MAX_UPLOADS;
  const n = /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(n <= INT32_MAX)) {
    throw s3Error('InvalidArgument', `Argument max-uploads must be an integer between 0 and ${INT32_MAX}`, {
      ArgumentName: 'max-uploads',
      ArgumentValue: text,
    });
  }
  return Math.min(n, MAX_UPLOADS);
}

/** S3 orders keys by their UTF-8 bytes, which JS string comparison does not always match. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function rollUp(key: string, prefix: string, delimiter: string | undefined): string | undefined {
  if (delimiter === undefined) return undefined;
  const at = key.indexOf(delimiter, prefix.length);
  return at === -1 ? undefined : key.slice(0, at + delimiter.length);
}

export const listMultipartUploads: OperationHandler = async (ctx, services) => {
  const bucket = ctx.state.target.bucket!;
  const q = ctx.query;
  const encodingType = single(q, 'encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') {
    throw s3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type', ArgumentValue: encodingType });
  }
  const prefix = single(q, 'prefix') ?? '';
  const delimiter = single(q, 'delimiter') || undefined;
  const keyMarker = single(q, 'key-marker') ?? '';
  // S3 ignores upload-id-marker without key-marker.
  const uploadIdMarker = keyMarker === '' ? '' : single(q, 'upload-id-marker') ?? '';
  const maxUploads = parseMaxUploads(single(q, 'max-uploads'));

  const uploads: MultipartUploadRecord[] = [];
  const commonPrefixes: string[] = [];
  let isTruncated = false;
  let last: { key: string; uploadId?: string } | undefined;
  const query: ListUploadsQuery = { prefix, maxUploads: MAX_UPLOADS };
  if (keyMarker !== '') query.keyMarker = keyMarker;
  if (uploadIdMarker !== '') query.uploadIdMarker = uploadIdMarker;
  scan: for (;;) {
    const page = await services.namespace.listUploads(bucket, query);
    for (const upload of page.uploads) {
      const rolled = rollUp(upload.key, prefix, delimiter);
      // A prefix already reported, on this page or (as the marker) on an earlier one.
      if (rolled !== undefined && (rolled === commonPrefixes[commonPrefixes.length - 1] || (keyMarker !== '' && byteOrder(rolled, keyMarker) <= 0))) continue;
      if (uploads.length + commonPrefixes.length === maxUploads) {
        isTruncated = true;
        break scan;
      }
      if (rolled === undefined) {
        uploads.push(upload);
        last = { key: upload.key, uploadId: upload.uploadId };
      } else {
        commonPrefixes.push(rolled);
        last = { key: rolled };
      }
    }
    if (!page.isTruncated || page.nextKeyMarker === undefined) break;
    query.keyMarker = page.nextKeyMarker;
    query.uploadIdMarker = page.nextUploadIdMarker;
  }

  const owner = ownerOf(ctx.state.principal);
  ctx.type = 'application/xml';
  ctx.body = listMultipartUploadsXml({
    bucket,
    keyMarker,
    uploadIdMarker,
    ...(last === undefined ? {} : { nextKeyMarker: last.key }),
    ...(last?.uploadId === undefined ? {} : { nextUploadIdMarker: last.uploadId }),
    ...(delimiter === undefined ? {} : { delimiter }),
    prefix,
    maxUploads,
    isTruncated,
    ...(encodingType === 'url' ? { encodingType: 'url' as const } : {}),
    uploads: uploads.map(
      (u): UploadEntry => ({
        key: u.key,
        uploadId: u.uploadId,
        initiated: new Date(u.initiated),
        initiator: owner,
        owner,
        ...(u.checksumAlgorithm === undefined ? {} : { checksumAlgorithm: u.checksumAlgorithm }),
      }),
    ),
    commonPrefixes,
  });
};
