// Pure: which bucket and key a request addresses. Path-style: /bucket/key...; virtual-hosted
// style (the bucket came from the Host header, see virtual-host.ts): /key...
// The key is everything after the first slash following the bucket, URL-decoded once, so keys
// may contain '/', '//' and any UTF-8.
import { s3Error, type S3Error } from './s3/errors.js';

export interface RequestTarget {
  bucket?: string;
  key?: string;
}

export function parseTarget(rawPath: string, hostBucket?: string): RequestTarget {
  const path = rawPath.startsWith('/') ? rawPath.slice(1) : rawPath;
  if (hostBucket !== undefined) return path === '' ? { bucket: hostBucket } : { bucket: hostBucket, key: decode(path) };
  if (path === '') return {};
  const slash = path.indexOf('/');
  const bucket = decode(slash === -1 ? path : path.slice(0, slash));
  const rawKey = slash === -1 ? '' : path.slice(slash + 1);
  return rawKey === '' ? { bucket } : { bucket, key: decode(rawKey) };
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw s3Error('InvalidURI', 'Couldn\'t parse the specified URI.');
  }
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IP_ADDRESS = /^\d{1,3}(\.\d{1,3}){3}$/;

/** S3's general-purpose bucket naming rules. */
export function validateBucketName(name: string): void {
  const ok =
    BUCKET_NAME.test(name) &&
    !name.includes('..') &&
    !name.includes('.-') &&
    !name.includes('-.') &&
    !IP_ADDRESS.test(name) &&
    !name.startsWith('xn--') &&
    !name.startsWith('sthree-') &&
    !name.startsWith('amzn-s3-demo-') &&
    !name.endsWith('-s3alias') &&
    !name.endsWith('--ol-s3') &&
    !name.endsWith('.mrap') &&
    !name.endsWith('--x-s3') &&
    !name.endsWith('--table-s3');
  if (!ok) throw s3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: name });
}

export const MAX_KEY_BYTES = 1024;

/**
 * Why S3 (or Cairn) refuses an object key, or undefined for a valid one. Keys are opaque: "..",
 * "//", percent signs and control characters are all fine (the data path names files by shard
 * id, never by key); only U+0000 is refused, which the namespace's 0x00-joined keys cannot hold.
 */
export function objectKeyError(key: string): S3Error | undefined {
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    return s3Error('KeyTooLongError', 'Your key is too long', { Size: Buffer.byteLength(key, 'utf8'), MaxSizeAllowed: MAX_KEY_BYTES });
  }
  if (key.includes('\0')) {
    return s3Error('InvalidArgument', 'Object key must not contain the NUL character (U+0000).', { ArgumentName: 'key', ArgumentValue: '%00' });
  }
  return undefined;
}

export function validateKey(key: string): void {
  const error = objectKeyError(key);
  if (error !== undefined) throw error;
}
