// The three record fields a listing shows, read straight from the stored JSON. A listing page
// touches 1000 records, and parsing each whole (segments, placements, metadata, inline bytes) just
// to keep size, etag and lastModified was a large share of a page's CPU. The scan walks only the
// record's top level and stops as soon as it has all three (they come early in the records this
// namespace writes, before segments and metadata). Whatever it does not recognise makes it give
// up, and the record is then parsed the ordinary way, so it never answers differently.
import type { ObjectRecord } from './types.js';

export interface ListedFields {
  size: number;
  etag: string;
  lastModified: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

const SIZE = 1;
const ETAG = 2;
const LAST_MODIFIED = 4;
const ALL = SIZE | ETAG | LAST_MODIFIED;

/** size, etag and lastModified of a stored ObjectRecord, given as its JSON text (records.ts encodes it). */
export function listedFields(record: string): ListedFields {
  return scanFields(record) ?? pick(JSON.parse(record) as ObjectRecord);
}

function pick(record: ObjectRecord): ListedFields {
  return { size: record.size, etag: record.etag, lastModified: record.lastModified };
}

/**
 * The fields from a walk over the top level of the JSON object `text`, or undefined when they
 * are not all found in well-formed, compact JSON (as JSON.stringify writes).
 */
export function scanFields(text: string): ListedFields | undefined {
  if (text.charCodeAt(0) !== OPEN_BRACE) return undefined;
  const out: ListedFields = { size: 0, etag: '', lastModified: '' };
  let found = 0;
  let at = 1;
  while (found !== ALL) {
    if (text.charCodeAt(at) !== QUOTE) return undefined;
    const nameEnd = stringEnd(text, at);
    if (nameEnd < 0 || text.charCodeAt(nameEnd + 1) !== COLON) return undefined;
    const field = fieldOf(text, at + 1, nameEnd);
    const valueStart = nameEnd + 2;
    const valueEnd = valueEndOf(text, valueStart);
    if (valueEnd < 0) return undefined;
    if (field !== 0 && (found & field) === 0) {
      if (!assign(out, field, text.slice(valueStart, valueEnd))) return undefined;
      found |= field;
    }
    if (text.charCodeAt(valueEnd) === COMMA) at = valueEnd + 1;
    else if (found !== ALL) return undefined; // the object ended without all three
  }
  return out;
}

/** Which wanted field the name text[start, end) is, or 0. */
function fieldOf(text: string, start: number, end: number): number {
  const length = end - start;
  if (length === 4) return text.startsWith('size', start) ? SIZE : text.startsWith('etag', start) ? ETAG : 0;
  return length === 12 && text.startsWith('lastModified', start) ? LAST_MODIFIED : 0;
}

function assign(out: ListedFields, field: number, token: string): boolean {
  if (field === SIZE) {
    const size = Number(token);
    if (!Number.isSafeInteger(size) || size < 0 || !/^\d+$/.test(token)) return false;
    out.size = size;
    return true;
  }
  const value = stringValue(token);
  if (value === undefined) return false;
  if (field === ETAG) out.etag = value;
  else out.lastModified = value;
  return true;
}

/** A JSON string token's text; escapes (an etag's quotes always are) go through JSON.parse. */
function stringValue(token: string): string | undefined {
  if (token.charCodeAt(0) !== QUOTE) return undefined;
  if (!token.includes('\\')) return token.slice(1, -1);
  const parsed: unknown = JSON.parse(token);
  return typeof parsed === 'string' ? parsed : undefined;
}

/** Index of the quote closing the string that opens at `at`, or -1. */
function stringEnd(text: string, at: number): number {
  for (let i = at + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i;
  }
  return -1;
}

/** Index just past the value starting at `at` (string, container or scalar), or -1 if it does not end in `text`. */
function valueEndOf(text: string, at: number): number {
  const c = text.charCodeAt(at);
  if (c === QUOTE) {
    const end = stringEnd(text, at);
    return end < 0 ? -1 : end + 1;
  }
  if (c === OPEN_BRACE || c === OPEN_BRACKET) return containerEnd(text, at);
  let i = at;
  for (; i < text.length; i++) {
    const d = text.charCodeAt(i);
    if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET) break;
  }
  return i > at && i < text.length ? i : -1;
}

/** Index just past the object or array opening at `at` (strings inside skipped whole), or -1. */
function containerEnd(text: string, at: number): number {
  let depth = 0;
  for (let i = at; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
      if (i < 0) return -1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}
