// The repair service's HTTP API: worker status and control, the overall picture, the rate knob,
// plus /health and /metrics.
//   GET  /status                       node health, drains, repair totals and every worker
//   GET  /workers                      every worker's status
//   GET  /workers/:name                one worker
//   POST /workers/:name/pause|resume   ('all' for every worker)
//   PUT  /rate  {"rate": "50MB"}       changes the repair byte-rate limit at run time
import type http from 'node:http';
import { createServiceServer, HttpError, readJson, Router, sendJson } from '../common/http.js';
import type { ClusterSecret } from '../common/internal-auth.js';
import type { Logger } from '../common/log.js';
import type { Registry } from '../common/metrics.js';
import { formatRate, parseRate } from './rate.js';
import type { RepairService } from './service.js';
import type { RepairStatus } from './client.js';

export function statusOf(service: RepairService): RepairStatus {
  return {
    ...service.watcher.snapshot(),
    repair: service.repairSummary(),
    drains: service.drain.nodes(),
    workers: service.manager.statuses(),
  };
}

export function createRepairServer(service: RepairService, log: Logger, metrics: Registry, secret: ClusterSecret): http.Server {
  const { manager } = service;
  const router = new Router()
    .on('GET', '/status', (_req, res) => sendJson(res, 200, statusOf(service)))
    .on('GET', '/workers', (_req, res) => sendJson(res, 200, { workers: manager.statuses() }))
    .on('GET', '/workers/:name', (_req, res, p) => sendJson(res, 200, manager.statusOf(p.name) ?? notFound(p.name)))
    .on('POST', '/workers/:name/:action', (_req, res, p) => {
      if (p.action !== 'pause' && p.action !== 'resume') throw new HttpError(404, 'NotFound', `unknown action ${p.action}`);
      const names = p.name === 'all' ? manager.names() : [p.name];
      for (const name of names) if (!manager.setPaused(name, p.action === 'pause')) notFound(name);
      sendJson(res, 200, { workers: names.map((n) => manager.statusOf(n)) });
    })
    .on('PUT', '/rate', async (req, res) => {
      const body = await readJson<{ rate?: unknown }>(req);
      if (typeof body.rate !== 'string') throw new HttpError(400, 'InvalidArgument', 'body must be {"rate": "<e.g. 100MB>"}');
      let rate: number;
      try {
        rate = parseRate(body.rate);
      } catch (err) {
        throw new HttpError(400, 'InvalidArgument', err instanceof Error ? err.message : String(err));
      }
      service.limiter.setRate(rate);
      log.info(`repair rate set to ${formatRate(rate)}`);
      sendJson(res, 200, { rate: formatRate(rate) });
    });
  return createServiceServer({
    service: 'repair',
    router,
    log,
    metrics,
    secret,
    health: () => {
      const s = service.watcher.snapshot();
      return { scans: s.scans, lastScan: s.lastScan, lastError: s.lastError };
    },
  });
}

function notFound(name: string): never {
  throw new HttpError(404, 'NoSuchWorker', `no worker named ${JSON.stringify(name.slice(0, 100))}`);
}
