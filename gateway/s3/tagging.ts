// Pure: S3 object tags as clients send them — the x-amz-tagging header (PutObject, CopyObject,
// CreateMultipartUpload) and the Tagging document (PutObjectTagging) — checked by S3's rules, with
// the errors and texts S3 answers (measured against S3 by other S3 implementations' suites).
import { MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, type Tag } from '../../namespace/types.js';
import { s3Error } from './errors.js';

/** A request header as Node gives it (a repeated one joined, as Node joins unknown headers). */
type HeaderValue = string | readonly string[] | undefined;
const single = (value: HeaderValue): string | undefined => (typeof value === 'string' || value === undefined ? value : value.join(', '));

const MAX_KEY_LENGTH = 128;
const MAX_VALUE_LENGTH = 256;
/**
 * S3's tag alphabet: letters, digits and spaces of any script, and + - = . _ : / @. Lengths count
 * UTF-16 units as S3 does (a JavaScript string's length), so an astral letter costs two.
 */
const TAG_TEXT = /^[\p{L}\p{N}\p{Z}+\-=._:/@]*$/u;

function validText(text: string, min: number, max: number): boolean {
  return text.length >= min && text.length <= max && TAG_TEXT.test(text);
}

/** Throws the S3 error for the first tag S3 would refuse (an object's, or a bucket's); the tags are returned as given. */
export function checkTags(tags: readonly Tag[], of: 'object' | 'bucket' = 'object'): readonly Tag[] {
  const [what, max] = of === 'object' ? ['Object', MAX_OBJECT_TAGS] : ['Bucket', MAX_BUCKET_TAGS];
  if (tags.length > max) throw s3Error('BadRequest', `${what} tags cannot be greater than ${max}`);
  const seen = new Set<string>();
  for (const { key, value } of tags) {
    if (!validText(key, 1, MAX_KEY_LENGTH)) throw s3Error('InvalidTag', 'The TagKey you have provided is invalid', { TagKey: key });
    if (key.toLowerCase().startsWith('aws:')) throw s3Error('InvalidTag', 'System tags cannot be added/updated by requester', { TagKey: key });
    if (!validText(value, 0, MAX_VALUE_LENGTH)) {
      throw s3Error('InvalidTag', 'The TagValue you have provided is invalid', { TagKey: key, TagValue: value });
    }
    if (seen.has(key)) throw s3Error('InvalidTag', 'Cannot provide multiple Tags with the same key', { TagKey: key });
    seen.add(key);
  }
  return tags;
}

/**
 * x-amz-tagging: URL query syntax ("a=1&b=x%2Fy&c"; "+" is a space, a tag without "=" has an empty
 * value, empty pairs are skipped). A pair without a key, a repeated key or an escape that is not
 * UTF-8 is the header's own InvalidArgument; the tags then pass checkTags. Absent or empty: none.
 */
export function parseTaggingHeader(value: HeaderValue): readonly Tag[] {
  const header = single(value);
  if (header === undefined || header === '') return [];
  const invalid = () =>
    s3Error(
      'InvalidArgument',
      "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
      { ArgumentName: 'x-amz-tagging', ArgumentValue: header },
    );
  const tags: Tag[] = [];
  const seen = new Set<string>();
  for (const pair of header.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decodeQueryPart(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decodeQueryPart(pair.slice(eq + 1));
    if (key === undefined || value === undefined || key === '' || seen.has(key)) throw invalid();
    seen.add(key);
    tags.push({ key, value });
  }
  return checkTags(tags);
}

/** Percent-decoding of UTF-8 with "+" as a space; undefined when an escape is malformed or not UTF-8. */
function decodeQueryPart(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/** The x-amz-tagging-directive of CopyObject: COPY (the default) keeps the source's tags, REPLACE takes the request's. */
export function parseTaggingDirective(header: HeaderValue): 'COPY' | 'REPLACE' {
  const value = single(header);
  if (value === undefined) return 'COPY';
  const upper = value.trim().toUpperCase();
  if (upper === 'COPY' || upper === 'REPLACE') return upper;
  throw s3Error('InvalidArgument', 'Unknown tagging directive.', { ArgumentName: 'x-amz-tagging-directive', ArgumentValue: value });
}
