// Assembles the repair service: one queue, one rate limiter, one node view, and the workers that
// share them, all run by one WorkerManager.
import type { Logger } from '../common/log.js';
import type { Registry } from '../common/metrics.js';
import { InflightShards, NodeView } from './cluster-view.js';
import type { RepairNamespace, RepairNodePool } from './deps.js';
import { DrainWorker } from './drain.js';
import { GarbageCollector, OrphanCollector } from './gc.js';
import { InventoryAuditor } from './inventory.js';
import { RepairScanner, RepairTotals, SegmentRepairer } from './node-loss.js';
import { RepairQueue } from './queue.js';
import { TokenBucket } from './rate.js';
import { Scrubber } from './scrubber.js';
import { HealthWatcher } from './watcher.js';
import { WorkerManager, WorkerStats, workerMetrics } from './worker.js';

export interface RepairConfig {
  /** Segment repairers working in parallel. */
  workers: number;
  /** Bytes per second of repair reads plus writes; Infinity for no limit. */
  rateBytesPerSecond: number;
  scrubIntervalMs: number;
  /** Time between inventory audits of a node (a restarted node is audited at once). */
  auditIntervalMs: number;
  gcGraceMs: number;
  orphanGraceMs: number;
  /** How often idle scanners look for new work. */
  intervalMs: number;
  /** A storage node that makes no progress for this long fails its part of a repair. */
  stallTimeoutMs: number;
  /** Most segments waiting in the repair queue. */
  queueCapacity: number;
}

export const DEFAULT_QUEUE_CAPACITY = 10_000;

export class RepairService {
  readonly manager: WorkerManager;
  readonly watcher: HealthWatcher;
  readonly limiter: TokenBucket;
  readonly totals = new RepairTotals();
  readonly queue: RepairQueue;
  readonly drain: DrainWorker;

  constructor(namespace: RepairNamespace, pool: RepairNodePool, readonly config: RepairConfig, log: Logger, registry: Registry) {
    const metrics = workerMetrics(registry);
    const stats = (name: string): WorkerStats => new WorkerStats(name, metrics);
    const view = new NodeView(namespace, pool);
    const inflight = new InflightShards();
    this.limiter = new TokenBucket(config.rateBytesPerSecond);
    this.queue = new RepairQueue({ capacity: config.queueCapacity, baseBackoffMs: Math.max(1000, config.intervalMs) });
    this.manager = new WorkerManager(log, registry, Math.max(250, Math.min(config.intervalMs, 5000)));
    this.watcher = new HealthWatcher(namespace, log, config.intervalMs);
    this.drain = new DrainWorker(namespace, view, this.queue, stats('drain'), log, config.intervalMs);
    const segmentDeps = { namespace, view, limiter: this.limiter, inflight, log, stallTimeoutMs: config.stallTimeoutMs, workers: config.workers };
    this.manager.add(this.watcher);
    this.manager.add(new RepairScanner(namespace, view, this.queue, this.totals, stats('repair-scan'), log, config.intervalMs));
    for (let i = 1; i <= config.workers; i++) {
      const name = `repair-${i}`;
      this.manager.add(new SegmentRepairer(name, this.queue, segmentDeps, namespace, this.totals, stats(name), log));
    }
    this.manager.add(this.drain);
    this.manager.add(new Scrubber(namespace, view, stats('scrub'), log, config.scrubIntervalMs));
    this.manager.add(new InventoryAuditor(namespace, view, stats('audit'), log, config.auditIntervalMs));
    this.manager.add(new GarbageCollector(namespace, view, stats('gc'), log, config.gcGraceMs, config.intervalMs));
    const passIntervalMs = Math.min(3_600_000, Math.max(config.intervalMs, config.orphanGraceMs / 2));
    this.manager.add(new OrphanCollector(namespace, view, inflight, stats('orphans'), log, { graceMs: config.orphanGraceMs, passIntervalMs }));
    this.registerMetrics(registry);
  }

  start(): void {
    this.manager.start();
  }

  stop(): Promise<void> {
    return this.manager.stop();
  }

  /** Totals of node-loss, degraded-write, corruption and drain repairs since this process started. */
  repairSummary(): Record<string, unknown> {
    const t = this.totals;
    const seconds = t.startedAt === undefined ? 0 : (Date.now() - t.startedAt) / 1000;
    return {
      queued: this.queue.size,
      inProgress: this.queue.inProgress,
      segmentsRepaired: t.repaired,
      shardsRebuilt: t.rebuiltShards,
      shardsCopied: t.copiedShards,
      bytesWritten: t.bytes,
      bytesPerSecondRecent: Math.round(t.bytePace.perSecond()),
      bytesPerSecondSinceFirstRepair: seconds > 0 ? Math.round(t.bytes / seconds) : 0,
      busySeconds: Math.round(t.busyMs) / 1000,
      bytesPerSecondWhileBusy: t.busyMs > 0 ? Math.round(t.bytes / (t.busyMs / 1000)) : 0,
      alreadyHealthy: t.healthy,
      stale: t.stale,
      conflicts: t.conflicts,
      unrecoverable: t.unrecoverable,
      blocked: t.blocked,
      errors: t.errors,
      lastFailure: t.lastFailure ?? null,
      rateBytesPerSecond: Number.isFinite(this.limiter.rate) ? this.limiter.rate : null,
    };
  }

  private registerMetrics(registry: Registry): void {
    const t = this.totals;
    registry.gauge('cairn_repair_shards_to_rebuild', 'Shards held by nodes that are down').set(() =>
      this.watcher.snapshot().damage.reduce((sum, d) => sum + d.shards, 0),
    );
    registry.gauge('cairn_repair_nodes_down', 'Storage nodes in state down').set(() => this.watcher.snapshot().damage.length);
    registry.gauge('cairn_repair_queue_segments', 'Segments waiting for repair').set(() => this.queue.size);
    registry.gauge('cairn_repair_in_progress_segments', 'Segments being repaired').set(() => this.queue.inProgress);
    registry.gauge('cairn_repair_segments_repaired', 'Segments repaired since start').set(() => t.repaired);
    registry.gauge('cairn_repair_bytes_rebuilt', 'Shard bytes rebuilt or copied since start').set(() => t.bytes);
    registry.gauge('cairn_repair_conflicts', 'Repairs abandoned because a concurrent write replaced the object').set(() => t.conflicts);
    registry.gauge('cairn_repair_rate_limit_bytes_per_second', 'Configured repair rate (-1 unlimited)').set(() =>
      Number.isFinite(this.limiter.rate) ? this.limiter.rate : -1,
    );
    registry.gauge('cairn_repair_eta_seconds', 'Estimated seconds until the repair queue is worked off (-1 unknown)').set(
      () => this.manager.statusOf('repair-scan')?.eta ?? -1,
    );
  }
}
