// Process entry of the repair service.
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { parseDuration } from '../common/duration.js';
import { announceReady, onShutdown, readConfig } from '../common/process.js';
import { close, listen } from '../common/http.js';
import { NamespaceClient } from '../namespace/client.js';
import { HealthWatcher } from './watcher.js';
import { createRepairServer } from './server.js';

const log = createLogger('repair');
const config = readConfig({
  namespace: { env: 'CAIRN_NAMESPACE_URL' },
  host: { env: 'CAIRN_REPAIR_HOST', default: '127.0.0.1' },
  port: { env: 'CAIRN_REPAIR_PORT', default: '0' },
  interval: { env: 'CAIRN_REPAIR_INTERVAL', default: '2s' },
});
if (!config.namespace) {
  log.error('--namespace (or CAIRN_NAMESPACE_URL) is required');
  process.exit(2);
}

const namespace = new NamespaceClient(config.namespace);
const watcher = new HealthWatcher(namespace, log, parseDuration(config.interval!));
const server = createRepairServer(watcher, log, new Registry('repair'));
const url = await listen(server, config.host!, Number(config.port));
watcher.start();
announceReady({ service: 'repair', url });
log.info('watching node health', { namespace: config.namespace, url });
onShutdown(log, async () => {
  await watcher.stop();
  await close(server);
});
