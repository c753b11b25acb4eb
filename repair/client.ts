// Typed client of the repair service's HTTP API (used by the admin command and tests).
import { errorFromResponse } from '../common/http.js';
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
  constructor(private readonly baseUrl: string) {}

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

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.text();
    if (!res.ok) throw await errorFromResponse(res.status, text);
    return JSON.parse(text) as T;
  }
}
