// Node-loss repair as two kinds of worker around one bounded queue: the scanner finds damaged
// segments (the reverse index of every down node, and the namespace's durable repair tasks:
// degraded writes, corrupt or unreadable shards), and N repairers take the most damaged segment
// first and repair it. Nothing here is durable on purpose: the namespace is the record of what
// is damaged, so a restarted repair service finds the same work again. Segments of parts of
// uploads still in progress are repaired like object segments: an upload can stay open for days,
// and waiting for its completion would let it lose more than m shards meanwhile.
import type { Logger } from '../common/log.js';
import type { ShardRef } from '../namespace/types.js';
import type { NodeView } from './cluster-view.js';
import { NAMESPACE_PAGE, type RepairNamespace } from './deps.js';
import { PaceMeter, type Worker, type WorkerProgress, type WorkerStats } from './worker.js';
import type { PushResult, RepairItem, RepairQueue } from './queue.js';
import { segmentRefOf } from './refs.js';
import { repairSegment, type RepairOutcome, type SegmentRepairDeps } from './segment.js';

/** Totals over all repairers, for status, metrics and the ETA. */
export class RepairTotals {
  repaired = 0;
  rebuiltShards = 0;
  copiedShards = 0;
  bytes = 0;
  healthy = 0;
  stale = 0;
  conflicts = 0;
  unrecoverable = 0;
  blocked = 0;
  errors = 0;
  lastFailure: string | undefined;
  readonly pace = new PaceMeter();
  readonly bytePace = new PaceMeter();
  startedAt: number | undefined;
  /** Wall time with at least one segment repair running: bytes / busyMs is the repair throughput. */
  busyMs = 0;
  private running = 0;
  private busySince = 0;

  begin(): void {
    this.startedAt ??= Date.now();
    if (this.running++ === 0) this.busySince = performance.now();
  }

  end(): void {
    if (--this.running === 0) this.busyMs += performance.now() - this.busySince;
  }
}

/** Pages walked per tick across all sources, so one tick stays short and the queue is refilled steadily. */
const PAGES_PER_TICK = 4;
const TASK_PAGE = 500;

interface NodeWalk {
  after?: string;
  /** Refs seen in the walk under way and in the last complete walk. */
  seen: number;
  lastTotal?: number;
}

export class RepairScanner implements Worker {
  readonly name = 'repair-scan';
  private taskCursor: string | undefined;
  private readonly walks = new Map<string, NodeWalk>();
  private tasksSeen = 0;
  private partShards = 0;
  private loggedRepaired = 0;

  constructor(
    private readonly namespace: RepairNamespace,
    private readonly view: NodeView,
    private readonly queue: RepairQueue,
    private readonly totals: RepairTotals,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  async tick(): Promise<number> {
    await this.view.refresh(true);
    let tasksLeft = true;
    let nodesLeft = true;
    for (let pages = 0; pages < PAGES_PER_TICK && (tasksLeft || nodesLeft) && !this.queue.isFull; pages++) {
      if (tasksLeft) tasksLeft = await this.scanTasks();
      if (nodesLeft && !this.queue.isFull) nodesLeft = await this.walkDownNode();
    }
    if (this.queue.isFull) return Math.min(this.intervalMs, 500);
    this.logWhenIdle();
    return tasksLeft || nodesLeft ? 0 : this.intervalMs;
  }

  /** One summary line each time the queue runs empty after repairs, instead of a line per segment. */
  private logWhenIdle(): void {
    const t = this.totals;
    if (this.queue.size > 0 || this.queue.inProgress > 0 || t.repaired === this.loggedRepaired) return;
    this.log.info('repair queue is empty', { segmentsRepaired: t.repaired - this.loggedRepaired, totalSegments: t.repaired, shardsRebuilt: t.rebuiltShards, shardsCopied: t.copiedShards, bytes: t.bytes });
    this.loggedRepaired = t.repaired;
  }

  progress(): WorkerProgress {
    const downShards = [...this.walks.values()].reduce((sum, w) => sum + Math.max(w.lastTotal ?? 0, w.seen), 0);
    const queued = this.queue.size + this.queue.inProgress;
    const perSecond = this.totals.pace.perSecond();
    const remaining = Math.max(queued, downShards);
    return {
      ...this.stats.snapshot(queued),
      eta: remaining > 0 && perSecond > 0 ? Math.round(remaining / perSecond) : null,
      progress: {
        queueByPriority: this.queue.countsByPriority(),
        downNodes: Object.fromEntries([...this.walks].map(([id, w]) => [id, { refsSeen: w.seen, lastWalkTotal: w.lastTotal ?? null }])),
        tasksSeen: this.tasksSeen,
        partShardsQueued: this.partShards,
      },
    };
  }

  /** One page of the durable repair-task queue; false when the walk of the queue just wrapped around. */
  private async scanTasks(): Promise<boolean> {
    const page = await this.namespace.repairTasks(this.taskCursor, TASK_PAGE);
    for (const task of page.tasks) {
      const result = this.queue.push({
        bucket: task.bucket,
        key: task.key,
        versionId: task.versionId,
        segment: task.segment,
        part: task.part,
        suspect: task.shardIndices,
        taskIds: [task.id],
        reasons: task.reasons,
        priority: Math.max(1, task.shardIndices.length),
      });
      if (result === 'full') return false; // come back to this task once the queue drains
      this.taskCursor = task.id;
      this.tasksSeen++;
    }
    if (page.next === undefined || page.tasks.length === 0) {
      this.taskCursor = undefined;
      return false;
    }
    return true;
  }

  /** One page of one down node's reverse index; false when no down node has pages left in this pass. */
  private async walkDownNode(): Promise<boolean> {
    const down = this.view.list().filter((n) => n.state === 'down');
    for (const id of this.walks.keys()) if (!down.some((n) => n.id === id)) this.walks.delete(id);
    const node = down.find((n) => this.walks.get(n.id)?.after !== DONE);
    if (!node) {
      for (const walk of this.walks.values()) walk.after = undefined; // next pass starts over
      return false;
    }
    const walk = this.walks.get(node.id) ?? { seen: 0 };
    this.walks.set(node.id, walk);
    const page = await this.namespace.shardsOnNode(node.id, walk.after, NAMESPACE_PAGE);
    for (const ref of page.refs) {
      if (this.queueRef(ref) === 'full') return false;
      walk.after = ref.shardId;
      walk.seen++;
    }
    if (page.next === undefined) {
      walk.lastTotal = walk.seen;
      walk.seen = 0;
      walk.after = DONE;
    }
    return true;
  }

  private queueRef(ref: ShardRef): PushResult {
    const result = this.queue.push({ ...segmentRefOf(ref), suspect: [ref.index], taskIds: [], reasons: ['node-down'], priority: 1 });
    if (ref.upload && result !== 'full') this.partShards++;
    return result;
  }
}

/** Marks a node whose walk finished in this pass. Not a valid shard id, so never a real cursor. */
const DONE = '\u0000done';

/** How long a repairer waits for work when the queue is empty. */
const IDLE_POLL_MS = 250;

export class SegmentRepairer implements Worker {
  private current: RepairItem | undefined;

