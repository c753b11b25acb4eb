// Typed client of the repair service's HTTP API.
import { errorFromResponse } from '../common/http.js';
import type { WatcherStatus } from './watcher.js';

export type { WatcherStatus, NodeDamage } from './watcher.js';

export class RepairClient {
  constructor(private readonly baseUrl: string) {}

  async status(): Promise<WatcherStatus> {
    const res = await fetch(`${this.baseUrl}/status`);
    const text = await res.text();
    if (!res.ok) throw await errorFromResponse(res.status, text);
    return JSON.parse(text) as WatcherStatus;
  }
}
