// CopyObject: PUT /bucket/key with x-amz-copy-source (and no uploadId). The bytes are read through
// the normal read path (CRC-checked, decoded from parity when needed) and written as new shards
// under a new version id: two objects never share a shard, so deleting or overwriting one can
// never take data from the other. The copy's MD5 and checksum are computed from the bytes as they
// pass and compared with what the source recorded, so a copy never silently diverges from it.
import { createHash } from 'node:crypto';
import { s3Error } from '../s3/errors.js';
import { copyObjectResultXml } from '../s3/xml.js';
import {
  checksumTypeOf,
  createHasher,
  parseChecksumAlgorithm,
  type ChecksumAlgorithm,
} from '../s3/checksums.js';
import { objectHeadersFrom } from '../metadata.js';
import { parseTaggingDirective, parseTaggingHeader } from '../s3/tagging.js';
import { checkCopySourceConditions, parseCopySource, parseMetadataDirective } from '../copy-source.js';
import { parseWritePrecondition, resolveWritePrecondition } from '../write-conditions.js';
import { readObjectRange } from '../data/reader.js';
import { commitRefused, discardSegments } from '../data/writer.js';
import { writeObject } from '../data/object-writer.js';
import { readerDeps, writeOptions } from '../data/options.js';
import type { ObjectRecord } from '../../namespace/types.js';
import type { OperationHandler } from '../server.js';
import { MAX_PUT_SIZE, newVersionId } from './put-object.js';

const SELF_COPY =
  "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";

export const copyObject: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  // A copy has no body; whatever a client sent must not be read as the next request.
  ctx.req.resume();
  const headers = ctx.req.headers;
  const source = parseCopySource(ctx.get('x-amz-copy-source'));
  const directive = parseMetadataDirective(headers);
  const precondition = parseWritePrecondition(headers);
  const requestedAlgorithm = checksumAlgorithmHeader(ctx.get('x-amz-checksum-algorithm'));
  const replaced = directive === 'REPLACE' ? objectHeadersFrom(headers) : undefined;
  // As S3: COPY (the default) keeps the source's tags and ignores x-amz-tagging; REPLACE takes it (none when absent).
  const replacedTags = parseTaggingDirective(headers['x-amz-tagging-directive']) === 'REPLACE' ? parseTaggingHeader(headers['x-amz-tagging']) : undefined;

  await services.buckets.get(bucket);
  const original = await services.namespace.getObject(source.bucket, source.key);
  checkCopySourceConditions(headers, original.etag, new Date(original.lastModified));
  if (source.bucket === bucket && source.key === key && directive !== 'REPLACE') throw s3Error('InvalidRequest', SELF_COPY);
  if (original.size > MAX_PUT_SIZE) {
    throw s3Error('InvalidRequest', `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_PUT_SIZE}`);
  }
  const condition = await resolveWritePrecondition(precondition, services.namespace, bucket, key);

  const algorithm = requestedAlgorithm ?? storedAlgorithm(original) ?? 'CRC64NVME';
  const digest = digesting(readObjectRange(original, 0, original.size - 1, readerDeps(services)), algorithm);
  const versionId = newVersionId();
  const written = await writeObject(digest.bytes, writeOptions(services, versionId, { expectedSize: original.size }), services, services.config.inlineMaxBytes);
  let committing = false;
  try {
    const computed = digest.result();
    verifyAgainstSource(original, written.size, computed);
    const record: ObjectRecord = {
      bucket,
      key,
      versionId,
      size: written.size,
      etag: `"${computed.md5Hex}"`,
      lastModified: new Date().toISOString(),
      contentType: replaced?.contentType ?? original.contentType,
      userMetadata: replaced?.userMetadata ?? original.userMetadata,
      headers: replaced?.headers ?? original.headers,
      checksums: { [algorithm]: computed.checksum },
      layout: services.config.layout,
      segments: written.segments,
      ...(written.inline ? { inline: written.inline } : {}),
    };
    const tags = replacedTags ?? original.tags ?? [];
    if (tags.length > 0) record.tags = [...tags];
    committing = true;
    await services.namespace.commitObject({ record, condition });
    ctx.status = 200;
    ctx.type = 'application/xml';
    ctx.body = copyObjectResultXml({ etag: record.etag, lastModified: new Date(record.lastModified), checksums: { [algorithm]: computed.checksum } });
  } catch (err) {
    if (!committing || commitRefused(err)) discardSegments(written.segments, services);
    throw err;
  }
};

function checksumAlgorithmHeader(value: string): ChecksumAlgorithm | undefined {
  if (value === '') return undefined;
  const algorithm = parseChecksumAlgorithm(value);
  if (algorithm === undefined) {
    throw s3Error(
      'InvalidRequest',
      'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
    );
  }
  return algorithm;
}

/** The algorithm of the source's checksum, which a copy keeps unless the request names another. */
function storedAlgorithm(record: ObjectRecord): ChecksumAlgorithm | undefined {
  for (const name of Object.keys(record.checksums)) {
    const algorithm = parseChecksumAlgorithm(name);
    if (algorithm !== undefined) return algorithm;
  }
  return undefined;
}

interface CopyDigests {
  algorithm: ChecksumAlgorithm;
  md5Hex: string;
  checksum: string;
}

function digesting(source: AsyncIterable<Buffer>, algorithm: ChecksumAlgorithm): { bytes: AsyncIterable<Buffer>; result: () => CopyDigests } {
  const md5 = createHash('md5');
  const hasher = createHasher(algorithm);
  let done = false;
  async function* bytes(): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      md5.update(chunk);
      hasher.update(chunk);
      yield chunk;
    }
    done = true;
  }
  return {
    bytes: bytes(),
    result: () => {
      if (!done) throw new Error('the copy source was not read to its end');
      return { algorithm, md5Hex: md5.digest('hex'), checksum: hasher.digest().toString('base64') };
    },
  };
}

/**
 * The read path already checks every block's CRC32C; this end-to-end check catches anything else
 * (a wrong placement, a decode bug) before a bad copy becomes an object.
 */
function verifyAgainstSource(original: ObjectRecord, size: number, computed: CopyDigests): void {
  const mismatch = (what: string) => new Error(`copy of ${original.bucket}/${original.key} (${original.versionId}): ${what} differs from the source`);
  if (size !== original.size) throw mismatch('size');
  const bareEtag = original.etag.replace(/^"|"$/g, '');
  if (/^[0-9a-f]{32}$/.test(bareEtag) && bareEtag !== computed.md5Hex) throw mismatch('MD5');
  const stored = original.checksums[computed.algorithm];
  if (stored !== undefined && checksumTypeOf(stored) === 'FULL_OBJECT' && stored !== computed.checksum) throw mismatch(computed.algorithm);
}
