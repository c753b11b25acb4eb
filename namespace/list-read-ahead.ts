// Listing read-ahead. A client pages through a listing one request at a time, and between two
// pages the namespace would sit idle while the gateway renders the XML and the client reads it.
// So after a truncated page the namespace reads the next one at once; when the client asks for it,
// it is ready or under way, and on a machine of few cores the scan overlaps the gateway's and the
// client's work instead of adding to it.
//
// A page read ahead must never be staler than one read when asked: S3 listings are strongly
// consistent, so an object whose PUT was acknowledged before the LIST began is listed. Every write
// that touches a bucket's object records bumps that bucket's counter once it is applied and before
// anyone is told it is done (ObjectWriteCounter). A page read ahead remembers its bucket's counter
// from before its scan began and is served only while the counter still holds that value; any
// write to the bucket in between makes it stale and the page is read afresh. Being conservative
// costs a wasted scan, never a wrong answer; and a listing of a bucket that is being written while
// a page is read is not read ahead at all, since its next page would most likely be stale.
import { crc32c } from '@node-rs/crc32';
import { WrappedEngine, type KvOp } from './engine.js';

/** Counter slots: buckets share a slot by hash, which can only cause extra misses. */
const SLOTS = 4096;
/** Per-key counter slots (for the record cache), shared by hash the same way. */
const KEY_SLOTS = 65536;
const SEP = 0x00;

/**
 * An engine that counts applied batches touching each bucket's object records (keys.ts: an object
 * key is the bucket, 0x00, the key). The counters live in a fixed table indexed by a hash of the
 * bucket, so memory stays bounded however many buckets come and go.
 */
export class ObjectWriteCounter extends WrappedEngine {
  private readonly applied = new Uint32Array(SLOTS);
  private readonly appliedByKey = new Uint32Array(KEY_SLOTS);

  /** A number that changes whenever a batch touching `bucket`'s objects is applied (or fails). */
  writes(bucket: string): number {
    return this.applied[slotOf(Buffer.from(bucket, 'utf8'))]!;
  }

  /** The same for one object record: `objectKey` is its key in the objects space. */
  keyWrites(objectKey: Buffer): number {
    return this.appliedByKey[keySlotOf(objectKey)]!;
  }

  async batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    try {
      await this.inner.batch(ops, opts);
    } finally {
      // After the batch is visible to new cursors and before its caller hears of it; a failure
      // counts too, so that a partly applied batch of some other engine is never missed.
      const slots = new Set<number>();
      const keySlots = new Set<number>();
      for (const op of ops) {
        if (op.space !== 'objects') continue;
        slots.add(slotOf(bucketBytes(op.key)));
        keySlots.add(keySlotOf(op.key));
      }
      for (const slot of slots) this.applied[slot] = (this.applied[slot]! + 1) >>> 0;
      for (const slot of keySlots) this.appliedByKey[slot] = (this.appliedByKey[slot]! + 1) >>> 0;
    }
  }
}

function bucketBytes(objectKey: Buffer): Buffer {
  const end = objectKey.indexOf(SEP);
  return end < 0 ? objectKey : objectKey.subarray(0, end);
}

function slotOf(bucket: Buffer): number {
  return (crc32c(bucket) >>> 0) % SLOTS;
}

function keySlotOf(objectKey: Buffer): number {
  return (crc32c(objectKey) >>> 0) % KEY_SLOTS;
}

export interface ReadAheadOptions {
  /** Pages held at once; the oldest goes first (a page is at most 1000 entries). */
  maxPages: number;
  /** Read-aheads running at once, so that they never crowd out the requests themselves. */
  maxRunning: number;
  /** A page not asked for within this long is dropped. */
  ttlMs: number;
  now: () => number;
}

export const DEFAULT_READ_AHEAD: ReadAheadOptions = { maxPages: 16, maxRunning: 2, ttlMs: 5_000, now: Date.now };

export interface ReadAheadStats {
  /** Pages read ahead. */
  started: number;
  /** Requests answered by a page read ahead. */
  hits: number;
  /** Pages read ahead but thrown away: a write came first, or nobody asked in time. */
  stale: number;
  /** Truncated pages whose next page was not read ahead: their bucket was being written meanwhile. */
  skipped: number;
}

interface Ahead<Page> {
  writes: number;
  expires: number;
  page: Promise<Page | undefined>;
}

/** Pages read ahead, by listing; `Page` is whatever the reader returns. */
export class ListReadAhead<Page> {
  readonly stats: ReadAheadStats = { started: 0, hits: 0, stale: 0, skipped: 0 };
  /** In insertion order, so the first is the oldest. */
  private readonly pages = new Map<string, Ahead<Page>>();
  /** Reads not yet settled, whether their page is held, taken or dropped. */
  private readonly running = new Set<Promise<Page | undefined>>();

  constructor(private readonly opts: ReadAheadOptions = DEFAULT_READ_AHEAD) {}

  /**
   * The page read ahead for `key` if it is still current (no write since its scan began), else
   * undefined. Taking it removes it; its promise yields undefined if the read failed.
   */
  take(key: string, writes: number): Promise<Page | undefined> | undefined {
    const ahead = this.pages.get(key);
    if (!ahead) return undefined;
    this.pages.delete(key);
    if (ahead.writes !== writes || ahead.expires < this.opts.now()) {
      this.stats.stale++;
      return undefined;
    }
    this.stats.hits++;
    return ahead.page;
  }

  /** Reads the page for `key` now, unless one is held or enough are running; `writes` is the counter before the read. */
  start(key: string, writes: number, read: () => Promise<Page>): void {
    if (this.running.size >= this.opts.maxRunning || this.pages.has(key)) return;
    this.dropExpired();
    while (this.pages.size >= this.opts.maxPages) this.drop(this.pages.keys().next().value!);
    this.stats.started++;
    const page = read().catch(() => undefined);
    this.running.add(page);
    void page.finally(() => this.running.delete(page));
    this.pages.set(key, { writes, expires: this.opts.now() + this.opts.ttlMs, page });
  }

  /** Drops every page and waits for the reads still running (before the engine closes under them). */
  async close(): Promise<void> {
    this.pages.clear();
    await Promise.all(this.running);
  }

  get held(): number {
    return this.pages.size;
  }

  private dropExpired(): void {
    const now = this.opts.now();
    for (const [key, ahead] of this.pages) if (ahead.expires < now) this.drop(key);
  }

  private drop(key: string): void {
    this.pages.delete(key);
    this.stats.stale++;
  }
}
