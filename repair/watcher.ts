// Watches node health in the namespace and works out what a lost node's absence costs: for every
// node that is down, how many shards (and of how many objects) have to be rebuilt. The rebuild is
// the repairers' job (node-loss.ts); this keeps an accurate, logged picture of state and mode
// changes, and runs as the 'health' worker.
import type { NodeMode, NodeState } from '../namespace/types.js';
import type { Logger } from '../common/log.js';
import type { RepairNamespace } from './deps.js';
import type { Worker, WorkerProgress } from './worker.js';

export interface NodeDamage {
  nodeId: string;
  state: NodeState;
  /** Shards placed on the node according to the reverse index. */
  shards: number;
  objects: number;
  countedAt: string;
}

export interface WatcherStatus {
  scans: number;
  lastScan?: string;
  lastError?: string;
  nodes: Record<string, NodeState>;
  /** Nodes an operator set draining (absent: normal). */
  modes: Record<string, NodeMode>;
  damage: NodeDamage[];
}

/** Bound on reverse-index pages walked per down node per scan, so one scan cannot run away. */
const MAX_PAGES_PER_NODE = 10_000;
const PAGE_SIZE = 1000;
const RECOUNT_MS = 5_000;

export class HealthWatcher implements Worker {
  readonly name = 'health';
  private readonly status: WatcherStatus = { scans: 0, nodes: {}, modes: {}, damage: [] };

  constructor(private readonly namespace: Pick<RepairNamespace, 'listNodes' | 'shardsOnNode'>, private readonly log: Logger, private readonly intervalMs: number) {}

  async tick(): Promise<number> {
    await this.scan();
    if (this.status.lastError) throw new Error(this.status.lastError);
    return this.intervalMs;
  }

  progress(): WorkerProgress {
    const shards = this.status.damage.reduce((sum, d) => sum + d.shards, 0);
    return { queued: shards, done: this.status.scans, failed: 0, bytes: 0, eta: null, progress: { nodesDown: this.status.damage.length } };
  }

  snapshot(): WatcherStatus {
    return structuredClone(this.status);
  }

  async scan(): Promise<void> {
    try {
      const nodes = await this.namespace.listNodes();
      const damage: NodeDamage[] = [];
      for (const node of nodes) {
        const previous = this.status.nodes[node.id];
        if (previous !== node.state) this.log.info(`node ${node.id} is ${node.state}`, { previous: previous ?? 'unknown', url: node.url });
        this.status.nodes[node.id] = node.state;
        this.noteMode(node.id, node.mode ?? 'normal');
        if (node.state === 'down') damage.push(await this.damageOf(node.id));
      }
      for (const d of damage) {
        const before = this.status.damage.find((x) => x.nodeId === d.nodeId);
        if (!before || before.shards !== d.shards) {
          this.log.warn(`node ${d.nodeId} is down: ${d.shards} of its shards (of ${d.objects} objects) still to rebuild`);
        }
      }
      this.status.damage = damage;
      this.status.scans++;
      this.status.lastScan = new Date().toISOString();
      this.status.lastError = undefined;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (this.status.lastError !== message) this.log.warn('health scan failed', { reason: message });
      this.status.lastError = message;
    }
  }

  private noteMode(nodeId: string, mode: NodeMode): void {
    const previous = this.status.modes[nodeId] ?? 'normal';
    if (previous !== mode) this.log.info(`node ${nodeId} mode is now ${mode}`, { previous });
    if (mode === 'normal') delete this.status.modes[nodeId];
    else this.status.modes[nodeId] = mode;
  }

  /** A count walks the node's whole reverse index, so it is redone at most every RECOUNT_MS per node. */
  private async damageOf(nodeId: string): Promise<NodeDamage> {
    const last = this.status.damage.find((d) => d.nodeId === nodeId);
    if (last && Date.now() - Date.parse(last.countedAt) < Math.max(RECOUNT_MS, this.intervalMs)) return last;
    return this.countDamage(nodeId, 'down');
  }

  private async countDamage(nodeId: string, state: NodeState): Promise<NodeDamage> {
    let shards = 0;
    const objects = new Set<string>();
    let after: string | undefined;
    for (let page = 0; page < MAX_PAGES_PER_NODE; page++) {
      const result = await this.namespace.shardsOnNode(nodeId, after, PAGE_SIZE);
      shards += result.refs.length;
      for (const ref of result.refs) objects.add(`${ref.bucket}\u0000${ref.key}\u0000${ref.versionId}`);
      if (!result.next) break;
      after = result.next;
    }
    return { nodeId, state, shards, objects: objects.size, countedAt: new Date().toISOString() };
  }
}
