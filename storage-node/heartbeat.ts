// Periodic liveness and capacity reports to the namespace, which decides up/suspect/down from them.
// Beats never overlap (each is scheduled after the previous one settles) and a failing namespace
// never takes the node down: the first failure of a streak is logged, then silence until recovery.
import { Pool } from 'undici';
import { signRequest, type ClusterSecret } from '../common/internal-auth.js';
import type { Logger } from '../common/log.js';
import type { HeartbeatRequest } from '../namespace/types.js';

export interface HeartbeatOptions {
  namespaceUrl: string;
  nodeId: string;
  /** Beats are signed with it (the namespace refuses unsigned ones). */
  secret: ClusterSecret;
  /** Built fresh for every beat, so usage numbers are current. */
  report: () => Promise<HeartbeatRequest>;
  log: Logger;
  /** Default 1000 ms. */
  intervalMs?: number;
  /** Per-beat timeout; default the smaller of 5 s and twice the interval (at least 500 ms). */
  timeoutMs?: number;
}

export class Heartbeater {
  private readonly pool: Pool;
  private readonly path: string;
  private readonly host: string;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private running = false;
  private failing = false;
  /** Counts for observability and tests. */
  readonly stats = { sent: 0, failed: 0 };

  constructor(private readonly opts: HeartbeatOptions) {
    const base = new URL(opts.namespaceUrl);
    this.pool = new Pool(base.origin, { connections: 1 });
    this.host = base.host;
    this.path = `${base.pathname.replace(/\/+$/, '')}/nodes/${encodeURIComponent(opts.nodeId)}/heartbeat`;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? Math.max(500, Math.min(5000, 2 * this.intervalMs));
  }

  /** Sends the first beat at once, then one per interval. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.inFlight;
    await this.pool.close();
  }

  /** One beat; resolves true if the namespace accepted it. Never throws. */
  async beat(): Promise<boolean> {
    try {
      const body = JSON.stringify(await this.opts.report());
      const res = await this.pool.request({
        method: 'POST',
        path: this.path,
        headers: signRequest(this.opts.secret, { method: 'POST', host: this.host, target: this.path, headers: { 'content-type': 'application/json' }, body }),
        body,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`namespace answered ${res.statusCode}: ${text.slice(0, 200)}`);
      this.succeeded();
      return true;
    } catch (err) {
      this.failed(err);
      return false;
    }
  }

  private tick(): void {
    if (!this.running) return;
    this.inFlight = this.beat().then(() => {
      this.inFlight = undefined;
      if (!this.running) return;
      this.timer = setTimeout(() => this.tick(), this.intervalMs);
      // Heartbeats alone must not keep a process alive whose server has closed.
      this.timer.unref();
    });
  }

  private succeeded(): void {
    this.stats.sent++;
    if (this.failing) this.opts.log.info('heartbeats reach the namespace again', { namespace: this.opts.namespaceUrl });
    this.failing = false;
  }

  private failed(err: unknown): void {
    this.stats.failed++;
    if (!this.failing) this.opts.log.warn('heartbeat failed; retrying quietly until it works', { namespace: this.opts.namespaceUrl, err });
    this.failing = true;
  }
}
