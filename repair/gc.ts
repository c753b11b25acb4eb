// Garbage collection of shards nothing references, in two complementary ways:
//  - the GC queue: the namespace queues every shard an overwrite, delete, abort or repair stopped
//    referencing; after --gc-grace (so reads that started on the old version can finish) each is
//    deleted on its node and acknowledged. Entries of a node that is away wait for it.
//  - orphans: shards no record ever referenced (a write that died before its commit, a repair
//    killed before its swap). Each node's shard list is compared with the reverse index; a shard
//    older than --orphan-grace that the namespace does not know is deleted. The grace must exceed
//    the longest upload, since a shard is unreferenced until its object commits.
// Safety rests on the namespace: a GC entry is only returned while its shard is unreferenced, and
// lookupShardRefs is asked right before an orphan is deleted; shard ids are never reused.
import type { Logger } from '../common/log.js';
import type { GarbageEntry } from '../namespace/types.js';
import { StorageNodeError } from '../storage-node/client.js';
import type { ShardInfo, ShardListPage } from '../storage-node/types.js';
import type { InflightShards, NodeView } from './cluster-view.js';
import { NAMESPACE_PAGE, type RepairNamespace } from './deps.js';
import type { Worker, WorkerProgress, WorkerStats } from './worker.js';

/** Deletes in flight at once per worker. */
const DELETE_CONCURRENCY = 16;

export class GarbageCollector implements Worker {
  readonly name = 'gc';
  private lastPage = 0;
  private waiting = 0;
  private handedToOrphans = 0;

  constructor(
    private readonly namespace: RepairNamespace,
    private readonly view: NodeView,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly graceMs: number,
    private readonly intervalMs: number,
  ) {}

  async tick(): Promise<number> {
    const entries = await this.namespace.garbage(new Date(Date.now() - this.graceMs), NAMESPACE_PAGE);
    this.lastPage = entries.length;
    if (entries.length === 0) return this.intervalMs;
    await this.view.refresh();
    const settled = entries.filter((e) => e.nodeId === null || !this.view.get(e.nodeId)); // nothing stored, or the node is gone for good
    const live = entries.filter((e) => e.nodeId !== null && this.view.isUp(e.nodeId));
    const away = entries.filter((e) => !settled.includes(e) && !live.includes(e));
    const deleted = await mapLimit(live, DELETE_CONCURRENCY, (e) => this.delete(e));
    const acked = [...settled, ...live.filter((_, i) => deleted[i]), ...this.starving(entries, away, settled.length + live.length)];
    if (acked.length > 0) await this.namespace.ackGarbage(acked.map((e) => e.id));
    this.waiting = away.length;
    return entries.length === NAMESPACE_PAGE && acked.length > 0 ? 0 : this.intervalMs;
  }

  progress(): WorkerProgress {
    return this.stats.snapshot(this.lastPage, { waitingForNode: this.waiting, handedToOrphanCollector: this.handedToOrphans, graceSeconds: this.graceMs / 1000 });
  }

  private async delete(entry: GarbageEntry): Promise<boolean> {
    try {
      await this.view.client(entry.nodeId!)!.deleteShard(entry.shardId);
      this.stats.addDone();
      return true;
    } catch (err) {
      this.stats.addFailed();
      this.log.debug('garbage shard not deleted; will retry', { shard: entry.shardId, node: entry.nodeId, reason: err instanceof Error ? err.message : String(err) });
      return false;
    }
  }

  /**
   * The queue can only be read oldest first, so a full page of entries for nodes that are down
   * would stall collection everywhere. Then the down nodes' entries are let go: their shards are
   * unreferenced, and the orphan collector deletes them when the node returns.
   */
  private starving(entries: GarbageEntry[], away: GarbageEntry[], actionable: number): GarbageEntry[] {
    if (entries.length < NAMESPACE_PAGE || actionable > 0) return [];
    const down = away.filter((e) => this.view.isLost(e.nodeId));
    if (down.length > 0) this.log.warn(`GC queue blocked by ${down.length} shards on down nodes; leaving them to the orphan collector`);
    this.handedToOrphans += down.length;
    return down;
  }
}

