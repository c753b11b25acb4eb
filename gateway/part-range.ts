// GetObject/HeadObject with ?partNumber=N: the bytes of the object's Nth part, answered like a
// Range request (206, Content-Range) plus x-amz-mp-parts-count. N counts the completed object's
// parts in order (what x-amz-mp-parts-count promises: 1..count are all valid), whatever numbers
// they were uploaded under. An object from a single PUT is one part.
import { s3Error } from './s3/errors.js';
import { checksumTypeOf } from './s3/checksums.js';
import { parsePartNumber } from './multipart.js';
import type { ByteRange } from './s3/range.js';
import type { ObjectRecord } from '../namespace/types.js';
import type { S3Context } from './server.js';

/**
 * The byte range of the requested part, or undefined when the request names no part (or the part
 * is an empty object's, which has no byte to start a 206 at). Sets the part's response headers.
 */
export function selectPart(ctx: S3Context, record: ObjectRecord): ByteRange | undefined {
  if (!('partNumber' in ctx.query)) return undefined;
  const partNumber = parsePartNumber(ctx.query);
  if (ctx.get('range') !== '') throw s3Error('InvalidRequest', 'Cannot specify both Range header and partNumber query parameter');
  const parts = record.parts;
  const count = parts?.length ?? 1;
  if (partNumber > count) {
    throw s3Error('InvalidPartNumber', undefined, { PartNumberRequested: partNumber, ActualPartCount: count });
  }
  if (parts === undefined) return record.size === 0 ? undefined : { start: 0, end: record.size - 1 };

  ctx.set('x-amz-mp-parts-count', String(count));
  let start = 0;
  for (let i = 0; i < partNumber - 1; i++) start += parts[i]!.size;
  const part = parts[partNumber - 1]!;
  // The object's checksum describes all parts; what is returned for one part is that part's own.
  if (ctx.get('x-amz-checksum-mode').toUpperCase() === 'ENABLED' && part.checksums !== undefined) {
    for (const [algorithm, value] of Object.entries(part.checksums)) ctx.set(`x-amz-checksum-${algorithm.toLowerCase()}`, value);
    const objectChecksum = Object.values(record.checksums)[0];
    if (objectChecksum !== undefined) ctx.set('x-amz-checksum-type', checksumTypeOf(objectChecksum));
  }
  return { start, end: start + part.size - 1 };
}
