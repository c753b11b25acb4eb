// Maps node ids (as recorded in placements) to the storage nodes' current URLs and states.
// Nodes re-register with a new URL after a restart, so the map is refreshed from the namespace,
// at most once per `ttlMs`, and at once when a placement names a node we have not seen yet.
import type { NamespaceClient } from '../../namespace/client.js';
import type { NodeRecord } from '../../namespace/types.js';

/** Bounds the namespace calls that failing connections can cause. */
const MIN_REFRESH_MS = 250;

export class NodeDirectory {
  private nodes = new Map<string, NodeRecord>();
  private fetchedAt = 0;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly namespace: NamespaceClient, private readonly ttlMs = 2000) {}

  /** The node's record, or undefined when the namespace does not know it. */
  async lookup(nodeId: string): Promise<NodeRecord | undefined> {
    if (Date.now() - this.fetchedAt > this.ttlMs || !this.nodes.has(nodeId)) await this.refresh();
    return this.nodes.get(nodeId);
  }

  /**
   * The node's record re-read from the namespace (shared with any refresh under way, and at most
   * once per MIN_REFRESH_MS): a node that refused a connection may have restarted on a new port.
   */
  async fresh(nodeId: string): Promise<NodeRecord | undefined> {
    if (Date.now() - this.fetchedAt >= MIN_REFRESH_MS) await this.refresh();
    return this.nodes.get(nodeId);
  }

  private refresh(): Promise<void> {
    this.refreshing ??= this.namespace
      .listNodes()
      .then((list) => {
        this.nodes = new Map(list.map((n) => [n.id, n]));
        this.fetchedAt = Date.now();
      })
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }
}
