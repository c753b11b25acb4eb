// Shard files kept open between reads of the same shard. A ranged GET of a large object (a
// data-lake reader's footer and column chunks) reads a few KiB to a MiB from each of k shard files,
// and opening the file, reading and checking its header, fstat and close were four threadpool round
// trips around every such read: keeping the file open took 17% off the storage process's CPU per
// 4 KiB ranged GET at 32 clients (measured, see README).
//
// Never stale: a kept file serves again only while it is still the shard's file. The store drops it
// when it renames a new file over the shard, packs the shard or deletes it; and every reuse checks,
// with one fstat (a syscall without I/O), that the file still has a name (an unlink or a rename over
// it from outside the store, say an operator or a test taking a shard away, leaves it nameless) and
// still has the size and modification time it had when its header was read.
//
// Bounded: at most `max` files per store, the least recently used closed first, and a file unused
// for `idleMs` is closed (a deleted file's blocks stay allocated while anything holds it open). A file
// dropped while reads use it closes when the last of them is done.
import type { ShardFileReader } from './shard-file.js';

/** What says a kept file is still the one it was: its link count, size and modification time. */
export interface FileIdentity {
  nlink: number;
  size: number;
  mtimeMs: number;
}

/** A shard file reader whose file can be checked without I/O (fstat reads no disk). */
export interface ReusableShardFile extends ShardFileReader {
  identity(): FileIdentity;
}

export interface OpenShardFilesOptions {
  /** Most files kept open (0: none, every read opens its file). */
  max: number;
  /** A kept file unused this long is closed. */
  idleMs: number;
}

export const DEFAULT_OPEN_SHARD_FILES: OpenShardFilesOptions = { max: 64, idleMs: 10_000 };

interface Kept<T> {
  opened: T & { file: ReusableShardFile };
  identity: FileIdentity;
  readers: number;
  dropped: boolean;
  usedAt: number;
}

export interface OpenShardFilesStats {
  /** Reads that found their file open. */
  reused: number;
  /** Files opened and kept. */
  kept: number;
  /** Kept files found changed or gone on reuse, and closed. */
  stale: number;
}

/** `T` is what an open gives (the file and what its header said); readers get it with a file of their own to close. */
export class OpenShardFiles<T extends { file: ShardFileReader }> {
  readonly stats: OpenShardFilesStats = { reused: 0, kept: 0, stale: 0 };
  /** In least-recently-used order: a reuse moves its entry to the end. */
  private readonly entries = new Map<string, Kept<T>>();
  private readonly closing = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: OpenShardFilesOptions = DEFAULT_OPEN_SHARD_FILES) {
    if (!Number.isSafeInteger(opts.max) || opts.max < 0) throw new RangeError(`open shard files: max must be a non-negative integer, got ${opts.max}`);
    if (opts.max > 0) this.timer = setInterval(() => this.closeIdle(), Math.max(10, opts.idleMs / 2)).unref();
  }

  /** Most files kept open at once. */
  get max(): number {
    return this.opts.max;
  }

  /** Files kept open now (in use or idle). */
  get size(): number {
    return this.entries.size;
  }

  /** The shard's kept file, if it is still the shard's file; close the returned file when done. */
  take(id: string): T | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (!this.unchanged(entry)) {
      this.stats.stale++;
      this.drop(id);
      return undefined;
    }
    this.entries.delete(id);
    this.entries.set(id, entry);
    this.stats.reused++;
    return this.lease(entry);
  }

  /**
   * Keeps a file just opened (its header read) for later reads, and hands it back as the caller's
   * to close. Not kept when caching is off, when another read kept the shard's file meanwhile, or
   * when the file lost its name since it was opened.
   */
  keep(id: string, opened: T & { file: ReusableShardFile }): T {
    if (this.opts.max === 0 || this.entries.has(id)) return opened;
    let identity: FileIdentity;
    try {
      identity = opened.file.identity();
    } catch {
      return opened;
    }
    if (identity.nlink === 0) return opened;
    const entry: Kept<T> = { opened, identity, readers: 0, dropped: false, usedAt: performance.now() };
    this.entries.set(id, entry);
    this.stats.kept++;
    while (this.entries.size > this.opts.max) this.drop(this.entries.keys().next().value!);
    return this.lease(entry);
  }

  /** Forgets the shard's kept file (its file is being replaced or removed); it closes once unused. */
  drop(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    entry.dropped = true;
    if (entry.readers === 0) this.closeFile(entry);
  }

  /** Closes every kept file; those in use close when their readers are done. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const id of [...this.entries.keys()]) this.drop(id);
    while (this.closing.size > 0) await Promise.all(this.closing);
  }

  private unchanged(entry: Kept<T>): boolean {
    try {
      const now = entry.opened.file.identity();
      return now.nlink > 0 && now.size === entry.identity.size && now.mtimeMs === entry.identity.mtimeMs;
    } catch {
      return false;
    }
  }

  /** The opened shard with a file whose close hands it back instead of closing it. */
  private lease(entry: Kept<T>): T {
    entry.readers++;
    entry.usedAt = performance.now();
    const { file } = entry.opened;
    let done = false;
    const leased: ShardFileReader = {
      mode: file.mode,
      read: (position, length) => (done ? Promise.reject(new Error('shard file is closed')) : file.read(position, length)),
      stat: () => file.stat(),
      close: async () => {
        if (done) return;
        done = true;
        entry.usedAt = performance.now();
        if (--entry.readers === 0 && entry.dropped) this.closeFile(entry);
      },
    };
    return { ...entry.opened, file: leased };
  }

  private closeFile(entry: Kept<T>): void {
    const closed = entry.opened.file.close().catch(() => undefined);
    this.closing.add(closed);
    void closed.finally(() => this.closing.delete(closed));
  }

  private closeIdle(): void {
    const before = performance.now() - this.opts.idleMs;
    for (const [id, entry] of this.entries) {
      if (entry.readers === 0 && entry.usedAt < before) this.drop(id);
    }
  }
}
