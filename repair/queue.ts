// The in-memory queue of segment repairs. Bounded: everything in it is derived from namespace state
// (down nodes' reverse index, the durable repair-task queue, draining nodes), so an item that does
// not fit is simply found again by a later scan. Highest priority first (the segments that lost the
// most shards), FIFO within a priority. One entry per segment: later hints merge into it.
import type { RepairReason } from '../namespace/types.js';

export interface SegmentRef {
  bucket: string;
  key: string;
  /** The object version, or for a part of an upload in progress the upload id. */
  versionId: string;
  segment: number;
  /** Set for a part of an upload in progress: `segment` counts within this part. */
  part?: number;
}

export interface RepairItem extends SegmentRef {
  /** Shard indices believed bad (hints: the repair re-checks the whole segment). */
  suspect: number[];
  /** Durable repair tasks this item answers; acknowledged once the segment is healthy. */
  taskIds: string[];
  reasons: RepairReason[];
  /** Higher runs first: shards lost; drain-only moves are 0. */
  priority: number;
  queuedAt: number;
}

export interface QueueLimits {
  /** Most items waiting (default 10 000). */
  capacity: number;
  /** Failure records kept for back-off (default 10 000; the oldest are forgotten). */
  failureMemory: number;
  /** First retry delay after a failure, doubled per failure up to maxBackoffMs. */
  baseBackoffMs: number;
  maxBackoffMs: number;
}

const DEFAULT_LIMITS: QueueLimits = { capacity: 10_000, failureMemory: 10_000, baseBackoffMs: 2_000, maxBackoffMs: 10 * 60_000 };

export const segmentKey = (s: SegmentRef): string =>
  `${s.bucket}\u0000${s.key}\u0000${s.versionId}\u0000${s.segment}` + (s.part === undefined ? '' : `\u0000${s.part}`);

export type PushResult = 'queued' | 'merged' | 'busy' | 'backoff' | 'full';

export class RepairQueue {
  private readonly limits: QueueLimits;
  /** priority → items in arrival order. */
  private readonly buckets = new Map<number, Map<string, RepairItem>>();
  private readonly index = new Map<string, RepairItem>();
  private readonly running = new Map<string, RepairItem>();
  private readonly failures = new Map<string, { count: number; notBefore: number }>();

  constructor(limits: Partial<QueueLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  get size(): number {
    return this.index.size;
  }

  get inProgress(): number {
    return this.running.size;
  }

  get isFull(): boolean {
    return this.index.size >= this.limits.capacity;
  }

  countsByPriority(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [priority, items] of this.buckets) if (items.size > 0) out[String(priority)] = items.size;
    return out;
  }

  push(hint: Omit<RepairItem, 'queuedAt'>, now = Date.now()): PushResult {
    const key = segmentKey(hint);
    if (this.running.has(key)) return 'busy';
    const failure = this.failures.get(key);
    if (failure && failure.notBefore > now) return 'backoff';
    const existing = this.index.get(key);
    if (existing) {
      this.merge(key, existing, hint);
      return 'merged';
    }
    if (this.isFull && !this.evictBelow(hint.priority)) return 'full';
    this.insert(key, { ...hint, suspect: [...hint.suspect], taskIds: [...hint.taskIds], reasons: [...hint.reasons], queuedAt: now });
    return 'queued';
  }

  /** The most urgent item, now marked in progress until finish(). */
  pop(): RepairItem | undefined {
    const priorities = [...this.buckets.keys()].sort((a, b) => b - a);
    for (const priority of priorities) {
      const items = this.buckets.get(priority)!;
      const first = items.entries().next();
      if (first.done) continue;
      const [key, item] = first.value;
      items.delete(key);
      this.index.delete(key);
      this.running.set(key, item);
      return item;
    }
    return undefined;
  }

  /** Ends an item's run; a failure delays its next attempt (exponential, bounded). */
  finish(item: SegmentRef, ok: boolean, now = Date.now()): void {
    const key = segmentKey(item);
    this.running.delete(key);
    if (ok) {
      this.failures.delete(key);
      return;
    }
    const count = (this.failures.get(key)?.count ?? 0) + 1;
    const delay = Math.min(this.limits.maxBackoffMs, this.limits.baseBackoffMs * 2 ** Math.min(count - 1, 20));
    this.failures.delete(key); // re-insert so Map order is "least recently failed first"
    this.failures.set(key, { count, notBefore: now + delay });
    while (this.failures.size > this.limits.failureMemory) this.failures.delete(this.failures.keys().next().value!);
  }

  failureCount(item: SegmentRef): number {
    return this.failures.get(segmentKey(item))?.count ?? 0;
  }

  private insert(key: string, item: RepairItem): void {
    let bucket = this.buckets.get(item.priority);
    if (!bucket) {
      bucket = new Map();
      this.buckets.set(item.priority, bucket);
    }
    bucket.set(key, item);
    this.index.set(key, item);
  }

  private merge(key: string, item: RepairItem, hint: Omit<RepairItem, 'queuedAt'>): void {
    const suspect = [...new Set([...item.suspect, ...hint.suspect])].sort((a, b) => a - b);
    const merged: RepairItem = {
      ...item,
      suspect,
      taskIds: [...new Set([...item.taskIds, ...hint.taskIds])],
      reasons: [...new Set([...item.reasons, ...hint.reasons])],
      priority: Math.max(item.priority, hint.priority, suspect.length),
    };
    this.buckets.get(item.priority)!.delete(key);
    this.index.delete(key);
    this.insert(key, merged);
  }

  /** Makes room by dropping the newest item of the lowest priority, if it ranks below `priority`. */
  private evictBelow(priority: number): boolean {
    const lowest = [...this.buckets.entries()].filter(([, items]) => items.size > 0).sort(([a], [b]) => a - b)[0];
    if (!lowest || lowest[0] >= priority) return false;
    const victim = [...lowest[1].keys()].pop()!;
    lowest[1].delete(victim);
    this.index.delete(victim);
    return true;
  }
}
