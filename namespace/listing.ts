// ListObjects as one LevelDB range scan. The scan starts at the right key (prefix, start-after or
// continuation, whichever is later) and, when a key rolls up into a common prefix, seeks past every
// key under that prefix, so a page costs O(entries returned), not O(keys under the prefix).
import type { KvCursor, KvEngine } from './engine.js';
import { bucketObjectsPrefix, pastPrefix, utf8 } from './keys.js';
import { decode } from './records.js';
import { decodeContinuation, encodeContinuation } from './token.js';
import type { ListEntry, ListObjectsQuery, ListObjectsResponse, ObjectRecord } from './types.js';
import * as v from './validate.js';

/** A validated ListObjectsQuery: maxKeys is resolved, strings are checked. */
export interface ListPlan {
  prefix: string;
  delimiter?: string;
  startAfter?: string;
  continuation?: string;
  maxKeys: number;
}

const MAX_KEYS = 1000;

/** Validates a query; max-keys above 1000 is clamped to 1000, as S3 does. */
export function listPlan(query: ListObjectsQuery): ListPlan {
  const plan: ListPlan = {
    prefix: query.prefix === undefined ? '' : v.text(query.prefix, 'prefix', v.MAX_KEY_BYTES, 0),
    maxKeys: query.maxKeys === undefined ? MAX_KEYS : Math.min(v.integer(query.maxKeys, 'maxKeys', 0, Number.MAX_SAFE_INTEGER), MAX_KEYS),
  };
  if (query.delimiter !== undefined && query.delimiter !== '') plan.delimiter = v.text(query.delimiter, 'delimiter', v.MAX_KEY_BYTES);
  if (query.startAfter !== undefined && query.startAfter !== '') plan.startAfter = v.text(query.startAfter, 'startAfter', v.MAX_KEY_BYTES);
  if (query.continuation !== undefined && query.continuation !== '') plan.continuation = query.continuation;
  return plan;
}

interface PageState {
  out: ListObjectsResponse;
  /** Bucket-relative bytes the next page starts strictly after. */
  resume?: Buffer;
}

export async function listObjects(engine: KvEngine, bucket: string, plan: ListPlan, onStep: () => void): Promise<ListObjectsResponse> {
  const empty: ListObjectsResponse = { entries: [], commonPrefixes: [], isTruncated: false };
  if (plan.maxKeys === 0) return empty;
  const base = bucketObjectsPrefix(bucket);
  const prefix = Buffer.concat([base, utf8(plan.prefix)]);
  const cursor = engine.cursor('objects', { ...startBound(base, prefix, plan), lt: pastPrefix(prefix) });
  try {
    return await fillPage(cursor, base, plan, { out: empty }, onStep);
  } finally {
    await cursor.close();
  }
}

/** The later of "at the prefix" and "after the start-after/continuation key". */
function startBound(base: Buffer, prefix: Buffer, plan: ListPlan): { gt: Buffer } | { gte: Buffer } {
  const after = plan.continuation !== undefined ? decodeContinuation(plan.continuation) : plan.startAfter !== undefined ? startAfterBytes(plan.startAfter, plan) : undefined;
  if (after === undefined) return { gte: prefix };
  const afterKey = Buffer.concat([base, after]);
  return Buffer.compare(afterKey, prefix) >= 0 ? { gt: afterKey } : { gte: prefix };
}

/**
 * A start-after (v1 marker) that falls in a common prefix resumes past the whole prefix: only
 * entries sorting after it are listed, and the prefix itself does not. Without this, a v1 client
 * paging with NextMarker = "dir/" would get "dir/" back on every page.
 */
function startAfterBytes(startAfter: string, plan: ListPlan): Buffer {
  const rolled = startAfter.startsWith(plan.prefix) ? commonPrefixOf(startAfter, plan) : undefined;
  return rolled === undefined ? utf8(startAfter) : pastPrefix(utf8(rolled));
}

async function fillPage(cursor: KvCursor, base: Buffer, plan: ListPlan, page: PageState, onStep: () => void): Promise<ListObjectsResponse> {
  const { out } = page;
  let count = 0;
  while (count < plan.maxKeys) {
    const entry = await cursor.next();
    if (!entry) return out;
    onStep();
    const rel = entry[0].subarray(base.length);
    const key = rel.toString('utf8');
    const rolled = commonPrefixOf(key, plan);
    if (rolled !== undefined) {
      out.commonPrefixes.push(rolled);
      page.resume = pastPrefix(utf8(rolled));
      cursor.seek(Buffer.concat([base, page.resume]));
      out.lastReturned = rolled;
    } else {
      out.entries.push(listEntry(decode<ObjectRecord>(entry[1])));
      page.resume = Buffer.from(rel);
      out.lastReturned = key;
    }
    count++;
  }
  if ((await cursor.next()) !== undefined && page.resume) {
    out.isTruncated = true;
    out.nextContinuation = encodeContinuation(page.resume);
  }
  return out;
}

function commonPrefixOf(key: string, plan: ListPlan): string | undefined {
  if (!plan.delimiter) return undefined;
  const at = key.indexOf(plan.delimiter, plan.prefix.length);
  return at < 0 ? undefined : key.slice(0, at + plan.delimiter.length);
}

function listEntry(record: ObjectRecord): ListEntry {
  return { key: record.key, size: record.size, etag: record.etag, lastModified: record.lastModified };
}
