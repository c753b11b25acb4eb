// Parsed object records kept in memory, for records too large to parse on every read: a 1 GiB
// multipart object's record is ~95 KB of JSON (128 segments), and every GET and HEAD of it parsed
// all of it (0.36 ms), which bounded ranged reads of large objects (data-lake files read by ranges)
// by the namespace's one thread.
//
// Never stale: an entry carries the object's write counter (ObjectWriteCounter.keyWrites) from
// before its record was read, and is served only while the counter still holds that value. A write
// bumps the counter after it is applied and before its caller hears of it, so any read that could
// have seen the old record carries an old stamp (this holds because every write goes through this
// process: LevelDB admits one; a replicated engine would have to feed its writes to the counter
// too). Records are frozen: a caller that tried to change a cached one would throw instead of
// changing what others are served.
import type { ObjectRecord } from './types.js';

interface Entry {
  stamp: number;
  record: ObjectRecord;
  bytes: number;
}

export interface RecordCacheOptions {
  /** Stored bytes of all records held together (their parsed form takes a few times more). */
  maxBytes: number;
  /** Records smaller than this are cheaper to parse again than to keep. */
  minBytes: number;
}

export const DEFAULT_RECORD_CACHE: RecordCacheOptions = { maxBytes: 16 * 1024 * 1024, minBytes: 16 * 1024 };

export class RecordCache {
  /** In least-recently-used order (a Map keeps insertion order; a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  readonly stats = { hits: 0, misses: 0 };

  constructor(private readonly opts: RecordCacheOptions = DEFAULT_RECORD_CACHE) {}

  /** The record under `key` if one is held with this stamp; a stale one is dropped. */
  get(key: Buffer, stamp: number): ObjectRecord | undefined {
    // Most reads are of small records, never held: no key string for them while nothing is.
    if (this.entries.size === 0) return this.miss();
    const id = key.toString('latin1');
    const entry = this.entries.get(id);
    if (!entry) return this.miss();
    this.entries.delete(id);
    if (entry.stamp !== stamp) {
      this.bytes -= entry.bytes;
      return this.miss();
    }
    this.entries.set(id, entry);
    this.stats.hits++;
    return entry.record;
  }

  /** Keeps a record read from `bytes` stored bytes when the counter stood at `stamp` before the read; returns it frozen. */
  offer(key: Buffer, stamp: number, record: ObjectRecord, bytes: number): ObjectRecord {
    if (bytes < this.opts.minBytes || bytes > this.opts.maxBytes) return record;
    const id = key.toString('latin1');
    const old = this.entries.get(id);
    if (old) {
      this.entries.delete(id);
      this.bytes -= old.bytes;
    }
    const frozen = deepFreeze(record);
    this.entries.set(id, { stamp, record: frozen, bytes });
    this.bytes += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.opts.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
    return frozen;
  }

  get size(): number {
    return this.entries.size;
  }

  get heldBytes(): number {
    return this.bytes;
  }

  private miss(): undefined {
    this.stats.misses++;
    return undefined;
  }
}

function deepFreeze<V>(value: V): V {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
