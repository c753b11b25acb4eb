// Typed client of the repair service's HTTP API (used by the admin command and tests).
import { request } from 'undici';
import { errorFromResponse } from '../common/http.js';
import { signRequest, type ClusterSecret } from '../common/internal-auth.js';
import type { DrainProgress } from './drain.js';
import type { WatcherStatus } from './watcher.js';
import type { WorkerStatus } from './worker.js';

export type { WatcherStatus, NodeDamage } from './watcher.js';
export type { WorkerStatus, WorkerState } from './worker.js';
export type { DrainProgress } from './drain.js';

export interface RepairStatus extends WatcherStatus {
  /** Totals of segment repairs since the process started (see RepairService.repairSummary). */
  repair: Record<string, unknown>;
  drains: Record<string, DrainProgress>;
  workers: WorkerStatus[];
}

export class RepairClient {
  /** Requests are signed with `secret` (the repair service refuses unsigned ones). */
  constructor(private readonly baseUrl: string, private readonly secret: ClusterSecret) {}

  status(): Promise<RepairStatus> {
    return this.call<RepairStatus>('GET', '/status');
  }

  async workers(): Promise<WorkerStatus[]> {
    return (await this.call<{ workers: WorkerStatus[] }>('GET', '/workers')).workers;
  }

  worker(name: string): Promise<WorkerStatus> {
    return this.call<WorkerStatus>('GET', `/workers/${encodeURIComponent(name)}`);
  }

  /** `name` 'all' pauses every worker. */
  async pause(name: string): Promise<WorkerStatus[]> {
    return (await this.call<{ workers: WorkerStatus[] }>('POST', `/workers/${encodeURIComponent(name)}/pause`)).workers;
  }

  async resume(name: string): Promise<WorkerStatus[]> {
    return (await this.call<{ workers: WorkerStatus[] }>('POST', `/workers/${encodeURIComponent(name)}/resume`)).workers;
  }

  async setRate(rate: string): Promise<string> {
    return (await this.call<{ rate: string }>('PUT', '/rate', { rate })).rate;
  }

  private async call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    const text = body === undefined ? undefined : JSON.stringify(body);
    const target = url.pathname + url.search;
    const headers = signRequest(this.secret, { method, host: url.host, target, headers: text === undefined ? {} : { 'content-type': 'application/json' }, body: text });
    const res = await request(url.origin + target, { method, headers, body: text });
    const reply = await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) throw await errorFromResponse(res.statusCode, reply);
    return JSON.parse(reply) as T;
  }
}
