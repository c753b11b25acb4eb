// ListObjects as one LevelDB range scan. The scan starts at the right key (prefix, start-after or
// continuation, whichever is later) and, when a key rolls up into a common prefix, seeks past every
// key under that prefix, so a page costs O(entries returned), not O(keys under the prefix). Entries
// come in batches, records as text (cheaper from the engine than Buffers), and of each record only
// the listed fields are read (list-fields.ts).
import type { KvCursor, KvEngine } from './engine.js';
import { bucketObjectsPrefix, pastPrefix, utf8 } from './keys.js';
import { listedFields } from './list-fields.js';
import { decodeContinuation, encodeContinuation } from './token.js';
import type { ListObjectsQuery, ListObjectsResponse } from './types.js';
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

/**
 * The bucket-relative key the listing starts strictly after, if any: the continuation's, else the
 * start-after's. A v1 client's next marker and a v2 continuation token for the same point agree.
 */
export function resumeAfter(plan: ListPlan): Buffer | undefined {
  return plan.continuation !== undefined ? decodeContinuation(plan.continuation) : plan.startAfter !== undefined ? startAfterBytes(plan.startAfter, plan) : undefined;
}

/** The later of "at the prefix" and "after the start-after/continuation key". */
function startBound(base: Buffer, prefix: Buffer, plan: ListPlan): { gt: Buffer } | { gte: Buffer } {
  const after = resumeAfter(plan);
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

/** The first read of a page without a delimiter; each later one asks for twice as many. */
const FIRST_CHUNK = 128;

/**
 * Reads entries in batches (one engine round trip each) and fills the page; a page needs
 * maxKeys entries plus one more, which tells whether the listing goes on.
 */
function fillPage(cursor: KvCursor, base: Buffer, plan: ListPlan, page: PageState, onStep: () => void): Promise<ListObjectsResponse> {
  return plan.delimiter ? fillRolledPage(cursor, base, plan, page, onStep) : fillFlatPage(cursor, base, plan, page, onStep);
}

/**
 * Without a delimiter every entry is listed, so the next batch is read while the current one is
 * decoded: the engine's reads run on its own thread and overlap the decoding here. Batches grow
 * (128, 256, ...) so decoding starts early and each read is about as long as the decoding it
 * overlaps. Only what the page needs is ever asked for.
 */
async function fillFlatPage(cursor: KvCursor, base: Buffer, plan: ListPlan, page: PageState, onStep: () => void): Promise<ListObjectsResponse> {
  const whole = plan.maxKeys + 1;
  let chunk = Math.min(FIRST_CHUNK, whole);
  let pending: Promise<[Buffer, string][]> | undefined = cursor.nextTextBatch(chunk);
  let count = 0;
  try {
    while (pending) {
      const batch = await pending;
      pending = undefined;
      if (batch.length === 0) return page.out;
      for (let i = 0; i < batch.length; i++) onStep();
      const wanted = whole - count - batch.length;
      if (wanted > 0) {
        chunk = Math.min(chunk * 2, wanted);
        pending = cursor.nextTextBatch(chunk);
      }
      for (const [rawKey, record] of batch) {
        if (count === plan.maxKeys) return truncated(page); // the extra entry: never with a read pending
        count++;
        addEntry(rawKey, record, base, plan, page);
      }
    }
    return page.out;
  } finally {
    // A failure while decoding leaves the read-ahead running; it must settle before the cursor closes.
    if (pending) await pending.catch(() => undefined);
  }
}

/**
 * With a delimiter, a roll-up seeks and drops the rest of its batch, so the batch after a seek is
 * a single entry and batches double while no seek happens: a directory of many keys costs one
 * read, a flat run of keys a few round trips.
 */
async function fillRolledPage(cursor: KvCursor, base: Buffer, plan: ListPlan, page: PageState, onStep: () => void): Promise<ListObjectsResponse> {
  const whole = plan.maxKeys + 1;
  let batchSize = 1;
  let count = 0;
  for (;;) {
    const batch = await cursor.nextTextBatch(Math.min(batchSize, whole - count));
    if (batch.length === 0) return page.out;
    for (let i = 0; i < batch.length; i++) onStep();
    let sought = false;
    for (const [rawKey, record] of batch) {
      if (count === plan.maxKeys) return truncated(page);
      count++;
      if (addEntry(rawKey, record, base, plan, page)) {
        cursor.seek(Buffer.concat([base, page.resume!]));
        sought = true;
        break;
      }
    }
    batchSize = sought ? 1 : Math.min(batchSize * 2, whole);
  }
}

/** Adds one entry (or its common prefix) to the page; true when it rolled up, so the scan must seek. */
function addEntry(rawKey: Buffer, record: string, base: Buffer, plan: ListPlan, page: PageState): boolean {
  const { out } = page;
  const rel = rawKey.subarray(base.length);
  const key = rel.toString('utf8');
  const rolled = commonPrefixOf(key, plan);
  if (rolled !== undefined) {
    out.commonPrefixes.push(rolled);
    page.resume = pastPrefix(utf8(rolled));
    out.lastReturned = rolled;
    return true;
  }
  const { size, etag, lastModified } = listedFields(record);
  out.entries.push({ key, size, etag, lastModified });
  // A view of the engine's key buffer; only the last one is copied, into the token.
  page.resume = rel;
  out.lastReturned = key;
  return false;
}

function truncated(page: PageState): ListObjectsResponse {
  const { out } = page;
  if (page.resume) {
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
