// Conditional writes (PutObject, CopyObject, CompleteMultipartUpload): `If-None-Match: *` and
// `If-Match: <etag>`, as S3 answers them:
//  - If-None-Match takes only "*"; any other value, or both headers together, is 501 NotImplemented.
//  - If-None-Match: * on an existing key, or If-Match with another ETag → 412 PreconditionFailed.
//  - If-Match on a key that does not exist → 404 NoSuchKey.
// The check made here, before any byte is stored, spares a doomed upload; the namespace repeats it
// atomically with the commit, which is what makes concurrent writers safe (one wins, the rest 412).
import type { IncomingHttpHeaders } from 'node:http';
import { s3Error } from './s3/errors.js';
import { etagMatches } from './conditions.js';
import type { NamespaceClient } from '../namespace/client.js';
import type { WriteCondition } from '../namespace/types.js';

export type WritePrecondition = { readonly kind: 'if-none-match' } | { readonly kind: 'if-match'; readonly etags: string };

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** The request's write precondition, or undefined; refuses what S3 does not implement. */
export function parseWritePrecondition(headers: IncomingHttpHeaders): WritePrecondition | undefined {
  const ifNoneMatch = single(headers['if-none-match']);
  const ifMatch = single(headers['if-match']);
  if (ifNoneMatch !== undefined && ifMatch !== undefined) {
    throw s3Error('NotImplemented', undefined, { Header: 'If-Match' });
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*') throw s3Error('NotImplemented', undefined, { Header: 'If-None-Match' });
    return { kind: 'if-none-match' };
  }
  if (ifMatch !== undefined) return { kind: 'if-match', etags: ifMatch };
  return undefined;
}

/**
 * Checks the precondition against the current object and returns the condition the namespace
 * must re-check atomically at commit time.
 */
export async function resolveWritePrecondition(
  precondition: WritePrecondition | undefined,
  namespace: NamespaceClient,
  bucket: string,
  key: string,
): Promise<WriteCondition | undefined> {
  if (precondition === undefined) return undefined;
  // Its ETag is all that is compared: no segment needs to travel.
  const current = await namespace.getObjectOrNull(bucket, key, { none: true });
  if (precondition.kind === 'if-none-match') {
    if (current !== null) throw s3Error('PreconditionFailed', undefined, { Condition: 'If-None-Match' });
    return { ifNoneMatch: true };
  }
  if (current === null) throw s3Error('NoSuchKey', undefined, { Key: key });
  if (!etagMatches(precondition.etags, current.etag)) throw s3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
  // The ETag that matched, not the version: an identical overwrite in between still satisfies If-Match.
  return { ifEtag: current.etag };
}
