// The node's scrubber: re-reads shards and checks every block's CRC32C, so bit rot is found before
// a read needs the shard. The walk is driven from outside (POST /scrub with a cursor) and paced here
// by a node-wide rate limit, so scrubbing never starves client reads of disk bandwidth. One scrub
// runs at a time: a second caller is told Busy rather than queued behind a long walk.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../common/log.js';
import { StoreError, type ShardStore } from './store.js';
import { WHOLE_SHARD_BLOCK, type ScrubResponse, type VerifyShardResponse } from './types.js';

export const DEFAULT_SCRUB_RATE = 50_000_000;
export const SCRUB_LIMITS = { defaultShards: 100, maxShards: 10_000, defaultBytes: 256 * 1024 * 1024, maxBytes: 2 ** 40 };
/** A call stops starting new shards after this long, so a slow rate cannot outlast the caller's timeout. */
const MAX_CALL_MS = 10_000;
/** Reads allowed ahead of the rate after an idle spell: small, so pacing is even from the first MiB. */
const BURST_BYTES = 256 * 1024;

/** Debt-style token bucket: a take that overdraws sleeps the debt off, so the long-run rate is exact. */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(readonly bytesPerSecond: number, private readonly burst = BURST_BYTES) {
    this.tokens = burst;
  }

  /** Waits until `bytes` may be read; an abort gives the bytes back, since they will not be read. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    try {
      await sleep((-this.tokens / this.bytesPerSecond) * 1000, undefined, { signal });
    } catch (err) {
      this.tokens += bytes;
      throw err;
    }
  }
}

/** A validated ScrubRequest with its defaults filled in. */
export interface ScrubPlan {
  after?: string;
  limit: number;
  maxBytes: number;
}

export interface ScrubStats {
  onBytes(bytes: number): void;
  onCorrupt(shard: ScrubResponse['corrupt'][number]): void;
}

export class Scrubber {
  private readonly bucket: TokenBucket;
  private running = false;

  constructor(private readonly store: ShardStore, bytesPerSecond: number, private readonly stats: ScrubStats, private readonly log?: Logger) {
    this.bucket = new TokenBucket(bytesPerSecond);
  }

  get busy(): boolean {
    return this.running;
  }

  /** Verifies shards after `req.after` in id order until a limit is reached; `signal` stops it between reads. */
  async run(plan: ScrubPlan, signal?: AbortSignal): Promise<ScrubResponse> {
    if (this.running) throw new StoreError('Busy', 'a scrub is already running on this node');
    this.running = true;
    try {
      return await this.walk(plan, signal);
    } finally {
      this.running = false;
    }
  }

  private async walk({ after, limit, maxBytes }: ScrubPlan, signal?: AbortSignal): Promise<ScrubResponse> {
    const page = this.store.ids(after, limit);
    const started = Date.now();
    const out: ScrubResponse = { checked: 0, bytes: 0, corrupt: [] };
    let last: string | undefined;
    for (const id of page.ids) {
      if (last !== undefined && (out.bytes >= maxBytes || Date.now() - started > MAX_CALL_MS)) break;
      const result = await this.verifyOne(id, async (bytes) => {
        await this.bucket.take(bytes, signal);
        out.bytes += bytes;
        this.stats.onBytes(bytes);
      });
      last = id;
      if (result) this.record(out, result);
    }
    const finished = !page.more && last === page.ids[page.ids.length - 1];
    return finished || last === undefined ? out : { ...out, next: last };
  }

  private record(out: ScrubResponse, result: VerifyShardResponse): void {
    out.checked++;
    if (result.corruptBlocks.length === 0) {
      if (result.blockCrcs !== undefined) (out.crcs ??= {})[result.id] = result.blockCrcs;
      return;
    }
    const shard = { id: result.id, blocks: result.corruptBlocks, ...(result.headerCorrupt ? { header: true } : {}) };
    out.corrupt.push(shard);
    this.stats.onCorrupt(shard);
  }

  /** null when the shard went away meanwhile (deleted by GC): nothing to check. */
  private async verifyOne(id: string, pace: (bytes: number) => Promise<void>): Promise<VerifyShardResponse | null> {
    try {
      return await this.store.verify(id, pace);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NoSuchShard') return null;
      // A shard the disk cannot read back is as lost as a rotten one: report it for rebuilding.
      if (typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EIO') {
        this.log?.warn('scrub could not read a shard', { id, err });
        return { id, blocks: 0, corruptBlocks: [WHOLE_SHARD_BLOCK], headerCorrupt: true };
      }
      throw err;
    }
  }
}
