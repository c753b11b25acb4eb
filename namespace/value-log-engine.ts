// Keeps the `inline` space's values (small objects' bytes) in the value log (value-log.ts) and a
// pointer to each in LevelDB, behind the same KvEngine the store uses: the store still puts,
// reads and deletes `inline` keys as before.
//
// In LevelDB: `values` holds key → pointer; `value-segments` holds segment → live bytes (the
// entries still pointed to), updated in the same atomic batch as the pointers, so the counts are
// exact after any crash. A value in `inline` itself was written before the value log existed: it
// is read from there when no pointer exists, and deleted with the key.
//
// Compaction: a sealed segment whose live bytes fall below half its size is emptied by moving its
// live values to the active segment (found by scanning the segment: each entry names its key, whose
// pointer says whether it is still live), then removed once a synced write has recorded it empty. Writes and moves take turns (one at a time), and a move
// first checks that its pointer is still current, so a value deleted or replaced meanwhile is
// never brought back.
import type { Logger } from '../common/log.js';
import { WrappedEngine, scanRange, type KvCursor, type KvEngine, type KvOp, type KvRange, type PreparingEngine, type Space } from './engine.js';
import { ValueLog, decodePointer, encodePointer, entryBytes, ValueIntegrityError, type ValueLogOptions, type ValuePointer } from './value-log.js';

/** A sealed segment is compacted once fewer than this share of its bytes are live. */
const COMPACT_BELOW_LIVE = 0.5;
/** Live values one compaction step moves (at most this many × the inline limit in bytes). */
const MOVE_BATCH = 64;
/** A compaction that runs longer than this logs its progress. */
const PROGRESS_EVERY_MS = 5000;
/** A read whose segment vanished (compacted meanwhile) reads its pointer again, at most this often. */
const READ_ATTEMPTS = 3;

export interface ValueLogStats {
  /** Values appended by writes, and by compactions moving them. */
  appended: number;
  moved: number;
  compactions: number;
  segmentsRemoved: number;
  /** Values a compaction could not move because their bytes failed their check (their segment stays). */
  damaged: number;
}

export interface ValueLogEngineOptions extends ValueLogOptions {
  log?: Logger;
  /**
   * How often to look for segments due for compaction besides after each write that frees space
   * (default 60 s): a segment whose values died while it was still the active one becomes due
   * only when a later append seals it, and that append frees nothing.
   */
  compactCheckMs?: number;
}

function segmentKey(segment: number): Buffer {
  const key = Buffer.allocUnsafe(4);
  key.writeUInt32BE(segment, 0);
  return key;
}

/** A batch whose inline values are in the value log already, at `placed` (in the order of its puts). */
interface PlacedBatch {
  ops: KvOp[];
  sync: boolean;
  placed: ValuePointer[];
}

const isInline = (op: KvOp): boolean => op.space === 'inline';

export class ValueLogEngine extends WrappedEngine implements PreparingEngine<PlacedBatch> {
  readonly stats: ValueLogStats = { appended: 0, moved: 0, compactions: 0, segmentsRemoved: 0, damaged: 0 };
  /** Mirror of `value-segments`: live entry bytes per segment. */
  private readonly live = new Map<number, number>();
  /** Writes and compaction moves, one at a time. */
  private turn: Promise<unknown> = Promise.resolve();
  private compaction: Promise<void> | undefined;
  /** Segments a compaction found damaged values in: not compacted again until the next open. */
  private readonly stuck = new Set<number>();
  /**
   * Values appended but whose pointers are not written yet, per segment: a segment holding any is
   * never compacted. Without this, a segment sealed (by another append's roll) while a prepared
   * batch waits for its turn could be emptied and removed just before the batch points into it.
   */
  private readonly unwritten = new Map<number, number>();
  private closed = false;
  private checkTimer: NodeJS.Timeout | undefined;

  private constructor(inner: KvEngine, readonly values: ValueLog, private readonly log: Logger | undefined) {
    super(inner);
  }

  /** Opens the value log in `dir` over `inner`, and removes segments nothing points into. */
  static async open(inner: KvEngine, dir: string, opts: ValueLogEngineOptions = {}): Promise<ValueLogEngine> {
    const values = await ValueLog.open(dir, opts);
    const engine = new ValueLogEngine(inner, values, opts.log);
    for (const [key, count] of await scanRange(inner, 'value-segments', {})) engine.live.set(key.readUInt32BE(0), Number(count.toString('latin1')));
    const sizes = values.sizes();
    for (const [segment, live] of engine.live) {
      if (!sizes.has(segment)) opts.log?.error('value log segment missing: the small objects in it cannot be read', { segment, liveBytes: live });
    }
    for (const segment of sizes.keys()) {
      // Its pointers would have been committed with its count: none were (a crash came first).
      if (!engine.live.has(segment) && segment !== values.activeSegment) await values.remove(segment);
    }
    engine.compactWhenDue();
    engine.checkTimer = setInterval(() => engine.compactWhenDue(), opts.compactCheckMs ?? 60_000).unref();
    return engine;
  }

