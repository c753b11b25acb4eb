// One shape for every background job of the repair service (node-loss repair, scrub, GC, drain,
// health), in the manner of Garage's background workers: a worker does one bounded batch per
// tick() and says how long to wait before the next; the manager runs the loops, pauses and
// resumes them, backs off after errors, and publishes every worker's status as JSON and metrics.
import type { Logger } from '../common/log.js';
import type { Counter, Gauge, Registry } from '../common/metrics.js';

export type WorkerState = 'idle' | 'running' | 'paused' | 'error';

/** What a worker reports about itself; the manager adds state and error fields. */
export interface WorkerProgress {
  /** Units of work waiting (segments, shards, GC entries: the worker's own unit). */
  queued: number;
  done: number;
  failed: number;
  /** Shard bytes this worker wrote, copied, checked or deleted (its own unit, see `progress`). */
  bytes: number;
  /** Seconds until `queued` is worked off at the recent pace; null when unknown or nothing waits. */
  eta: number | null;
  /** Worker-specific progress fields. */
  progress: Record<string, unknown>;
}

export interface WorkerStatus extends WorkerProgress {
  name: string;
  state: WorkerState;
  lastError?: string;
  lastErrorAt?: string;
  /** ISO time the last tick finished. */
  lastTick?: string;
  ticks: number;
}

export interface Worker {
  readonly name: string;
  /**
   * Does one bounded batch of work. Returns the milliseconds to wait before the next tick: 0 when
   * more work is ready now. Throwing marks the worker 'error' and backs its loop off.
   */
  tick(signal: AbortSignal): Promise<number>;
  progress(): WorkerProgress;
}

/** Counters a worker keeps, mirrored into Prometheus counters labelled with the worker name. */
export class WorkerStats {
  done = 0;
  failed = 0;
  bytes = 0;
  private readonly rate = new PaceMeter();

  constructor(private readonly name: string, private readonly metrics: WorkerMetrics) {}

  addDone(n = 1): void {
    this.done += n;
    this.rate.add(n);
    this.metrics.done.inc({ worker: this.name }, n);
  }

  addFailed(n = 1): void {
    this.failed += n;
    this.metrics.failed.inc({ worker: this.name }, n);
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.metrics.bytes.inc({ worker: this.name }, n);
  }

  /** Seconds to work off `queued` units at the pace of the last minute. */
  eta(queued: number): number | null {
    if (queued <= 0) return null;
    const perSecond = this.rate.perSecond();
    return perSecond > 0 ? Math.round(queued / perSecond) : null;
  }

  snapshot(queued: number, progress: Record<string, unknown> = {}): WorkerProgress {
    return { queued, done: this.done, failed: this.failed, bytes: this.bytes, eta: this.eta(queued), progress };
  }
}

/** Completions per second over a sliding window of one-second buckets (bounded: WINDOW entries). */
export class PaceMeter {
  private static readonly WINDOW = 60;
  private readonly buckets = new Map<number, number>();

  add(n: number, nowMs = Date.now()): void {
    const second = Math.floor(nowMs / 1000);
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + n);
    for (const key of this.buckets.keys()) if (key <= second - PaceMeter.WINDOW) this.buckets.delete(key);
  }

  perSecond(nowMs = Date.now()): number {
    const second = Math.floor(nowMs / 1000);
    let total = 0;
    let oldest = second;
    for (const [key, n] of this.buckets) {
      if (key <= second - PaceMeter.WINDOW) continue;
      total += n;
      oldest = Math.min(oldest, key);
    }
    // Measure over the span actually observed, so a fresh burst is not averaged with a minute of nothing.
    return total / Math.max(1, second - oldest + 1);
  }
}

export interface WorkerMetrics {
  done: Counter;
  failed: Counter;
  bytes: Counter;
}

export function workerMetrics(registry: Registry): WorkerMetrics {
  return {
    done: registry.counter('cairn_repair_worker_done_total', 'Units of work completed, by worker'),
    failed: registry.counter('cairn_repair_worker_failed_total', 'Units of work that failed (retried later), by worker'),
    bytes: registry.counter('cairn_repair_worker_bytes_total', 'Shard bytes rebuilt, copied, scrubbed or deleted, by worker'),
  };
}

/** Longest pause after repeated errors: a worker that keeps failing still retries this often. */
const MAX_ERROR_BACKOFF_MS = 60_000;

