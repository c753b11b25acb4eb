// Process entry of the repair service.
import { clusterSecretFromEnv } from '../common/cluster-secret.js';
import type { ClusterSecret } from '../common/internal-auth.js';
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { parseDuration } from '../common/duration.js';
import { announceReady, onShutdown, readConfig } from '../common/process.js';
import { close, listen } from '../common/http.js';
import { NamespaceClient } from '../namespace/client.js';
import { StorageNodePool } from '../storage-node/client.js';
import { formatRate, parseRate } from './rate.js';
import { createRepairServer } from './server.js';
import { DEFAULT_QUEUE_CAPACITY, RepairService, type RepairConfig } from './service.js';

const log = createLogger('repair');

function loadConfig(): { namespace: string; host: string; port: number; secret: ClusterSecret; repair: RepairConfig } {
  const c = readConfig({
    namespace: { env: 'CAIRN_NAMESPACE_URL' },
    host: { env: 'CAIRN_REPAIR_HOST', default: '127.0.0.1' },
    port: { env: 'CAIRN_REPAIR_PORT', default: '0' },
    interval: { env: 'CAIRN_REPAIR_INTERVAL', default: '2s' },
    workers: { env: 'CAIRN_REPAIR_WORKERS', default: '2' },
    rate: { env: 'CAIRN_REPAIR_RATE', default: '100MB' },
    'scrub-interval': { env: 'CAIRN_SCRUB_INTERVAL', default: '24h' },
    'audit-interval': { env: 'CAIRN_AUDIT_INTERVAL', default: '1h' },
    'gc-grace': { env: 'CAIRN_GC_GRACE', default: '1h' },
    'orphan-grace': { env: 'CAIRN_ORPHAN_GRACE', default: '1h' },
    'shard-timeout': { env: 'CAIRN_SHARD_TIMEOUT', default: '10s' },
    'queue-size': { env: 'CAIRN_REPAIR_QUEUE_SIZE', default: String(DEFAULT_QUEUE_CAPACITY) },
  });
  if (!c.namespace) throw new Error('--namespace (or CAIRN_NAMESPACE_URL) is required');
  const workers = Number(c.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error(`--workers must be 1..64, got "${c.workers}"`);
  const queueCapacity = Number(c['queue-size']);
  if (!Number.isInteger(queueCapacity) || queueCapacity < 1) throw new Error(`--queue-size must be a positive integer, got "${c['queue-size']}"`);
  const positive = (name: string, text: string): number => {
    const ms = parseDuration(text);
    if (ms <= 0) throw new Error(`--${name} must be positive`);
    return ms;
  };
  return {
    namespace: c.namespace,
    host: c.host!,
    port: Number(c.port),
    secret: clusterSecretFromEnv(),
    repair: {
      workers,
      rateBytesPerSecond: parseRate(c.rate!),
      scrubIntervalMs: positive('scrub-interval', c['scrub-interval']!),
      auditIntervalMs: positive('audit-interval', c['audit-interval']!),
      gcGraceMs: parseDuration(c['gc-grace']!),
      orphanGraceMs: parseDuration(c['orphan-grace']!),
      intervalMs: positive('interval', c.interval!),
      stallTimeoutMs: positive('shard-timeout', c['shard-timeout']!),
      queueCapacity,
    },
  };
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  log.error(err instanceof Error ? err.message : String(err));
  process.exit(2);
}

const namespace = new NamespaceClient(config.namespace, { secret: config.secret });
const pool = new StorageNodePool({ secret: config.secret, timeoutMs: config.repair.stallTimeoutMs });
const registry = new Registry('repair');
const service = new RepairService(namespace, pool, config.repair, log, registry);
const server = createRepairServer(service, log, registry, config.secret);
const url = await listen(server, config.host, config.port);
service.start();
announceReady({ service: 'repair', url });
const r = config.repair;
log.info('repair service running', {
  namespace: config.namespace,
  url,
  workers: r.workers,
  rate: formatRate(r.rateBytesPerSecond),
  scrubIntervalS: r.scrubIntervalMs / 1000,
  auditIntervalS: r.auditIntervalMs / 1000,
  gcGraceS: r.gcGraceMs / 1000,
  orphanGraceS: r.orphanGraceMs / 1000,
});
onShutdown(log, async () => {
  await service.stop();
  await close(server);
  await pool.close();
  await namespace.close();
});