  /** Live and total bytes of the segments, and how many there are. */
  usage(): { segments: number; bytes: number; liveBytes: number } {
    const sizes = [...this.values.sizes().values()];
    return { segments: sizes.length, bytes: sizes.reduce((a, b) => a + b, 0), liveBytes: [...this.live.values()].reduce((a, b) => a + b, 0) };
  }

  override async get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    if (space !== 'inline') return this.inner.get(space, key);
    for (let attempt = 1; ; attempt++) {
      const pointer = await this.inner.get('values', key);
      if (!pointer) return this.inner.get('inline', key);
      const p = decodePointer(pointer);
      const bytes = this.values.read(p);
      if (bytes) return bytes;
      if (attempt >= READ_ATTEMPTS) throw new ValueIntegrityError(`value log segment ${p.segment} is missing`);
    }
  }

  override async getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (space !== 'inline') return this.inner.getMany(space, keys);
    const out: (Buffer | undefined)[] = [];
    for (const key of keys) out.push(await this.get(space, key));
    return out;
  }

  override cursor(space: Space, range: KvRange): KvCursor {
    // Nothing scans small objects' bytes; a scan of pointers would hand out the wrong values.
    if (space === 'inline') throw new Error('the inline space is read by key, not scanned');
    return this.inner.cursor(space, range);
  }

  async batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    if (!ops.some(isInline)) return this.inner.batch(ops, opts);
    return this.writePrepared(await this.prepareBatch(ops, opts));
  }

  /**
   * The first phase: appends the batch's inline values, durable before any pointer to them is
   * (when the batch asks for durability at all). Appends need no turn: each claims its own bytes.
   */
  async prepareBatch(ops: KvOp[], opts: { sync: boolean }): Promise<PlacedBatch> {
    const puts = ops.filter((op): op is KvOp & { type: 'put' } => isInline(op) && op.type === 'put');
    const placed = await this.values.append(puts.map((op) => ({ key: op.key, value: op.value })), opts.sync);
    for (const p of placed) this.unwritten.set(p.segment, (this.unwritten.get(p.segment) ?? 0) + 1);
    return { ops, sync: opts.sync, placed };
  }

  /** Every prepared batch must come here, once: its values count as unwritten until it has. */
  async writePrepared(batch: PlacedBatch): Promise<void> {
    try {
      if (!batch.ops.some(isInline)) await this.inner.batch(batch.ops, { sync: batch.sync });
      else await this.takeTurn(() => this.writePlaced(batch));
    } finally {
      this.written(batch.placed);
    }
  }

  /** The values at `placed` are pointed to now, or never will be (their batch failed). */
  private written(placed: ValuePointer[]): void {
    for (const p of placed) {
      const left = this.unwritten.get(p.segment)! - 1;
      if (left > 0) this.unwritten.set(p.segment, left);
      else this.unwritten.delete(p.segment);
    }
  }

  /** Waits for a compaction under way to stop at its next step, and for the last write. */
  override async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.checkTimer);
    await this.compaction;
    await this.turn.catch(() => undefined);
    await this.values.close();
    await this.inner.close();
  }

  private takeTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn, fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes a batch whose values are placed, with pointers in their place and the changed live
   * counts. Runs in its turn: no other write changes a pointer meanwhile.
   */
  private async writePlaced({ ops, sync, placed }: PlacedBatch): Promise<void> {
    const current = new Map<string, ValuePointer | undefined>();
    const delta = new Map<number, number>();
    const change = (segment: number, bytes: number): void => void delta.set(segment, (delta.get(segment) ?? 0) + bytes);
    const out: KvOp[] = [];
    let next = 0;
    for (const op of ops) {
      if (op.space !== 'inline') {
        out.push(op);
        continue;
      }
      const id = op.key.toString('latin1');
      const was = current.has(id) ? current.get(id) : await this.pointerOf(op.key);
      if (was) change(was.segment, -entryBytes(was));
      if (op.type === 'put') {
        const p = placed[next++]!;
        current.set(id, p);
        change(p.segment, entryBytes(p));
        out.push({ type: 'put', space: 'values', key: op.key, value: encodePointer(p) });
      } else {
        current.set(id, undefined);
        out.push({ type: 'del', space: 'values', key: op.key }, { type: 'del', space: 'inline', key: op.key });
      }
    }
    const counts = new Map<number, number>();
    for (const [segment, bytes] of delta) {
      if (bytes === 0) continue;
      const count = (this.live.get(segment) ?? 0) + bytes;
      if (count < 0) throw new Error(`value log segment ${segment} would hold ${count} live bytes`);
      counts.set(segment, count);
      out.push(count === 0 ? { type: 'del', space: 'value-segments', key: segmentKey(segment) } : { type: 'put', space: 'value-segments', key: segmentKey(segment), value: Buffer.from(String(count), 'latin1') });
    }
    await this.inner.batch(out, { sync });
    for (const [segment, count] of counts) {
      if (count === 0) this.live.delete(segment);
      else this.live.set(segment, count);
    }
    this.stats.appended += placed.length;
    if ([...delta.values()].some((bytes) => bytes < 0)) this.compactWhenDue();
  }

  private async pointerOf(key: Buffer): Promise<ValuePointer | undefined> {
    const raw = await this.inner.get('values', key);
    return raw && decodePointer(raw);
  }

  // ---- compaction ----

  /** Sealed segments under half live, and those nothing points into any more. */
  private dueSegments(): number[] {
    const due: number[] = [];
    for (const [segment, size] of this.values.sizes()) {
      if (segment === this.values.activeSegment || this.stuck.has(segment) || this.unwritten.has(segment)) continue;
      if ((this.live.get(segment) ?? 0) < COMPACT_BELOW_LIVE * size) due.push(segment);
    }
    return due;
  }

  private compactWhenDue(): void {
    if (this.compaction || this.closed || this.dueSegments().length === 0) return;
    this.compact().catch((err: unknown) => this.log?.error('value log compaction failed', { err }));
  }

  /** Compacts what is due now (see the top of this file); resolves when done. */
  async compact(): Promise<void> {
    while (this.compaction) await this.compaction;
    this.compaction = this.compactDue().finally(() => {
      this.compaction = undefined;
    });
    return this.compaction;
  }

  private async compactDue(): Promise<void> {
    for (const segment of this.dueSegments()) {
      if (this.closed) return;
      if ((this.live.get(segment) ?? 0) > 0) await this.moveLive(segment);
      if (this.closed) return;
      if (this.unwritten.has(segment)) continue; // a batch placed values in it meanwhile: next time
      if ((this.live.get(segment) ?? 0) > 0) {
        // Entries past a damaged header cannot be found by the scan; their values stay readable here.
        this.stuck.add(segment);
        this.log?.error('value log segment still holds values after compaction; kept', { segment, liveBytes: this.live.get(segment) });
        continue;
      }
      // Its count is gone only once a synced write says so: before that, a crash could bring back
      // pointers into it.
      await this.takeTurn(() => this.inner.batch([{ type: 'del', space: 'value-segments', key: segmentKey(segment) }], { sync: true }));
      await this.values.remove(segment);
      this.stats.segmentsRemoved++;
    }
    this.stats.compactions++;
  }

  /** Moves the values of `segment` that are still pointed to (found by scanning it) to the active segment. */
  private async moveLive(segment: number): Promise<void> {
    const started = performance.now();
    let said = started;
    let scanned = 0;
    let moving: [Buffer, Buffer][] = [];
    const flush = async (): Promise<void> => {
      const rows = moving;
      moving = [];
      if (rows.length > 0) await this.takeTurn(() => this.move(rows));
    };
    for await (const { key, pointer } of this.values.entries(segment)) {
      if (this.closed) return;
      moving.push([key, encodePointer(pointer)]);
      if (moving.length >= MOVE_BATCH) await flush();
      if (++scanned % 1024 === 0 && performance.now() - said >= PROGRESS_EVERY_MS) {
        said = performance.now();
        this.log?.info('compacting the value log', { segment, entriesScanned: scanned, liveBytesLeft: this.live.get(segment) ?? 0, seconds: Math.round((said - started) / 1000) });
      }
    }
    await flush();
  }

  /** Moves the values still where `rows` (key, pointer) say to the active segment. Runs in its turn. */
  private async move(rows: [Buffer, Buffer][]): Promise<void> {
    const ops: KvOp[] = [];
    for (const [key, pointer] of rows) {
      const now = await this.inner.get('values', key);
      if (!now?.equals(pointer)) continue; // deleted or replaced since the scan read it
      let value: Buffer | undefined;
      try {
        value = this.values.read(decodePointer(pointer));
      } catch (err) {
        // Moving damaged bytes would give them a fresh, matching checksum: leave them to be found.
        this.stats.damaged++;
        this.log?.error('value log entry damaged; left in place', { err });
        continue;
      }
      if (value) ops.push({ type: 'put', space: 'inline', key, value });
    }
    if (ops.length === 0) return;
    const batch = await this.prepareBatch(ops, { sync: true });
    try {
      await this.writePlaced(batch);
    } finally {
      this.written(batch.placed);
    }
    this.stats.moved += ops.length;
  }
}
