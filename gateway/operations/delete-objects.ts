// DeleteObjects: POST /bucket?delete — up to 1000 keys in one request. Each key is deleted on its
// own; a failure is reported for that key in the DeleteResult and the others go on. A key that does
// not exist is reported as deleted, as S3 does. Quiet mode lists only the errors. Access is checked
// per key (s3:DeleteObject on that object, authorize.ts), and a refused key is AccessDenied.
import { S3Error, S3_ERROR_CODES, defaultMessage, type S3ErrorCode } from '../s3/errors.js';
import { deleteResultXml, parseDeleteRequest, type DeleteErrorEntry, type DeletedEntry } from '../s3/xml.js';
import { objectKeyError } from '../request-target.js';
import { HttpError } from '../../common/http.js';
import type { OperationHandler } from '../server.js';
import type { GatewayServices } from '../services.js';
import { readSmallBody, requireIntegrityHeader } from './body.js';

/** 1000 keys of up to 1 KiB each, XML-escaped, fit well within this. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Deletes in flight at once: enough to hide namespace round trips without flooding it. */
const PARALLEL_DELETES = 16;

export const deleteObjects: OperationHandler = async (ctx, services) => {
  const bucket = ctx.state.target.bucket!;
  requireIntegrityHeader(ctx.req.headers);
  await services.namespace.getBucket(bucket);
  const request = parseDeleteRequest(await readSmallBody(ctx, services, MAX_BODY_BYTES));

  const results = new Array<DeletedEntry | DeleteErrorEntry>(request.objects.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < request.objects.length) {
      const index = next++;
      const object = request.objects[index]!;
      results[index] = ctx.state.access.allows('s3:DeleteObject', object.key)
        ? await deleteOne(services, bucket, object)
        : { key: object.key, code: 'AccessDenied', message: defaultMessage('AccessDenied') };
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_DELETES, request.objects.length) }, worker));

  const errors = results.filter((r): r is DeleteErrorEntry => 'code' in r);
  const deleted = request.quiet ? [] : results.filter((r): r is DeletedEntry => !('code' in r));
  ctx.status = 200;
  ctx.type = 'application/xml';
  ctx.body = deleteResultXml({ deleted, errors });
};

async function deleteOne(
  services: GatewayServices,
  bucket: string,
  object: { readonly key: string; readonly versionId?: string },
): Promise<DeletedEntry | DeleteErrorEntry> {
  const { key, versionId } = object;
  // Cairn keeps one version per key, which S3 calls version "null".
  if (versionId !== undefined && versionId !== 'null') {
    return { key, versionId, code: 'NoSuchVersion', message: 'The specified version does not exist.' };
  }
  const invalid = objectKeyError(key);
  if (invalid !== undefined) return { key, code: invalid.code, message: invalid.message };
  try {
    await services.namespace.deleteObject(bucket, key);
    return versionId === undefined ? { key } : { key, versionId };
  } catch (err) {
    const { code, message } = keyError(err, services);
    return { key, code, message };
  }
}

const KNOWN_CODES = new Set<string>(S3_ERROR_CODES);

function keyError(err: unknown, services: GatewayServices): { code: S3ErrorCode; message: string } {
  if (err instanceof S3Error) return { code: err.code, message: err.message };
  if (err instanceof HttpError && KNOWN_CODES.has(err.code) && err.code !== 'InternalError') {
    const code = err.code as S3ErrorCode;
    return { code, message: defaultMessage(code) };
  }
  services.log.warn('delete of one key failed', { err });
  return { code: 'InternalError', message: defaultMessage('InternalError') };
}
