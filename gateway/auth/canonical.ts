// SigV4 canonical forms of the request target and headers, as S3 computes them: every
// path segment and query component is decoded once and re-encoded with the SigV4 rules
// (unreserved A-Z a-z 0-9 - . _ ~ kept, everything else %XX of its UTF-8), so a client's
// own choice of escaping does not matter and nothing is double-encoded. S3 does not
// normalise paths: "//", "." and ".." segments are kept as they are.
import { S3Error } from '../s3/errors.js';

export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface QueryParam {
  readonly name: string;
  readonly value: string;
}

function invalidUri(cause: unknown): S3Error {
  return new S3Error('InvalidURI', undefined, undefined, { cause });
}

/** SigV4 URI-encoding of an already-decoded string. */
export function awsUriEncode(text: string): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(text);
  } catch (cause) {
    throw invalidUri(cause);
  }
  return encoded.replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decodeComponent(text: string, plusIsSpace: boolean): string {
  const input = plusIsSpace ? text.replace(/\+/g, ' ') : text;
  if (!input.includes('%')) return input;
  try {
    return decodeURIComponent(input);
  } catch (cause) {
    throw invalidUri(cause);
  }
}

/** Split a request-target ("/b/k?x=1") into its raw, still-encoded path and query. */
export function splitRawUrl(url: string): { rawPath: string; rawQuery: string } {
  const q = url.indexOf('?');
  return q < 0 ? { rawPath: url, rawQuery: '' } : { rawPath: url.slice(0, q), rawQuery: url.slice(q + 1) };
}

/** Decode a raw path the way the canonical URI reads it ('+' is a literal plus in a path). */
export function decodePath(rawPath: string): string {
  return rawPath
    .split('/')
    .map((segment) => decodeComponent(segment, false))
    .join('/');
}

export function canonicalUri(rawPath: string): string {
  if (rawPath === '') return '/';
  return rawPath
    .split('/')
    .map((segment) => awsUriEncode(decodeComponent(segment, false)))
    .join('/');
}

/**
 * Query parameters in order, decoded. '+' means space (form encoding), which is how the
 * router must read them too, or a signed "%2B" could be replayed as "+" with another meaning.
 * A parameter without '=' ("?uploads") has the empty value.
 */
export function parseRawQuery(rawQuery: string): QueryParam[] {
  const params: QueryParam[] = [];
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = eq < 0 ? piece : piece.slice(0, eq);
    const value = eq < 0 ? '' : piece.slice(eq + 1);
    params.push({ name: decodeComponent(name, true), value: decodeComponent(value, true) });
  }
  return params;
}

/** Sorted by encoded name, then by encoded value; `skip` drops e.g. X-Amz-Signature. */
export function canonicalQuery(params: readonly QueryParam[], skip?: (name: string) => boolean): string {
  const pairs = params
    .filter((p) => skip === undefined || !skip(p.name))
    .map((p) => [awsUriEncode(p.name), awsUriEncode(p.value)] as const);
  pairs.sort((a, b) => compare(a[0], b[0]) || compare(a[1], b[1]));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Trimmed, inner runs of blanks collapsed; repeated headers joined with ','. */
export function canonicalHeaderValue(value: string | readonly string[] | undefined): string {
  if (value === undefined) return '';
  const values = typeof value === 'string' ? [value] : value;
  return values.map((v) => v.replace(/[ \t]+/g, ' ').trim()).join(',');
}

/**
 * The header's own value: a name from the request (SignedHeaders may say "constructor" or
 * "__proto__") must never reach an inherited property of a plain object.
 */
export function rawHeader(headers: HeaderBag, name: string): string | readonly string[] | undefined {
  return Object.hasOwn(headers, name) ? headers[name] : undefined;
}

export function headerValue(headers: HeaderBag, name: string): string | undefined {
  const value = rawHeader(headers, name);
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(',');
}

export function canonicalHeaders(headers: HeaderBag, signedHeaders: readonly string[]): string {
  return signedHeaders.map((name) => `${name}:${canonicalHeaderValue(rawHeader(headers, name))}\n`).join('');
}
