// UploadPartCopy: PUT /bucket/key?partNumber=N&uploadId=X with x-amz-copy-source (and optionally
// x-amz-copy-source-range: bytes=first-last). The source bytes are read through the normal read
// path and written as new shards: objects never share shards, so deleting the source, or GC of
// either side, cannot damage the other.
import { createHash } from 'node:crypto';
import { s3Error } from '../s3/errors.js';
import { createHasher } from '../s3/checksums.js';
import { copyPartResultXml } from '../s3/xml.js';
import { parseCopySource, checkCopySourceConditions } from '../copy-source.js';
import { readObjectRange } from '../data/reader.js';
import { readerDeps } from '../data/options.js';
import { MAX_PART_SIZE, parsePartNumber, requireUpload, storePart, uploadChecksum, uploadIdFrom } from '../multipart.js';
import { rangeSelection, type ByteRange } from '../s3/range.js';
import type { OperationHandler } from '../server.js';

export const uploadPartCopy: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const partNumber = parsePartNumber(ctx.query);
  const source = parseCopySource(ctx.get('x-amz-copy-source'));
  const upload = await requireUpload(services, bucket, key, uploadIdFrom(ctx.query));
  const rangeHeader = ctx.get('x-amz-copy-source-range');
  // A large object copied part by part (as the CLI does) reads each part's segments, not all of them every time.
  const record = await services.namespace.getObject(source.bucket, source.key, rangeHeader === '' ? undefined : rangeSelection(rangeHeader));
  checkCopySourceConditions(ctx.req.headers, record.etag, new Date(record.lastModified));
  const range = rangeHeader === '' ? undefined : parseCopySourceRange(rangeHeader, record.size);
  const start = range?.start ?? 0;
  const end = range?.end ?? record.size - 1;
  if (end - start + 1 > MAX_PART_SIZE) {
    throw s3Error('InvalidRequest', `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_PART_SIZE}`);
  }

  // The part's digests are those of the copied bytes, computed as they pass.
  const md5 = createHash('md5');
  const algorithm = uploadChecksum(upload)?.algorithm;
  const hasher = algorithm === undefined ? undefined : createHasher(algorithm);
  async function* copied(): AsyncGenerator<Buffer> {
    if (end < start) return;
    for await (const chunk of readObjectRange(record, start, end, readerDeps(services))) {
      md5.update(chunk);
      hasher?.update(chunk);
      yield chunk;
    }
  }
  const part = await storePart(
    services,
    upload,
    partNumber,
    copied(),
    () => ({
      md5Hex: md5.digest('hex'),
      checksums: algorithm === undefined || hasher === undefined ? {} : { [algorithm]: hasher.digest().toString('base64') },
    }),
    { expectedSize: Math.max(0, end - start + 1) },
  );
  ctx.type = 'application/xml';
  ctx.body = copyPartResultXml({ etag: part.etag, lastModified: new Date(part.lastModified), checksums: part.checksums });
};

const COPY_RANGE = /^bytes=([0-9]{1,16})-([0-9]{1,16})$/;

/** Unlike Range on GET, a copy range must be exactly `bytes=first-last` and lie inside the source. */
function parseCopySourceRange(header: string, size: number): ByteRange {
  const match = COPY_RANGE.exec(header.trim());
  if (match === null) {
    throw s3Error(
      'InvalidArgument',
      'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
      { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: header },
    );
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (start > end || end >= size) {
    throw s3Error('InvalidArgument', `Range specified is not valid for source object of size: ${size}`, {
      ArgumentName: 'x-amz-copy-source-range',
      ArgumentValue: header,
    });
  }
  return { start, end };
}
