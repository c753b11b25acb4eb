// Maps node ids (as recorded in placements) to the storage nodes' current URLs and states, and
// chooses the nodes of new segments from the same list. Nodes re-register with a new URL after a
// restart, so the map is refreshed from the namespace, at most once per `ttlMs`, and at once when
// a placement names a node we have not seen yet.
import { placeNodes, type Candidate } from '../../common/placement.js';
import type { NamespaceClient } from '../../namespace/client.js';
import type { NodeRecord } from '../../namespace/types.js';

/** Bounds the namespace calls that failing connections can cause. */
const MIN_REFRESH_MS = 250;
/**
 * How long readers skip a node that refused a connection at its registered URL, reading parity
 * instead of trying it first every time: until the namespace declares it down (minutes), every
 * read would otherwise pay a refused connection and a second round trip. Short, because a node
 * that comes back re-registers within a heartbeat.
 */
export const REFUSED_MEMORY_MS = 2000;

export class NodeDirectory {
  private nodes = new Map<string, NodeRecord>();
  private fetchedAt = 0;
  private refreshing: Promise<void> | undefined;
  /** Node id → the URL that refused, and until when it is skipped. */
  private readonly refused = new Map<string, { url: string; until: number }>();

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

  /**
   * `count` nodes for a new segment, chosen as the namespace would (common/placement.ts) from the
   * nodes as listed at most `ttlMs` ago, without a round trip per segment: a 64 KiB PUT took 8–9 ms
   * at one client, 0.9 ms of it asking the namespace. Nodes that refused a connection lately are
   * left out too, which the namespace cannot know until it declares them down.
   */
  async place(count: number): Promise<Candidate[]> {
    if (Date.now() - this.fetchedAt > this.ttlMs) await this.refresh();
    const refused = new Set([...this.nodes.keys()].filter((id) => this.isRefused(id)));
    return placeNodes([...this.nodes.values()], count, refused);
  }

  /** A connection to the node at `url`, its latest known URL, was refused. */
  noteRefused(nodeId: string, url: string): void {
    this.refused.set(nodeId, { url, until: Date.now() + REFUSED_MEMORY_MS });
  }

  /** Whether the node refused a connection lately at the URL it is still listed under. */
  isRefused(nodeId: string | null | undefined): boolean {
    if (!nodeId) return false;
    const entry = this.refused.get(nodeId);
    if (!entry) return false;
    if (entry.until > Date.now() && this.nodes.get(nodeId)?.url === entry.url) return true;
    this.refused.delete(nodeId);
    return false;
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
