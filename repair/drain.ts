// Draining: an operator marks a node 'draining' (`npm run admin -- drain node-3`); the namespace
// stops placing new shards there, and this worker walks the node's reverse index and queues every
// segment with a shard on it. The repairers then copy each such shard, as is, from the draining
// node to another one (rebuilding it only if the copy cannot be read) and swap the placement.
// Parts of uploads in progress move too: waiting for uploads to complete or be aborted could keep
// a node from ever being drained. When a whole walk finds nothing left on the node, it is logged:
// the node may leave the cluster.
import type { Logger } from '../common/log.js';
import type { NodeView } from './cluster-view.js';
import { NAMESPACE_PAGE, type RepairNamespace } from './deps.js';
import type { PushResult, RepairQueue } from './queue.js';
import { segmentRefOf } from './refs.js';
import type { ShardRef } from '../namespace/types.js';
import type { Worker, WorkerProgress, WorkerStats } from './worker.js';

export interface DrainProgress {
  /** Object shards found on the node by the last complete walk (null until one finished). */
  shardsLeft: number | null;
  /** Shards of parts of uploads in progress found by the last complete walk (moved like object shards). */
  uploadShardsLeft: number | null;
  seenThisWalk: number;
  walks: number;
  drained: boolean;
  startedAt: string;
}

interface Walk {
  after?: string;
  seen: number;
  uploadSeen: number;
  progress: DrainProgress;
}

const PAGES_PER_TICK = 4;

export class DrainWorker implements Worker {
  readonly name = 'drain';
  private readonly walks = new Map<string, Walk>();

  constructor(
    private readonly namespace: RepairNamespace,
    private readonly view: NodeView,
    private readonly queue: RepairQueue,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  async tick(): Promise<number> {
    await this.view.refresh(true);
    // A draining node that is down is node-loss repair's business; walk the ones that can serve copies.
    const draining = this.view.list().filter((n) => n.mode === 'draining' && n.state !== 'down');
    for (const id of this.walks.keys()) if (!draining.some((n) => n.id === id)) this.walks.delete(id);
    let more = false;
    for (let pages = 0; pages < PAGES_PER_TICK && !this.queue.isFull; pages++) {
      const node = draining.find((n) => this.walkOf(n.id).after !== DONE);
      if (!node) break;
      more = (await this.walkPage(node.id)) || more;
    }
    if (draining.every((n) => this.walkOf(n.id).after === DONE)) {
      for (const walk of this.walks.values()) walk.after = undefined;
      return this.intervalMs;
    }
    return this.queue.isFull ? Math.min(this.intervalMs, 500) : more ? 0 : this.intervalMs;
  }

  progress(): WorkerProgress {
    const nodes = Object.fromEntries([...this.walks].map(([id, w]) => [id, w.progress]));
    const left = [...this.walks.values()].reduce((sum, w) => sum + (w.progress.shardsLeft ?? w.seen) + (w.progress.uploadShardsLeft ?? w.uploadSeen), 0);
    return this.stats.snapshot(left, { nodes });
  }

  /** Drain state of every node seen draining since this process started. */
  nodes(): Record<string, DrainProgress> {
    return Object.fromEntries([...this.walks].map(([id, w]) => [id, { ...w.progress }]));
  }

  private walkOf(nodeId: string): Walk {
    let walk = this.walks.get(nodeId);
    if (!walk) {
      walk = { seen: 0, uploadSeen: 0, progress: { shardsLeft: null, uploadShardsLeft: null, seenThisWalk: 0, walks: 0, drained: false, startedAt: new Date().toISOString() } };
      this.walks.set(nodeId, walk);
      this.log.info(`node ${nodeId} is draining: moving its shards to other nodes`);
    }
    return walk;
  }

  /** One page of the node's reverse index; false once the queue is full. */
  private async walkPage(nodeId: string): Promise<boolean> {
    const walk = this.walkOf(nodeId);
    const page = await this.namespace.shardsOnNode(nodeId, walk.after, NAMESPACE_PAGE);
    for (const ref of page.refs) {
      if (this.queueMove(ref) === 'full') return false;
      if (ref.upload) walk.uploadSeen++;
      else walk.seen++;
      walk.after = ref.shardId;
    }
    walk.progress.seenThisWalk = walk.seen;
    if (page.next === undefined) this.endWalk(nodeId, walk);
    return true;
  }

  private queueMove(ref: ShardRef): PushResult {
    return this.queue.push({ ...segmentRefOf(ref), suspect: [ref.index], taskIds: [], reasons: ['drain'], priority: 0 });
  }

  private endWalk(nodeId: string, walk: Walk): void {
    const p = walk.progress;
    p.walks++;
    p.shardsLeft = walk.seen;
    p.uploadShardsLeft = walk.uploadSeen;
    const drained = walk.seen === 0 && walk.uploadSeen === 0;
    if (drained && !p.drained) {
      this.log.info(`node ${nodeId} is drained: it holds no referenced shards and may leave the cluster`);
      this.stats.addDone();
    }
    p.drained = drained;
    walk.seen = 0;
    walk.uploadSeen = 0;
    walk.after = DONE;
  }
}

/** Marks a walk finished for this pass; not a valid shard id, so never sent as a cursor. */
const DONE = '\u0000done';
