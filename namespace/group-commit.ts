// Group commit: while one batch is being written (and fsynced), the batches that arrive queue up,
// and the next write carries all of them as one atomic batch with one fsync. Under many concurrent
// commits the cost of an fsync is shared instead of paid per commit; a lone commit waits for
// nothing. Order is kept: batches are applied in the order they were submitted, so a later write
// to a key always wins, exactly as if the batches had been written one by one.
import { WrappedEngine, type KvEngine, type KvOp } from './engine.js';

interface Pending {
  ops: KvOp[];
  sync: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitStats {
  /** Batches submitted by callers. */
  batches: number;
  /** Writes issued to the engine (each one fsync when any of its batches asked for one). */
  writes: number;
  /** Time spent in those writes, fsync included: what every batch of a group waited for. */
  writeSeconds: number;
}

export class GroupCommitEngine extends WrappedEngine {
  readonly stats: GroupCommitStats = { batches: 0, writes: 0, writeSeconds: 0 };
  private queue: Pending[] = [];
  private writing = false;

  /** `maxOps` bounds one merged write (a single batch larger than that is still written whole). */
  constructor(inner: KvEngine, private readonly maxOps = 20_000) {
    super(inner);
  }

  batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, sync: opts.sync, resolve, reject });
      this.stats.batches++;
      if (!this.writing) void this.drain();
    });
  }

  override async close(): Promise<void> {
    while (this.writing) await new Promise((resolve) => setImmediate(resolve));
    await this.inner.close();
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.takeGroup();
        try {
          // One atomic batch: if it fails, none of its members applied, and each is told so.
          const started = performance.now();
          await this.inner.batch(group.flatMap((p) => p.ops), { sync: group.some((p) => p.sync) });
          this.stats.writeSeconds += (performance.now() - started) / 1000;
          this.stats.writes++;
          for (const p of group) p.resolve();
        } catch (err) {
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /** The oldest batches, as many as fit in maxOps (at least one). */
  private takeGroup(): Pending[] {
    let ops = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || ops + this.queue[n]!.ops.length <= this.maxOps)) ops += this.queue[n++]!.ops.length;
    return this.queue.splice(0, n);
  }
}
