// Small measurement helpers: latency percentiles, the bench process's CPU share, bounded worker
// pools (every loop stops at a deadline or an op count, whichever comes first).
import os from 'node:os';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
/** Throughputs are reported in MB/s with MB = 10^6 bytes. */
export const MB = 1e6;

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

/** Latencies in ms. */
export function summarize(latencies: readonly number[]): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.length ? sum / sorted.length : NaN,
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

/** CPU used by this (the load generating) process over a wall-clock span. */
export class CpuMeter {
  private readonly cpu0 = process.cpuUsage();
  private readonly t0 = performance.now();

  stop(): { cpuSeconds: number; wallSeconds: number; cores: number; machineShare: number } {
    const d = process.cpuUsage(this.cpu0);
    const cpuSeconds = (d.user + d.system) / 1e6;
    const wallSeconds = (performance.now() - this.t0) / 1000;
    const cores = wallSeconds > 0 ? cpuSeconds / wallSeconds : 0;
    return { cpuSeconds, wallSeconds, cores, machineShare: cores / os.availableParallelism() };
  }
}

export interface PoolOptions {
  concurrency: number;
  /** Stop starting ops after this many (total over all workers). */
  maxOps: number;
  /** Stop starting ops after this many ms. */
  durationMs: number;
  signal?: AbortSignal;
}

export interface PoolResult {
  ops: number;
  errors: number;
  firstError?: string;
  latencies: number[];
  wallSeconds: number;
}

/**
 * Runs `op(i)` from `concurrency` workers until maxOps or durationMs. Latency per op in ms.
 * Failed ops are counted, not retried; their latency is not recorded.
 */
export async function runPool(opts: PoolOptions, op: (i: number, worker: number) => Promise<void>): Promise<PoolResult> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const end = t0 + opts.durationMs;
  const worker = async (w: number): Promise<void> => {
    while (next < opts.maxOps && performance.now() < end && !opts.signal?.aborted) {
      const i = next++;
      const started = performance.now();
      try {
        await op(i, w);
        latencies.push(performance.now() - started);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        if (opts.signal?.aborted) return;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, (_, w) => worker(w)));
  return { ops: latencies.length, errors, firstError, latencies, wallSeconds: (performance.now() - t0) / 1000 };
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Polls `check` every `intervalMs` until it returns a value or `timeoutMs` passes (then undefined). */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250, signal?: AbortSignal): Promise<T | undefined> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() >= end || signal?.aborted) return undefined;
    await sleep(intervalMs, signal);
  }
}

export function fmtNum(n: number | null | undefined, digits?: number): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** 1.50 GiB / 48 MiB / 12 KiB / 100 B */
export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(0)} MiB`;
  if (n >= KiB) return `${(n / KiB).toFixed(0)} KiB`;
  return `${n} B`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
