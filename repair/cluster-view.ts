// The repair service's view of the storage nodes: the namespace's node list, refreshed at most once
// per `maxAgeMs` however many workers ask, plus a client per node. Also the registry of shards this
// process has written but not yet committed, so the orphan collector never deletes them.
import type { NodeRecord } from '../namespace/types.js';
import type { RepairNamespace, RepairNodeClient, RepairNodePool } from './deps.js';

/** How long a node that refused a connection or stalled is avoided: the namespace only sees it missing after seconds. */
const UNREACHABLE_FOR_MS = 10_000;

export class NodeView {
  private nodes = new Map<string, NodeRecord>();
  /** node id → until when it is avoided. At most one entry per known node. */
  private readonly unreachable = new Map<string, number>();
  private fetchedAt = 0;
  private pending: Promise<void> | undefined;

  constructor(private readonly namespace: RepairNamespace, private readonly pool: RepairNodePool, private readonly maxAgeMs = 1000) {}

  /** Re-reads the node list if it is older than maxAgeMs (or always with `force`); concurrent callers share one request. */
  async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.fetchedAt < this.maxAgeMs) return;
    this.pending ??= this.namespace
      .listNodes()
      .then((list) => {
        this.nodes = new Map(list.map((n) => [n.id, n]));
        this.fetchedAt = Date.now();
      })
      .finally(() => (this.pending = undefined));
    await this.pending;
  }

  list(): NodeRecord[] {
    return [...this.nodes.values()];
  }

  get(id: string | null): NodeRecord | undefined {
    return id === null ? undefined : this.nodes.get(id);
  }

  isUp(id: string | null): boolean {
    return this.get(id)?.state === 'up';
  }

  /** Notes a node that did not answer, so that repair neither writes to it nor counts on it for a while. */
  noteUnreachable(id: string): void {
    if (this.nodes.has(id)) this.unreachable.set(id, Date.now() + UNREACHABLE_FOR_MS);
  }

  isUnreachable(id: string | null): boolean {
    const until = id === null ? undefined : this.unreachable.get(id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.unreachable.delete(id!);
    return false;
  }

  /** Down, or never heard of: what it held must be rebuilt elsewhere. */
  isLost(id: string | null): boolean {
    const node = this.get(id);
    return !node || node.state === 'down';
  }

  isDraining(id: string | null): boolean {
    return this.get(id)?.mode === 'draining';
  }

  client(id: string): RepairNodeClient | undefined {
    const node = this.nodes.get(id);
    return node ? this.pool.get(node.url) : undefined;
  }

  clientFor(node: { url: string }): RepairNodeClient {
    return this.pool.get(node.url);
  }
}

/** Shards written by this process and not yet committed (or cleaned up). Bounded by workers × shards per segment. */
export class InflightShards {
  private readonly ids = new Set<string>();

  add(nodeId: string, shardId: string): void {
    this.ids.add(`${nodeId}\u0000${shardId}`);
  }

  delete(nodeId: string, shardId: string): void {
    this.ids.delete(`${nodeId}\u0000${shardId}`);
  }

  has(nodeId: string, shardId: string): boolean {
    return this.ids.has(`${nodeId}\u0000${shardId}`);
  }

  get size(): number {
    return this.ids.size;
  }
}
