// The Range header of GetObject/HeadObject with S3's semantics: one byte range only;
// anything S3 cannot parse (other units, several ranges, last < first) is ignored and the
// whole object is served; a range that starts at or past the end is 416 InvalidRange.
import { S3Error } from './errors.js';

/** Inclusive byte positions, as in Content-Range. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/i;

/**
 * Returns the range to serve (206), or undefined to serve the whole object (200).
 * Throws InvalidRange carrying RangeRequested and ActualObjectSize, as S3 does.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const match = SINGLE_RANGE.exec(header.trim());
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') return suffixRange(header, toNumber(last), size);
  const start = toNumber(first);
  const end = last === '' ? Infinity : toNumber(last);
  if (end < start) return undefined;
  if (start >= size) throw invalidRange(header, size);
  return { start, end: Math.min(end, size - 1) };
}

/**
 * The bytes a Range header may ask for, read before the object's size is known (the namespace then
 * sends only the segments that hold them): what parseRange will serve is always inside. Undefined
 * when the header is absent or would be ignored (the whole object is served then).
 */
export function rangeSelection(header: string | undefined): { start: number; end?: number } | { suffix: number } | undefined {
  if (header === undefined) return undefined;
  const match = SINGLE_RANGE.exec(header.trim());
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const length = toNumber(last);
    // Past any object: all of it. Zero: InvalidRange, which needs no segment.
    return Number.isFinite(length) ? { suffix: Math.max(1, length) } : undefined;
  }
  const start = toNumber(first);
  const end = last === '' ? Infinity : toNumber(last);
  if (end < start) return undefined;
  // A start past any object is InvalidRange; it asks for no segment.
  if (!Number.isFinite(start)) return { start: Number.MAX_SAFE_INTEGER };
  return Number.isFinite(end) ? { start, end } : { start };
}

/** "bytes=-n": the last n bytes; more than the object means all of it. */
function suffixRange(header: string, length: number, size: number): ByteRange | undefined {
  if (length === 0) throw invalidRange(header, size);
  // An empty object has no byte to start a 206 at; S3 answers 200 with the empty body.
  if (size === 0) return undefined;
  return { start: Math.max(0, size - length), end: size - 1 };
}

/** Digits beyond 2^53 are still a valid range; treat them as "past any object". */
function toNumber(digits: string): number {
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : Infinity;
}

function invalidRange(header: string, size: number): S3Error {
  return new S3Error('InvalidRange', undefined, { RangeRequested: header.trim(), ActualObjectSize: size });
}

/** Content-Range of a 206: "bytes 0-9/100". */
export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}

// Content-Range of a 416, e.g. "bytes */100".
export function unsatisfiedContentRange(size: number): string {
  return `bytes */${size}`;
}
