// Pure: the object headers S3 stores on PUT and returns on GET/HEAD.
import type { IncomingHttpHeaders } from 'node:http';
import { s3Error } from './s3/errors.js';
import { decodeHeaderText } from './s3/mime-words.js';

/** System headers stored verbatim with an object and returned on GET/HEAD. */
export const STORED_HEADERS = ['content-encoding', 'content-disposition', 'cache-control', 'content-language', 'expires'] as const;

/** S3 limits user-defined metadata (names + values of x-amz-meta-*) to 2 KB. */
export const MAX_USER_METADATA_BYTES = 2048;

export interface ObjectHeaders {
  contentType: string;
  userMetadata: Record<string, string>;
  headers: Record<string, string>;
}

export function objectHeadersFrom(headers: IncomingHttpHeaders): ObjectHeaders {
  // No prototype: a metadata name may be "__proto__", which a plain object would swallow.
  const userMetadata: Record<string, string> = Object.create(null) as Record<string, string>;
  let metadataBytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const short = name.slice('x-amz-meta-'.length);
    const text = decodeHeaderText(Array.isArray(value) ? value.join(',') : value);
    userMetadata[short] = text;
    metadataBytes += Buffer.byteLength(short) + Buffer.byteLength(text);
  }
  if (metadataBytes > MAX_USER_METADATA_BYTES) {
    throw s3Error('MetadataTooLarge', 'Your metadata headers exceed the maximum allowed metadata size.', {
      Size: String(metadataBytes),
      MaxSizeAllowed: String(MAX_USER_METADATA_BYTES),
    });
  }
  const stored: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    let value = headers[name];
    if (typeof value !== 'string') continue;
    // aws-chunked is transfer framing, not a property of the object.
    if (name === 'content-encoding') value = value.split(',').map((v) => v.trim()).filter((v) => v && v !== 'aws-chunked').join(',');
    if (value) stored[name] = value;
  }
  return { contentType: headers['content-type'] || 'binary/octet-stream', userMetadata, headers: stored };
}

/** GET's response-* query parameters override these response headers. */
export const RESPONSE_OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};
