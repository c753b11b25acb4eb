// Process entry of the namespace service: opens the store, serves the API, announces readiness,
// and on SIGTERM stops taking requests before closing the database.
import { clusterSecretFromEnv } from '../common/cluster-secret.js';
import { parseDuration } from '../common/duration.js';
import { close, listen } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { announceReady, onShutdown, readConfig } from '../common/process.js';
import { DEFAULT_READ_AHEAD } from './list-read-ahead.js';
import { createNamespaceServer } from './server.js';
import { NamespaceStore } from './store.js';

const log = createLogger('namespace');

async function main(): Promise<void> {
  const config = readConfig({
    'data-dir': { env: 'CAIRN_NAMESPACE_DATA_DIR' },
    host: { env: 'CAIRN_NAMESPACE_HOST', default: '127.0.0.1' },
    port: { env: 'CAIRN_NAMESPACE_PORT', default: '0' },
    'down-after': { env: 'CAIRN_DOWN_AFTER', default: '10m' },
    'suspect-after': { env: 'CAIRN_SUSPECT_AFTER', default: '5s' },
    'list-read-ahead': { env: 'CAIRN_LIST_READ_AHEAD', default: String(DEFAULT_READ_AHEAD.maxRunning) },
  });
  const dataDir = config['data-dir'];
  if (!dataDir) throw new Error('--data-dir (or CAIRN_NAMESPACE_DATA_DIR) is required');
  const port = Number(config.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${config.port}`);
  const readAheads = Number(config['list-read-ahead']);
  if (!Number.isInteger(readAheads) || readAheads < 0 || readAheads > 64) throw new Error(`invalid --list-read-ahead ${config['list-read-ahead']} (listing pages read ahead at once, 0 to 64)`);
  const secret = clusterSecretFromEnv();
  const store = await NamespaceStore.open(dataDir, {
    log,
    downAfterMs: parseDuration(config['down-after']!),
    suspectAfterMs: parseDuration(config['suspect-after']!),
    listReadAhead: { ...DEFAULT_READ_AHEAD, maxRunning: readAheads },
  });
  const server = createNamespaceServer(store, { log, secret });
  const url = await listen(server, config.host!, port);
  onShutdown(log, async () => {
    await close(server);
    await store.close();
  });
  log.info('serving', { url, dataDir, listReadAhead: readAheads });
  announceReady({ service: 'namespace', url });
}

main().catch((err: unknown) => {
  log.error('failed to start', { err });
  process.exit(1);
});
