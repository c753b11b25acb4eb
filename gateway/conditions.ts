// Pure: S3's conditional GET/HEAD rules (RFC 7232 as S3 applies them).
//  - If-Match false → 412; If-Unmodified-Since false → 412 unless If-Match is present and true.
//  - If-None-Match matches → 304; If-Modified-Since not modified → 304 unless If-None-Match is present.
import type { IncomingHttpHeaders } from 'node:http';

export type ConditionOutcome = 'proceed' | 'not-modified' | 'precondition-failed';

export function etagMatches(header: string, etag: string): boolean {
  const bare = etag.replace(/^"|"$/g, '');
  return header.split(',').some((candidate) => {
    const c = candidate.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return c === '*' || c === bare;
  });
}

function parseDate(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

export function evaluateReadConditions(headers: IncomingHttpHeaders, etag: string, lastModified: Date): ConditionOutcome {
  // HTTP dates have whole seconds; compare at that resolution.
  const modified = Math.floor(lastModified.getTime() / 1000) * 1000;
  const ifMatch = headers['if-match'];
  const ifNoneMatch = headers['if-none-match'];
  const ifUnmodifiedSince = parseDate(headers['if-unmodified-since']);
  const ifModifiedSince = parseDate(headers['if-modified-since']);

  if (ifMatch !== undefined && !etagMatches(ifMatch, etag)) return 'precondition-failed';
  if (ifMatch === undefined && ifUnmodifiedSince !== undefined && modified > ifUnmodifiedSince) return 'precondition-failed';
  if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) return 'not-modified';
  if (ifNoneMatch === undefined && ifModifiedSince !== undefined && modified <= ifModifiedSince) return 'not-modified';
  return 'proceed';
}
