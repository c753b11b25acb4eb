// The repair service's HTTP API: its plan and progress, plus /health and /metrics.
import type http from 'node:http';
import { createServiceServer, Router, sendJson } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { Registry } from '../common/metrics.js';
import type { HealthWatcher } from './watcher.js';

export function createRepairServer(watcher: HealthWatcher, log: Logger, metrics: Registry): http.Server {
  const router = new Router().on('GET', '/status', (_req, res) => sendJson(res, 200, watcher.snapshot()));
  metrics.gauge('cairn_repair_shards_to_rebuild', 'Shards held by nodes that are down').set(() =>
    watcher.snapshot().damage.reduce((sum, d) => sum + d.shards, 0),
  );
  metrics.gauge('cairn_repair_nodes_down', 'Storage nodes in state down').set(() => watcher.snapshot().damage.length);
  return createServiceServer({
    service: 'repair',
    router,
    log,
    metrics,
    health: () => {
      const s = watcher.snapshot();
      return { scans: s.scans, lastScan: s.lastScan, lastError: s.lastError };
    },
  });
}