interface Slot {
  worker: Worker;
  state: WorkerState;
  paused: boolean;
  ticks: number;
  errors: number;
  lastError?: string;
  lastErrorAt?: string;
  lastTick?: string;
  /** Wakes the loop early (resume, stop). */
  wake: () => void;
  loop?: Promise<void>;
}

export class WorkerManager {
  private readonly slots = new Map<string, Slot>();
  private readonly abort = new AbortController();

  /** Per-worker gauges, each bound to a worker's live status when the worker is added. */
  private readonly gauges: { metric: Gauge; read: (s: WorkerStatus) => number }[];

  constructor(private readonly log: Logger, registry: Registry, private readonly errorBackoffMs = 1000) {
    const gauge = (name: string, help: string, read: (s: WorkerStatus) => number) => ({ metric: registry.gauge(name, help), read });
    this.gauges = [
      gauge('cairn_repair_worker_queued', 'Units of work waiting, by worker', (s) => s.queued),
      gauge('cairn_repair_worker_eta_seconds', 'Estimated seconds to work off the queue (-1 unknown), by worker', (s) => s.eta ?? -1),
      gauge('cairn_repair_worker_paused', '1 when an operator paused the worker', (s) => (s.state === 'paused' ? 1 : 0)),
      gauge('cairn_repair_worker_error', '1 when the worker last failed', (s) => (s.state === 'error' ? 1 : 0)),
    ];
  }

  add(worker: Worker): void {
    if (this.slots.has(worker.name)) throw new Error(`worker ${worker.name} is registered twice`);
    this.slots.set(worker.name, { worker, state: 'idle', paused: false, ticks: 0, errors: 0, wake: () => undefined });
    for (const g of this.gauges) g.metric.set(() => g.read(this.statusOf(worker.name)!), { worker: worker.name });
  }

  start(): void {
    for (const slot of this.slots.values()) slot.loop = this.run(slot);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const slot of this.slots.values()) slot.wake();
    await Promise.all([...this.slots.values()].map((s) => s.loop));
  }

  names(): string[] {
    return [...this.slots.keys()];
  }

  /** False when no worker has that name. */
  setPaused(name: string, paused: boolean): boolean {
    const slot = this.slots.get(name);
    if (!slot) return false;
    if (slot.paused !== paused) this.log.info(`worker ${name} ${paused ? 'paused' : 'resumed'}`);
    slot.paused = paused;
    if (paused && slot.state !== 'running') slot.state = 'paused';
    slot.wake();
    return true;
  }

  statusOf(name: string): WorkerStatus | undefined {
    const slot = this.slots.get(name);
    if (!slot) return undefined;
    const p = slot.worker.progress();
    return {
      name,
      state: slot.paused && slot.state !== 'running' ? 'paused' : slot.state,
      ...p,
      ...(slot.lastError ? { lastError: slot.lastError, lastErrorAt: slot.lastErrorAt } : {}),
      ...(slot.lastTick ? { lastTick: slot.lastTick } : {}),
      ticks: slot.ticks,
    };
  }

  statuses(): WorkerStatus[] {
    return this.names().map((n) => this.statusOf(n)!);
  }

  private async run(slot: Slot): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (slot.paused) {
        slot.state = 'paused';
        await this.sleep(slot, 60_000);
        continue;
      }
      const wait = await this.tickOnce(slot, signal);
      if (wait > 0) await this.sleep(slot, wait);
    }
  }

  /** One tick; returns how long to wait before the next. */
  private async tickOnce(slot: Slot, signal: AbortSignal): Promise<number> {
    slot.state = 'running';
    try {
      const wait = await slot.worker.tick(signal);
      slot.errors = 0;
      slot.state = 'idle';
      return wait;
    } catch (err) {
      if (signal.aborted) return 0;
      const message = err instanceof Error ? err.message : String(err);
      if (message !== slot.lastError) this.log.warn(`worker ${slot.worker.name} failed`, { reason: message });
      slot.lastError = message;
      slot.lastErrorAt = new Date().toISOString();
      slot.state = 'error';
      slot.errors++;
      return Math.min(MAX_ERROR_BACKOFF_MS, this.errorBackoffMs * 2 ** Math.min(slot.errors - 1, 10));
    } finally {
      slot.ticks++;
      slot.lastTick = new Date().toISOString();
    }
  }

  private sleep(slot: Slot, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        slot.wake = () => undefined;
        resolve();
      }
      slot.wake = done;
    });
  }
}