export interface OrphanOptions {
  graceMs: number;
  /** Shortest time between the starts of two walks over all nodes. */
  passIntervalMs: number;
}

interface OrphanPass {
  startedAt: number;
  nodes: string[];
  after?: string;
  listed: number;
}

export class OrphanCollector implements Worker {
  readonly name = 'orphans';
  private pass: OrphanPass | undefined;
  private nextPassAt = 0;
  private passes = 0;
  private lastPassListed = 0;

  constructor(
    private readonly namespace: RepairNamespace,
    private readonly view: NodeView,
    private readonly inflight: InflightShards,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly opts: OrphanOptions,
  ) {}

  async tick(): Promise<number> {
    if (!this.pass) {
      const wait = this.nextPassAt - Date.now();
      if (wait > 0) return Math.min(wait, 60_000);
      await this.view.refresh(true);
      this.pass = { startedAt: Date.now(), nodes: this.view.list().filter((n) => n.state === 'up').map((n) => n.id), listed: 0 };
    }
    const pass = this.pass;
    const nodeId = pass.nodes[0];
    if (nodeId === undefined) return this.finishPass(pass);
    await this.view.refresh();
    const client = this.view.isUp(nodeId) ? this.view.client(nodeId) : undefined;
    if (!client) return this.nextNode(pass);
    let page: ShardListPage;
    try {
      page = await client.listShards(pass.after, NAMESPACE_PAGE);
    } catch (err) {
      // A node that stopped answering is left for the next pass rather than failing this one.
      if (err instanceof StorageNodeError && err.code === 'Unavailable') return this.nextNode(pass);
      throw err;
    }
    pass.listed += page.shards.length;
    await this.collect(nodeId, page.shards);
    if (page.next === undefined) return this.nextNode(pass);
    pass.after = page.next;
    return 0;
  }

  progress(): WorkerProgress {
    return this.stats.snapshot(this.pass?.nodes.length ?? 0, {
      passes: this.passes,
      node: this.pass?.nodes[0] ?? null,
      listedThisPass: this.pass?.listed ?? 0,
      listedLastPass: this.lastPassListed,
      graceSeconds: this.opts.graceMs / 1000,
    });
  }

  /** Deletes the shards of the page that are old enough and that the namespace does not reference. */
  private async collect(nodeId: string, shards: ShardInfo[]): Promise<void> {
    const cutoff = Date.now() - this.opts.graceMs;
    const old = shards.filter((s) => Date.parse(s.mtime) < cutoff && !this.inflight.has(nodeId, s.id));
    if (old.length === 0) return;
    const refs = await this.namespace.lookupShardRefs(nodeId, old.map((s) => s.id));
    const known = new Set(refs.map((r) => r.shardId));
    const orphans = old.filter((s) => !known.has(s.id) && !this.inflight.has(nodeId, s.id));
    const client = this.view.client(nodeId)!;
    const deleted = await mapLimit(orphans, DELETE_CONCURRENCY, async (s) => {
      try {
        await client.deleteShard(s.id);
        this.stats.addDone();
        this.stats.addBytes(s.storedLength);
        return true;
      } catch {
        this.stats.addFailed(); // found again on the next pass
        return false;
      }
    });
    const count = deleted.filter(Boolean).length;
    if (count > 0) this.log.info(`deleted ${count} orphan shards on ${nodeId}`, { examples: orphans.slice(0, 3).map((s) => s.id) });
  }

  private nextNode(pass: OrphanPass): number {
    pass.nodes.shift();
    pass.after = undefined;
    return 0;
  }

  private finishPass(pass: OrphanPass): number {
    this.passes++;
    this.lastPassListed = pass.listed;
    this.pass = undefined;
    this.nextPassAt = pass.startedAt + this.opts.passIntervalMs;
    return Math.max(0, this.nextPassAt - Date.now());
  }
}

/** Runs fn over items with at most `limit` in flight; results in item order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}
