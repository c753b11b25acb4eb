// Group commit: while one batch is being written (and fsynced), the batches that arrive queue up,
// and the next write carries all of them as one atomic batch with one fsync. Under many concurrent
// commits the cost of an fsync is shared instead of paid per commit; a lone commit waits for
// nothing. Order is kept: batches are applied in the order they were submitted, so a later write
// to a key always wins, exactly as if the batches had been written one by one. An engine with a
// first phase (PreparingEngine: the value log's append) gets the next group's first phase started
// while the current group is written, so the two waits overlap instead of adding up.
import { WrappedEngine, isPreparing, type KvEngine, type KvOp, type PreparingEngine } from './engine.js';

interface Pending {
  ops: KvOp[];
  sync: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** performance.now() at submit. */
  since: number;
}

export interface GroupCommitStats {
  /** Batches submitted by callers. */
  batches: number;
  /** Writes issued to the engine (each one fsync when any of its batches asked for one). */
  writes: number;
  /** Time spent in those writes, fsync included: what every batch of a group waited for. */
  writeSeconds: number;
  /**
   * Time groups spent in their first phase (the value log's synced append), which overlaps the
   * write of the group before: per write, what a group waited for before its own write.
   */
  prepareSeconds: number;
  /** Summed over batches, from submit to settled: per batch, how long a commit waited for its store write. */
  waitSeconds: number;
}

/** A group of batches on its way: its first phase started (or none), waiting for its write. */
interface Group {
  members: Pending[];
  prepared: Promise<unknown>;
  /** The first phase has settled: the group may be written. */
  ready: boolean;
}

export class GroupCommitEngine extends WrappedEngine {
  readonly stats: GroupCommitStats = { batches: 0, writes: 0, writeSeconds: 0, prepareSeconds: 0, waitSeconds: 0 };
  private queue: Pending[] = [];
  /** With a two-phase engine: the group whose first phase runs (or is done) while another is written. */
  private next: Group | undefined;
  private writing = false;
  /** A group's first phase starts at the end of this turn (see pump). */
  private gathering = false;
  private readonly preparing: PreparingEngine | undefined;

  /** `maxOps` bounds one merged write (a single batch larger than that is still written whole). */
  constructor(inner: KvEngine, private readonly maxOps = 20_000) {
    super(inner);
    this.preparing = isPreparing(inner) ? inner : undefined;
  }

  batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, sync: opts.sync, resolve, reject, since: performance.now() });
      this.stats.batches++;
      this.pump();
    });
  }

  override async close(): Promise<void> {
    while (this.writing || this.gathering || this.next || this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    await this.inner.close();
  }

  /**
   * Starts what can start: a group's first phase when none is under way (two-phase engines), and
   * a write when none is under way. A plain engine's group is taken only when the write before it
   * is done, so it carries everything that queued meanwhile. A first phase starts at the end of the
   * event loop's turn, so that the batches one turn submits (a namespace request's commits) go
   * together, not the first alone.
   */
  private pump(): void {
    if (this.preparing && !this.next && !this.gathering && this.queue.length > 0) {
      this.gathering = true;
      setImmediate(() => {
        this.gathering = false;
        this.startNext();
      });
    }
    if (this.writing) return;
    if (this.preparing) {
      const group = this.next;
      if (!group?.ready) return;
      this.next = undefined;
      void this.write(group);
      this.pump();
    } else if (this.queue.length > 0) {
      void this.write({ members: this.takeGroup(), prepared: Promise.resolve(undefined), ready: true });
    }
  }

  /** Takes the next group and starts its first phase. */
  private startNext(): void {
    if (this.preparing && !this.next && this.queue.length > 0) {
      const members = this.takeGroup();
      const { ops, sync } = merged(members);
      const started = performance.now();
      const group: Group = { members, prepared: this.preparing.prepareBatch(ops, { sync }), ready: false };
      const settled = (): void => {
        this.stats.prepareSeconds += (performance.now() - started) / 1000;
        this.settled(group);
      };
      // Its failure is handled when it is written; until then it must not count as unhandled.
      group.prepared.then(settled, settled);
      this.next = group;
    }
  }

  private settled(group: Group): void {
    group.ready = true;
    this.pump();
  }

  private async write(group: Group): Promise<void> {
    this.writing = true;
    const { members } = group;
    try {
      const ready = await group.prepared;
      const started = performance.now();
      // One atomic batch: if it fails, none of its members applied, and each is told so.
      if (this.preparing) await this.preparing.writePrepared(ready);
      else {
        const { ops, sync } = merged(members);
        await this.inner.batch(ops, { sync });
      }
      this.stats.writeSeconds += (performance.now() - started) / 1000;
      this.stats.writes++;
      for (const p of members) p.resolve();
    } catch (err) {
      for (const p of members) p.reject(err);
    } finally {
      const now = performance.now();
      for (const p of members) this.stats.waitSeconds += (now - p.since) / 1000;
      this.writing = false;
      this.pump();
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

/** A group's batches as one: their operations in order, synced when any member asked. */
function merged(members: Pending[]): { ops: KvOp[]; sync: boolean } {
  return { ops: members.flatMap((p) => p.ops), sync: members.some((p) => p.sync) };
}
