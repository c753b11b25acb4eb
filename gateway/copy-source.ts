// Pure: the request headers of a server-side copy (CopyObject, UploadPartCopy) as S3 reads them.
import type { IncomingHttpHeaders } from 'node:http';
import { s3Error } from './s3/errors.js';
import { evaluateReadConditions } from './conditions.js';

export interface CopySource {
  bucket: string;
  key: string;
}

const COPY_SOURCE_HINT = 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey';

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/**
 * `x-amz-copy-source: [/]bucket/key[?versionId=id]`, URL-encoded. The query is split off before
 * decoding, so an encoded '?' (%3F) stays part of the key. Cairn keeps one version per key, so only
 * the version id "null" (S3's id for an unversioned object) can name it.
 */
export function parseCopySource(raw: string): CopySource {
  let text = raw.trim();
  const q = text.indexOf('?');
  if (q !== -1) {
    const params = new URLSearchParams(text.slice(q + 1));
    text = text.slice(0, q);
    const versionId = params.get('versionId');
    if (versionId !== null && versionId !== 'null') {
      throw s3Error('InvalidArgument', 'Invalid version id specified', { ArgumentName: 'x-amz-copy-source', ArgumentValue: raw });
    }
  }
  if (text.startsWith('/')) text = text.slice(1);
  const slash = text.indexOf('/');
  if (slash <= 0 || slash === text.length - 1) {
    throw s3Error('InvalidArgument', COPY_SOURCE_HINT, { ArgumentName: 'x-amz-copy-source', ArgumentValue: raw });
  }
  try {
    return { bucket: decodeURIComponent(text.slice(0, slash)), key: decodeURIComponent(text.slice(slash + 1)) };
  } catch {
    throw s3Error('InvalidArgument', COPY_SOURCE_HINT, { ArgumentName: 'x-amz-copy-source', ArgumentValue: raw });
  }
}

export type MetadataDirective = 'COPY' | 'REPLACE';

export function parseMetadataDirective(headers: IncomingHttpHeaders): MetadataDirective {
  const value = header(headers, 'x-amz-metadata-directive');
  if (value === undefined) return 'COPY';
  const upper = value.trim().toUpperCase();
  if (upper === 'COPY' || upper === 'REPLACE') return upper;
  throw s3Error('InvalidArgument', 'Unknown metadata directive.', { ArgumentName: 'x-amz-metadata-directive', ArgumentValue: value });
}

/**
 * x-amz-copy-source-if-{match,none-match,modified-since,unmodified-since}: the GET rules (a true
 * If-Match overrides a false If-Unmodified-Since; If-None-Match overrides If-Modified-Since), but a
 * copy has no "not modified" answer, so every failed condition is 412.
 */
export function checkCopySourceConditions(headers: IncomingHttpHeaders, etag: string, lastModified: Date): void {
  const mapped: IncomingHttpHeaders = {
    'if-match': header(headers, 'x-amz-copy-source-if-match'),
    'if-none-match': header(headers, 'x-amz-copy-source-if-none-match'),
    'if-modified-since': header(headers, 'x-amz-copy-source-if-modified-since'),
    'if-unmodified-since': header(headers, 'x-amz-copy-source-if-unmodified-since'),
  };
  if (evaluateReadConditions(mapped, etag, lastModified) !== 'proceed') throw s3Error('PreconditionFailed');
}