  constructor(
    readonly name: string,
    private readonly queue: RepairQueue,
    private readonly deps: SegmentRepairDeps,
    private readonly namespace: RepairNamespace,
    private readonly totals: RepairTotals,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
  ) {}

  async tick(signal: AbortSignal): Promise<number> {
    const item = this.queue.pop();
    if (!item) return IDLE_POLL_MS;
    this.current = item;
    this.totals.begin();
    let ok = false;
    try {
      const outcome = await repairSegment(item, this.deps, signal);
      ok = await this.settle(item, outcome);
    } catch (err) {
      if (signal.aborted) return 0;
      this.fail(item, `repair failed: ${err instanceof Error ? err.message : String(err)}`, 'errors');
    } finally {
      this.queue.finish(item, ok);
      this.totals.end();
      this.current = undefined;
    }
    return 0;
  }

  progress(): WorkerProgress {
    const c = this.current;
    return this.stats.snapshot(0, { current: c ? [{ bucket: c.bucket, key: c.key, versionId: c.versionId, segment: c.segment, part: c.part, reasons: c.reasons }] : [] });
  }

  /** Records the outcome; true when the segment needs nothing more (its tasks are acknowledged). */
  private async settle(item: RepairItem, outcome: RepairOutcome): Promise<boolean> {
    const t = this.totals;
    switch (outcome.kind) {
      case 'repaired':
        t.rebuiltShards += outcome.rebuilt;
        t.copiedShards += outcome.copied;
        t.bytes += outcome.bytes;
        t.bytePace.add(outcome.bytes);
        this.stats.addBytes(outcome.bytes);
        if (outcome.left > 0) {
          this.fail(item, `repaired ${outcome.rebuilt + outcome.copied} shards, ${outcome.left} still need a node`, 'blocked');
          return false;
        }
        t.repaired++;
        t.pace.add(1);
        this.stats.addDone();
        this.log.debug('segment repaired', { ...describe(item), rebuilt: outcome.rebuilt, copied: outcome.copied, bytes: outcome.bytes });
        break;
      case 'healthy':
      case 'stale':
        t[outcome.kind]++;
        t.pace.add(1);
        this.stats.addDone();
        break;
      case 'conflict':
        t.conflicts++;
        t.pace.add(1);
        this.stats.addDone();
        this.log.info('a concurrent write (overwrite or delete; for a part: re-upload, completion or abort) won over the repair; its repair shards were deleted', describe(item));
        break;
      case 'unrecoverable':
        this.fail(item, `only ${outcome.readable} of the ${outcome.needed} shards needed are readable`, 'unrecoverable', 'error');
        return false;
      case 'blocked':
        this.fail(item, outcome.reason, 'blocked');
        return false;
    }
    if (item.taskIds.length > 0) await this.namespace.ackRepairs(item.taskIds);
    return true;
  }

  private fail(item: RepairItem, reason: string, counter: 'errors' | 'blocked' | 'unrecoverable', level: 'warn' | 'error' = 'warn'): void {
    this.totals[counter]++;
    this.totals.lastFailure = `${describe(item).segment}: ${reason}`;
    this.stats.addFailed();
    // Back-off means a stuck segment comes round again and again: log it the first time only.
    if (this.queue.failureCount(item) === 0) this.log[level](`segment not repaired: ${reason}`, describe(item));
  }
}

function describe(item: RepairItem): { segment: string; reasons: string[] } {
  const part = item.part === undefined ? '' : `/part-${item.part}`;
  return { segment: `${item.bucket}/${item.key}@${item.versionId}${part}#${item.segment}`, reasons: item.reasons };
}
