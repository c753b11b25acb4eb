// PutObject: PUT /bucket/key — streams the decoded body through the erasure encoder to the storage
// nodes, verifies every digest the client sent, then commits the record: the object exists from
// the commit on, never before, and a failed upload leaves nothing visible.
import { pooledRandomBytes } from '../../common/random.js';
import { requestPayload } from './body.js';
import { objectHeadersFrom } from '../metadata.js';
import { parseTaggingHeader } from '../s3/tagging.js';
import { commitRefused, discardSegments } from '../data/writer.js';
import { integrityUnits, writeObject } from '../data/object-writer.js';
import { writeOptions } from '../data/options.js';
import { checkClientCrc32c } from '../data/integrity.js';
import type { ObjectRecord } from '../../namespace/types.js';
import { sendEmpty, type OperationHandler } from '../server.js';
import { clientGoneSignal } from '../client-gone.js';
import { parseWritePrecondition, resolveWritePrecondition } from '../write-conditions.js';

/** S3's limit for a single PUT. */
export const MAX_PUT_SIZE = 5 * 1024 ** 3;

/** Time-ordered and unique: shard ids embed it, and GC can tell old writes from new ones. */
export function newVersionId(): string {
  return Date.now().toString(36).padStart(9, '0') + pooledRandomBytes(8).toString('hex');
}

export const putObject: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const precondition = parseWritePrecondition(ctx.req.headers);
  const meta = objectHeadersFrom(ctx.req.headers);
  const tags = parseTaggingHeader(ctx.req.headers['x-amz-tagging']);
  const payload = requestPayload(ctx, services, { maxSize: MAX_PUT_SIZE, defaultChecksum: 'CRC64NVME' });
  await services.buckets.get(bucket); // NoSuchBucket before any byte is stored
  const condition = await resolveWritePrecondition(precondition, services.namespace, bucket, key);

  const versionId = newVersionId();
  const { config } = services;
  const written = await writeObject(payload.body, writeOptions(services, versionId, { signal: clientGoneSignal(ctx), expectedSize: payload.declaredLength }), services, config.inlineMaxBytes);
  let committing = false;
  try {
    const digests = payload.digests();
    checkClientCrc32c(digests.checksums.CRC32C, integrityUnits(written));
    services.metrics.bytesIn.inc(undefined, written.size);
    const record: ObjectRecord = {
      bucket,
      key,
      versionId,
      size: written.size,
      etag: `"${digests.md5Hex}"`,
      lastModified: new Date().toISOString(),
      contentType: meta.contentType,
      userMetadata: meta.userMetadata,
      headers: meta.headers,
      checksums: digests.checksums,
      layout: config.layout,
      segments: written.segments,
      ...(written.inline ? { inline: written.inline } : {}),
      ...(tags.length > 0 ? { tags: [...tags] } : {}),
    };
    committing = true;
    await services.namespace.commitObject({ record, condition });
    ctx.set('ETag', record.etag);
    for (const [algorithm, value] of Object.entries(record.checksums)) ctx.set(`x-amz-checksum-${algorithm.toLowerCase()}`, value);
    ctx.set('x-amz-checksum-type', 'FULL_OBJECT');
    sendEmpty(ctx, 200);
  } catch (err) {
    if (!committing || commitRefused(err)) discardSegments(written.segments, services);
    throw err;
  }
};
