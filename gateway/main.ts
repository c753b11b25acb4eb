// Process entry of an S3 gateway.
import { clusterSecretFromEnv } from '../common/cluster-secret.js';
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { announceReady, onShutdown } from '../common/process.js';
import { close, listen } from '../common/http.js';
import { StripeCodec } from '../erasure/codec.js';
import { NamespaceClient } from '../namespace/client.js';
import { StorageNodePool } from '../storage-node/client.js';
import { loadGatewayConfig } from './config.js';
import { NodeDirectory } from './data/node-directory.js';
import { DamageReporter } from './data/damage-reporter.js';
import { BucketRecords } from './bucket-records.js';
import { BUDGET_WAIT_MS, MemoryBudget } from './data/memory-budget.js';
import { createGatewayServer } from './server.js';
import { createGatewayMetrics, exposeClientBatches, type GatewayServices } from './services.js';

const log = createLogger('gateway');
let config;
let secret;
try {
  config = loadGatewayConfig();
  secret = clusterSecretFromEnv();
} catch (err) {
  log.error(err instanceof Error ? err.message : String(err));
  process.exit(2);
}

const namespace = new NamespaceClient(config.namespaceUrl, { secret });
const nodes = new StorageNodePool({ secret });
const uploadBudget = new MemoryBudget(config.uploadBudgetBytes, BUDGET_WAIT_MS, 'upload');
const downloadBudget = new MemoryBudget(config.downloadBudgetBytes, BUDGET_WAIT_MS, 'download');
const metrics = createGatewayMetrics(new Registry('gateway'), [uploadBudget, downloadBudget]);
exposeClientBatches(metrics.registry, namespace, nodes);
const services: GatewayServices = {
  config,
  namespace,
  nodes,
  directory: new NodeDirectory(namespace),
  codec: new StripeCodec(config.layout),
  log,
  metrics,
  damage: new DamageReporter(namespace, log, metrics.damageReportsDropped),
  buckets: new BucketRecords(namespace),
  uploadBudget,
  downloadBudget,
};
const server = createGatewayServer(services);
const url = await listen(server, config.host, config.port);
announceReady({ service: 'gateway', url, layout: config.layout });
log.info('serving S3', { url, layout: config.layout, segmentSize: config.segmentSize, writeQuorum: config.writeQuorum });
onShutdown(log, async () => {
  await close(server);
  await services.damage.flush();
  await nodes.close();
  await namespace.close();
});
