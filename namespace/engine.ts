// The storage seam: the namespace needs only ordered byte keys in a few key spaces, point reads,
// atomic multi-space batches and range cursors that can seek. LevelDB provides them here; a
// replicated ordered KV store could implement the same interface (it would also have to take
// over the in-process locking the store does, see store.ts).
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { AbstractIterator, AbstractSublevel } from 'abstract-level';

export const SPACES = ['buckets', 'bucket-holds', 'objects', 'uploads', 'upload-keys', 'parts', 'nodes', 'shards', 'gc', 'repairs', 'users', 'access-keys', 'inline', 'values', 'value-segments'] as const;
export type Space = (typeof SPACES)[number];

export type KvOp = { type: 'put'; space: Space; key: Buffer; value: Buffer } | { type: 'del'; space: Space; key: Buffer };

export interface KvRange {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  limit?: number;
}

export interface KvCursor {
  /** The next entry in key order, or undefined at the end of the range. */
  next(): Promise<[Buffer, Buffer] | undefined>;
  /**
   * Up to `max` (>= 1) next entries in key order in one engine round trip (a per-entry next()
   * costs a promise each). A batch may hold fewer (the engine bounds its bytes); only an empty
   * one means the end of the range.
   */
  nextBatch(max: number): Promise<[Buffer, Buffer][]>;
  /**
   * nextBatch with every value decoded as UTF-8 text by the engine, for spaces whose values are
   * text (JSON records): a string is far cheaper for the engine to hand over than a Buffer. A
   * cursor reads either bytes (next, nextBatch) or text, whichever it is first asked for.
   */
  nextTextBatch(max: number): Promise<[Buffer, string][]>;
  /** Continue from the first key >= target (still bounded by the range). */
  seek(target: Buffer): void;
  close(): Promise<void>;
}

export interface KvEngine {
  get(space: Space, key: Buffer): Promise<Buffer | undefined>;
  /** Point reads of several keys at once; missing keys come back undefined, in input order. */
  getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]>;
  batch(ops: KvOp[], opts: { sync: boolean }): Promise<void>;
  cursor(space: Space, range: KvRange): KvCursor;
  close(): Promise<void>;
}

/**
 * An engine whose batch write has a first phase that can run while the batch before it is still
 * being written (the value log's append, see value-log-engine.ts): group commit overlaps the two.
 * `writePrepared` is called one batch at a time, in the order the batches were prepared.
 */
export interface PreparingEngine<P = unknown> extends KvEngine {
  prepareBatch(ops: KvOp[], opts: { sync: boolean }): Promise<P>;
  writePrepared(prepared: P): Promise<void>;
}

export function isPreparing(engine: KvEngine): engine is PreparingEngine {
  return typeof (engine as Partial<PreparingEngine>).prepareBatch === 'function';
}

/** An engine wrapped to change how batches are written; reads go straight to the inner engine. */
export abstract class WrappedEngine implements KvEngine {
  constructor(protected readonly inner: KvEngine) {}

  abstract batch(ops: KvOp[], opts: { sync: boolean }): Promise<void>;

