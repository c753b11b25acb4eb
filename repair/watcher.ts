// Watches node health in the namespace and works out what a lost node's absence costs: for every
// node that is down, how many shards (and of how many objects) would have to be rebuilt. The
// rebuild itself is the repair worker's job (a later step); this keeps an accurate, logged plan.
import type { NamespaceClient } from '../namespace/client.js';
import type { NodeState } from '../namespace/types.js';
import type { Logger } from '../common/log.js';

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
  damage: NodeDamage[];
}

/** Bound on reverse-index pages walked per down node per scan, so one scan cannot run away. */
const MAX_PAGES_PER_NODE = 10_000;
const PAGE_SIZE = 1000;

export class HealthWatcher {
  private readonly status: WatcherStatus = { scans: 0, nodes: {}, damage: [] };
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;

  constructor(private readonly namespace: NamespaceClient, private readonly log: Logger, private readonly intervalMs: number) {}

  start(): void {
    const tick = (): void => {
      this.scanning = this.scan().finally(() => {
        this.scanning = undefined;
        if (this.timer) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.scanning;
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
        if (node.state === 'down') damage.push(await this.countDamage(node.id, node.state));
      }
      for (const d of damage) {
        const before = this.status.damage.find((x) => x.nodeId === d.nodeId);
        if (!before || before.shards !== d.shards) {
          this.log.warn(`node ${d.nodeId} is down: ${d.shards} shards of ${d.objects} objects would have to be rebuilt`);
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
