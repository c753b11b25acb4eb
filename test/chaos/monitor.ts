// The background observer of a chaos run: every couple of seconds it scans redundancy through the
// namespace, follows flipped bits, samples the repair service, and times every node loss — when
// its shards were all rebuilt elsewhere (while it was still down) and when the whole cluster was
// back to full redundancy.
import type { ClusterControl } from './control.js';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { readPackedShards } from '../../storage-node/pack-log.js';
import { shardFile, type FlipTracker } from './flips.js';
import { isFullyRedundant, scanRedundancy, segmentsOn, type RedundancySnapshot } from './redundancy.js';
import { RepairStats } from './repair-stats.js';

export type LossKind = 'node-kill' | 'node-loss' | 'node-restart' | 'node-pause' | 'disk-full';

export interface LossEvent {
  nodeId: string;
  kind: LossKind;
  killedAt: number;
  /** Segments with a shard on the node when it went down. */
  segmentsOnNode: number;
  restartedAt?: number;
  /** No object's segment referenced the node any more, while it was still down: repair moved all of it. */
  rebuiltAt?: number;
  /** Segments of parts of uploads in progress still on the node when its objects were rebuilt. */
  partsLeft?: number;
  /** First scan after the loss in which every segment was fully redundant. */
  fullAt?: number;
  wiped?: boolean;
  /** The run ended while the node was held down, so it came back early. */
  cutShort?: boolean;
  /** When repair did not finish in time: what still referenced the node. */
  leftOn?: string;
}

export class Monitor {
  latest: RedundancySnapshot | undefined;
  readonly losses: LossEvent[] = [];
  readonly repair = new RepairStats();
  /** The most shards any one segment was seen missing at once, and where. */
  maxLostSeen = 0;
  maxLostWhere = '';
  scans = 0;
  scanErrors = 0;
  lastScanError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly control: ClusterControl,
    private readonly flips: FlipTracker,
    private readonly opts: { bucket: string; width: number; intervalMs: number },
    private readonly now: () => number,
  ) {}

  start(): void {
    const loop = (): void => {
      this.running = this.poll().finally(() => {
        if (this.timer) this.timer = setTimeout(loop, this.opts.intervalMs);
      });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** A fresh scan (also used by the fault gate, which must not act on a stale view). */
  async scan(): Promise<RedundancySnapshot> {
    // Each node's pack logs are read once per scan, when its first shard is looked for.
    const packed = new Map<string, Promise<Map<string, unknown>>>();
    const onDisk = async (nodeId: string, shardId: string): Promise<boolean> => {
      const nodeDir = this.control.nodeDir(nodeId);
      if (await stat(shardFile(nodeDir, shardId)).then(() => true, () => false)) return true;
      if (!packed.has(nodeId)) packed.set(nodeId, readPackedShards(path.join(nodeDir, 'packs')));
      return (await packed.get(nodeId)!).has(shardId);
    };
    const snapshot = await scanRedundancy(
      {
        namespace: this.control.namespace,
        bucket: this.opts.bucket,
        width: this.opts.width,
        impaired: () => this.control.impaired(),
        damage: (p) => this.flips.damage(p),
        onDisk: (p) => onDisk(p.nodeId, p.shardId),
      },
      this.now,
    );
    this.observe(snapshot);
    return snapshot;
  }

  async poll(): Promise<void> {
    try {
      const snapshot = await this.scan();
      await this.flips.refresh(snapshot);
      this.scans++;
    } catch (err) {
      this.scanErrors++;
      this.lastScanError = err instanceof Error ? err.message : String(err);
    }
    await this.repair.poll(this.control.repairUrl(), this.now(), this.control.cluster.clusterSecret);
  }

  recordLoss(nodeId: string, kind: LossKind): LossEvent {
    const event: LossEvent = { nodeId, kind, killedAt: this.now(), segmentsOnNode: this.latest ? segmentsOn(this.latest, nodeId) : 0 };
    this.losses.push(event);
    return event;
  }

  private observe(snapshot: RedundancySnapshot): void {
    this.latest = snapshot;
    if (snapshot.maxLost > this.maxLostSeen) {
      this.maxLostSeen = snapshot.maxLost;
      const worst = snapshot.segments.find((s) => s.lost.length === snapshot.maxLost);
      this.maxLostWhere = worst ? `${worst.key} segment ${worst.segment} shards [${worst.lost.join(',')}] at +${(snapshot.at / 1000).toFixed(1)}s` : '';
    }
    const full = isFullyRedundant(snapshot);
    for (const e of this.losses) {
      if (snapshot.at <= e.killedAt) continue;
      if (e.fullAt === undefined && full) e.fullAt = snapshot.at;
      if (e.rebuiltAt === undefined && e.restartedAt === undefined && segmentsOn(snapshot, e.nodeId, 'objects') === 0) {
        e.rebuiltAt = snapshot.at;
        e.partsLeft = segmentsOn(snapshot, e.nodeId, 'all');
      }
    }
  }
}
