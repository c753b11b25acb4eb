// The node registry. Heartbeats arrive every few seconds from every storage node, so the live
// view is kept in memory and written through without fsync: losing the last heartbeats in a
// crash only makes a node look older until its next heartbeat.
// 'down' (which makes repair rebuild everything a node held) counts silence only from this
// process's start: after a namespace restart, stale heartbeats must not declare the whole cluster
// down before the nodes have had a chance to report in. Until they do, they are 'suspect'.
// The operator-set mode lives on the same record but, unlike heartbeats, is fsynced; writes of one
// node are serialised so a heartbeat finishing late can never put back the mode it started with.
import type { KvEngine } from './engine.js';
import { nodeKey } from './keys.js';
import { KeyedLock } from './lock.js';
import { decode, encode } from './records.js';
import type { HeartbeatRequest, NodeMode, NodeRecord, NodeState } from './types.js';

export type StoredNode = Omit<NodeRecord, 'state'>;

export interface NodeTiming {
  suspectAfterMs: number;
  downAfterMs: number;
  now: () => number;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, StoredNode>();
  private readonly writes = new KeyedLock();
  private readonly startedAt: number;

  constructor(private readonly engine: KvEngine, private readonly timing: NodeTiming) {
    this.startedAt = timing.now();
  }

  async load(): Promise<void> {
    const cursor = this.engine.cursor('nodes', {});
    try {
      for (let entry = await cursor.next(); entry; entry = await cursor.next()) {
        const node = decode<StoredNode>(entry[1]);
        this.nodes.set(node.id, node);
      }
    } finally {
      await cursor.close();
    }
  }

  heartbeat(id: string, hb: HeartbeatRequest): Promise<NodeRecord> {
    return this.writes.exclusive(id, async () => {
      const now = new Date(this.timing.now()).toISOString();
      const previous = this.nodes.get(id);
      const node: StoredNode = {
        id,
        url: hb.url,
        ...(hb.zone !== undefined ? { zone: hb.zone } : {}),
        ...(hb.bootId !== undefined ? { bootId: hb.bootId } : {}),
        capacityBytes: hb.capacityBytes,
        usedBytes: hb.usedBytes,
        freeBytes: hb.freeBytes,
        firstSeen: previous?.firstSeen ?? now,
        lastHeartbeat: now,
        ...(previous?.mode !== undefined ? { mode: previous.mode } : {}),
      };
      return this.store(node, false);
    });
  }

  /** Sets the mode of a registered node (the caller checks it exists). */
  setMode(id: string, mode: NodeMode): Promise<NodeRecord> {
    return this.writes.exclusive(id, async () => {
      const node = this.nodes.get(id);
      if (!node) throw new Error(`node ${id} vanished from the registry`);
      return this.store({ ...node, mode }, true);
    });
  }

  get(id: string): NodeRecord | undefined {
    const node = this.nodes.get(id);
    return node && this.withState(node);
  }

  list(): NodeRecord[] {
    return [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((n) => this.withState(n));
  }

  counts(): Record<NodeState, number> {
    const out: Record<NodeState, number> = { up: 0, suspect: 0, down: 0 };
    for (const node of this.nodes.values()) out[this.stateOf(node)]++;
    return out;
  }

  private stateOf(node: StoredNode): NodeState {
    const last = Date.parse(node.lastHeartbeat);
    const now = this.timing.now();
    if (now - last <= this.timing.suspectAfterMs) return 'up';
    return now - Math.max(last, this.startedAt) > this.timing.downAfterMs ? 'down' : 'suspect';
  }

  private withState(node: StoredNode): NodeRecord {
    return { ...node, state: this.stateOf(node), mode: node.mode ?? 'normal' };
  }

  private async store(node: StoredNode, sync: boolean): Promise<NodeRecord> {
    this.nodes.set(node.id, node);
    await this.engine.batch([{ type: 'put', space: 'nodes', key: nodeKey(node.id), value: encode(node) }], { sync });
    return this.withState(node);
  }
}