  get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    return this.inner.get(space, key);
  }

  getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    return this.inner.getMany(space, keys);
  }

  cursor(space: Space, range: KvRange): KvCursor {
    return this.inner.cursor(space, range);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Every entry of a range, in key order (callers bound the range with `limit`). */
const SCAN_BATCH = 1000;

export async function scanRange(engine: KvEngine, space: Space, range: KvRange): Promise<[Buffer, Buffer][]> {
  const cursor = engine.cursor(space, range);
  const rows: [Buffer, Buffer][] = [];
  try {
    // Batches, not next() per entry: a page of 1000 is then one or a few native reads, not 1000 promises.
    for (let batch = await cursor.nextBatch(SCAN_BATCH); batch.length > 0; batch = await cursor.nextBatch(SCAN_BATCH)) rows.push(...batch);
  } finally {
    await cursor.close();
  }
  return rows;
}

type Db = Level<Buffer, Buffer>;
type Sub = AbstractSublevel<Db, string | Buffer | Uint8Array, Buffer, Buffer>;

const ENCODING = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;

/**
 * How many bytes of entries one native read may gather. classic-level stops a batch at 16 KiB by
 * default, about 50 object records, so a page of 1000 took some 20 thread-pool round trips; this
 * lets one read carry a whole page of ordinary records while still bounding a batch of huge ones.
 */
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * LevelDB's memtable (default 4 MiB). Small objects' bytes live in the namespace, ~5 KB per 4 KiB
 * PUT, so at 3,000 PUTs/s a 4 MiB memtable became a level-0 table every 0.3 s, and the background
 * compactions merging them cost the namespace more CPU than serving the PUTs: 4 KiB PUTs at 256
 * clients, namespace user CPU 0.187 / 0.193 → 0.125 / 0.135 ms per PUT, 3,094 / 2,988 → 3,519 /
 * 3,351 PUTs/s (interleaved). At most two memtables (one being written out) are held in memory.
 * (Measured before the value log took those bytes out of LevelDB, value-log-engine.ts: a small PUT
 * now writes only its record, a pointer and a count here, so the memtable fills far more slowly.)
 */
const WRITE_BUFFER_BYTES = 32 * 1024 * 1024;

export class LevelEngine implements KvEngine {
  /** Each space's key prefix in the root database, as its sublevel writes it ("!objects!"). */
  private readonly prefixes: Map<Space, Buffer>;

  private constructor(private readonly db: Db, private readonly subs: Map<Space, Sub>) {
    this.prefixes = new Map([...subs].map(([space, sub]) => [space, Buffer.from(sub.prefix, 'latin1')]));
  }

  /** Opens (creating if needed) the database at `dir`. Only one process may hold it. */
  static async open(dir: string): Promise<LevelEngine> {
    await mkdir(path.dirname(dir), { recursive: true });
    const db = new Level<Buffer, Buffer>(dir, { ...ENCODING, writeBufferSize: WRITE_BUFFER_BYTES });
    await db.open();
    const subs = new Map<Space, Sub>(SPACES.map((s) => [s, db.sublevel<Buffer, Buffer>(s, ENCODING)]));
    // A new sublevel opens on a later tick; getSync (see get) refuses to wait for it.
    await Promise.all([...subs.values()].map((sub) => sub.open()));
    return new LevelEngine(db, subs);
  }

  /**
   * A point read runs on the calling thread, not the libuv pool. LevelDB answers one from its
   * memtable or a cached table block in microseconds (20,000 reads of 32 at a time: 3 us of CPU
   * each, against 10-20 us through the pool), and the pool's wake-ups and context switches cost far
   * more than that on a busy 2-core host: a namespace used 0.76 ms of CPU per 4 KiB PUT with async
   * reads and 0.50 ms with these. A read that misses the page cache blocks the loop for one disk
   * read (LevelDB never holds its mutex across I/O), which is still shorter than a pool round trip
   * under load. Scans and multi-key reads stay asynchronous: their cost grows with their size.
   */
  async get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    return this.sub(space).getSync(key) ?? undefined;
  }

  async getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return [];
    return (await this.sub(space).getMany(keys)).map((value) => value ?? undefined);
  }

  /**
   * Writes go to the root database with the spaces' prefixes joined on here: the same keys the
   * sublevels read, without abstract-level's per-operation sublevel routing, which cost more than
   * LevelDB itself. A batch of 10 small objects (20 puts): 0.41 ms of CPU through the sublevels,
   * 0.26 ms this way.
   */
  async batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    if (ops.length === 0) return;
    const chained = this.db.batch();
    for (const op of ops) {
      const key = this.rootKey(op.space, op.key);
      if (op.type === 'put') chained.put(key, op.value);
      else chained.del(key);
    }
    await chained.write({ sync: opts.sync });
  }

  cursor(space: Space, range: KvRange): KvCursor {
    return new LevelCursor(this.sub(space), range);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  private rootKey(space: Space, key: Buffer): Buffer {
    const prefix = this.prefixes.get(space);
    if (!prefix) throw new Error(`unknown key space ${space}`);
    return Buffer.concat([prefix, key], prefix.length + key.length);
  }

  private sub(space: Space): Sub {
    const sub = this.subs.get(space);
    if (!sub) throw new Error(`unknown key space ${space}`);
    return sub;
  }
}

/**
 * A range cursor whose LevelDB iterator is opened on the first read, with values as bytes or as
 * text depending on which read comes first; a seek before that is applied when it opens.
 */
class LevelCursor implements KvCursor {
  private bytes?: AbstractIterator<Sub, Buffer, Buffer>;
  private text?: AbstractIterator<Sub, Buffer, string>;
  private target?: Buffer;

  constructor(private readonly sub: Sub, private readonly range: KvRange) {}

  async next(): Promise<[Buffer, Buffer] | undefined> {
    return (await this.byteIterator().next()) ?? undefined;
  }

  // classic-level's nextv() reads the whole batch in one native call (after draining what next()
  // had cached), and a seek() drops that cache, so mixing next, nextBatch and seek stays in order.
  async nextBatch(max: number): Promise<[Buffer, Buffer][]> {
    return this.byteIterator().nextv(max);
  }

  async nextTextBatch(max: number): Promise<[Buffer, string][]> {
    return this.textIterator().nextv(max);
  }

  seek(target: Buffer): void {
    const it = this.bytes ?? this.text;
    if (it) it.seek(target);
    else this.target = target;
  }

  async close(): Promise<void> {
    await (this.bytes ?? this.text)?.close();
  }

  private byteIterator(): AbstractIterator<Sub, Buffer, Buffer> {
    if (this.text) throw new Error('this cursor reads values as text');
    this.bytes ??= this.opened(this.sub.iterator<Buffer, Buffer>(this.options('buffer')));
    return this.bytes;
  }

  private textIterator(): AbstractIterator<Sub, Buffer, string> {
    if (this.bytes) throw new Error('this cursor reads values as bytes');
    this.text ??= this.opened(this.sub.iterator<Buffer, string>(this.options('utf8')));
    return this.text;
  }

  private opened<I extends { seek(target: Buffer): void }>(it: I): I {
    if (this.target) it.seek(this.target);
    return it;
  }

  /** classic-level reads highWaterMarkBytes through the sublevel; abstract-level's types lack it. */
  private options(valueEncoding: 'buffer' | 'utf8'): KvRange & { keyEncoding: 'buffer'; valueEncoding: 'buffer' | 'utf8'; highWaterMarkBytes: number } {
    return { ...this.range, keyEncoding: 'buffer', valueEncoding, highWaterMarkBytes: BATCH_BYTES };
  }
}
