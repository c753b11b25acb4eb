// Progress of the repair service, read from its HTTP API: `GET /workers` (one status per
// background worker: name, queued, done, bytes) where it exists. Throughput is the bytes the
// rebuilding workers wrote over the time they were busy; counters that reset (a restarted repair
// process) are followed across the reset.
import { request } from 'undici';
import { signRequest, type ClusterSecret } from '../../common/internal-auth.js';

const REQUEST_TIMEOUT_MS = 3_000;
/** Workers whose bytes are rebuilt shards (not scrubbed, collected or drained ones). */
const REBUILD_WORKER = /repair|rebuild|heal|node-?loss|recover/i;

export interface WorkerSample {
  name: string;
  queued: number;
  done: number;
  bytes: number;
}

export class RepairStats {
  /** Whether any poll found a /workers listing. */
  available = false;
  bytesRebuilt = 0;
  busyMs = 0;
  queuedNow = 0;
  lastWorkers: WorkerSample[] = [];
  lastError: string | undefined;
  private lastBytes: number | undefined;
  private lastAt: number | undefined;

  /** MB/s (10^6 bytes) over the polls in which rebuilt bytes grew. */
  throughput(): number | null {
    return this.busyMs > 0 ? this.bytesRebuilt / 1e6 / (this.busyMs / 1000) : null;
  }

  /** `secret` signs the request (the repair service refuses unsigned ones). */
  async poll(url: string | undefined, now: number, secret: ClusterSecret): Promise<void> {
    if (!url) {
      this.lastBytes = undefined;
      return;
    }
    try {
      const target = new URL(`${url}/workers`);
      const headers = signRequest(secret, { method: 'GET', host: target.host, target: target.pathname });
      const res = await request(target, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`GET /workers: HTTP ${res.statusCode}`);
      }
      this.record(parseWorkers(await res.body.json()), now);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.lastBytes = undefined;
    }
  }

  /** Whether a rebuild is under way (a rebuild worker has work queued). */
  rebuilding(): boolean {
    return this.queuedNow > 0;
  }

  private record(workers: WorkerSample[], now: number): void {
    this.available = true;
    this.lastWorkers = workers;
    const rebuild = workers.filter((w) => REBUILD_WORKER.test(w.name));
    const bytes = rebuild.reduce((sum, w) => sum + w.bytes, 0);
    this.queuedNow = rebuild.reduce((sum, w) => sum + w.queued, 0);
    // Without a previous sample (first poll, or after an error) this one is only the baseline.
    if (this.lastBytes !== undefined && this.lastAt !== undefined) {
      const delta = bytes >= this.lastBytes ? bytes - this.lastBytes : bytes; // a restart resets the counter
      if (delta > 0) {
        this.bytesRebuilt += delta;
        this.busyMs += now - this.lastAt;
      }
    }
    this.lastBytes = bytes;
    this.lastAt = now;
  }
}

/** Accepts `[...]` or `{ workers: [...] }`; keeps entries that have a name and numeric counters. */
export function parseWorkers(body: unknown): WorkerSample[] {
  const list = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.workers) ? body.workers : [];
  const out: WorkerSample[] = [];
  for (const item of list as unknown[]) {
    if (!isRecord(item) || typeof item.name !== 'string') continue;
    out.push({ name: item.name, queued: num(item.queued), done: num(item.done), bytes: num(item.bytes) });
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}
