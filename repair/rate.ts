// The byte-rate limit on repair traffic: a token bucket shared by every repair worker of the
// process, so --rate caps the sum of what they read from and write to storage nodes and client
// traffic keeps the rest of the disks and network.
import { setTimeout as sleep } from 'node:timers/promises';

const RATE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};

/** "100MB", "100MB/s", "512KiB", "1.5GB" → bytes per second; "0", "off" or "unlimited" → Infinity. */
export function parseRate(text: string): number {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'off' || trimmed === 'unlimited' || trimmed === '0') return Infinity;
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)(?:\/s)?$/.exec(trimmed);
  const unit = match ? RATE_UNITS[match[2]] : undefined;
  if (!match || unit === undefined) throw new Error(`invalid rate "${text}" (expected e.g. 100MB, 50MiB/s, unlimited)`);
  const rate = Number(match[1]) * unit;
  if (!(rate > 0)) throw new Error(`rate must be positive, got "${text}"`);
  return rate;
}

export function formatRate(bytesPerSecond: number): string {
  return Number.isFinite(bytesPerSecond) ? `${(bytesPerSecond / 1e6).toFixed(1)}MB/s` : 'unlimited';
}

/**
 * Virtual-time token bucket: `paidUntil` is when everything spent so far is paid off at the rate.
 * Idle time builds up credit, capped at `burstMs` worth of bytes, so a short burst is not delayed
 * and a long idle spell does not turn into an unlimited one.
 */
export class TokenBucket {
  private paidUntil = 0;

  constructor(private bytesPerSecond: number, private readonly burstMs = 1000) {}

  get rate(): number {
    return this.bytesPerSecond;
  }

  setRate(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
  }

  /**
   * Spends `bytes`, waiting until the budget allows it. Urgent work (a segment one loss away from
   * being unreadable) spends without waiting: it still counts, so routine work yields to it.
   */
  async take(bytes: number, signal?: AbortSignal, urgent = false): Promise<void> {
    if (!Number.isFinite(this.bytesPerSecond) || bytes <= 0) return;
    const now = Date.now();
    this.paidUntil = Math.max(this.paidUntil, now - this.burstMs) + (bytes * 1000) / this.bytesPerSecond;
    const wait = this.paidUntil - now;
    if (urgent || wait <= 0) return;
    await sleep(wait, undefined, signal ? { signal } : undefined);
  }
}
