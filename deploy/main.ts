// `npm start`: a local Cairn cluster on embedded defaults, every service its own process; the
// storage nodes (one per disk) share one storage process unless --nodes-per-process says otherwise.
import path from 'node:path';
import { CLUSTER_SECRET_ENV, CLUSTER_SECRET_FILE } from '../common/cluster-secret.js';
import { readConfig } from '../common/process.js';
import { startCluster } from './cluster.js';

const config = readConfig({
  port: { env: 'CAIRN_PORT', default: '9000' },
  host: { env: 'CAIRN_HOST', default: '127.0.0.1' },
  'data-dir': { env: 'CAIRN_DATA_DIR', default: './data' },
  'access-key-id': { env: 'CAIRN_ACCESS_KEY_ID', default: 'cairnadmin' },
  'secret-access-key': { env: 'CAIRN_SECRET_ACCESS_KEY', default: 'cairnadmin' },
  nodes: { env: 'CAIRN_NODES', default: '6' },
  // Unset: every node in one storage process, as one machine serves all its disks.
  'nodes-per-process': { env: 'CAIRN_NODES_PER_PROCESS' },
  k: { env: 'CAIRN_K', default: '4' },
  m: { env: 'CAIRN_M', default: '2' },
  'down-after': { env: 'CAIRN_DOWN_AFTER', default: '10m' },
  'inline-max': { env: 'CAIRN_INLINE_MAX' },
  domain: { env: 'CAIRN_DOMAIN' },
  'cors-origins': { env: 'CAIRN_CORS_ORIGINS' },
  quiet: { env: 'CAIRN_QUIET' },
  'repair-workers': { env: 'CAIRN_REPAIR_WORKERS' },
  'repair-rate': { env: 'CAIRN_REPAIR_RATE' },
  'scrub-interval': { env: 'CAIRN_SCRUB_INTERVAL' },
  'gc-grace': { env: 'CAIRN_GC_GRACE' },
  'orphan-grace': { env: 'CAIRN_ORPHAN_GRACE' },
  'tls-cert': { env: 'CAIRN_TLS_CERT' },
  'tls-key': { env: 'CAIRN_TLS_KEY' },
});
if (Boolean(config['tls-cert']) !== Boolean(config['tls-key'])) {
  console.error('cairn: --tls-cert and --tls-key go together');
  process.exit(2);
}

const nodes = Number(config.nodes);
const k = Number(config.k);
const m = Number(config.m);
if (!Number.isInteger(nodes) || nodes < k + m) {
  console.error(`cairn: --nodes must be at least k+m = ${k + m}, got ${config.nodes}`);
  process.exit(2);
}
const nodesPerProcess = Number(config['nodes-per-process'] ?? nodes);
if (!Number.isInteger(nodesPerProcess) || nodesPerProcess < 1) {
  console.error(`cairn: --nodes-per-process must be a positive integer, got ${config['nodes-per-process']}`);
  process.exit(2);
}

const dataDir = path.resolve(config['data-dir']!);
console.log(`Cairn: starting a local cluster (namespace, ${nodes} storage nodes k=${k} m=${m}, gateway, repair) in ${dataDir}`);
const cluster = await startCluster({
  dataDir,
  host: config.host,
  port: Number(config.port),
  accessKeyId: config['access-key-id']!,
  secretAccessKey: config['secret-access-key']!,
  nodes,
  nodesPerProcess,
  k,
  m,
  downAfter: config['down-after'],
  ...(config['inline-max'] ? { inlineMax: Number(config['inline-max']) } : {}),
  domain: config.domain,
  corsOrigins: config['cors-origins'],
  echoLogs: !config.quiet,
  // The cluster secret only ever travels in the environment; unset, the data dir keeps its own.
  clusterSecret: process.env[CLUSTER_SECRET_ENV] || undefined,
  ...(config['tls-cert'] && config['tls-key'] ? { tls: { certFile: config['tls-cert'], keyFile: config['tls-key'] } } : {}),
  repair: {
    ...(config['repair-workers'] ? { workers: Number(config['repair-workers']) } : {}),
    rate: config['repair-rate'],
    scrubInterval: config['scrub-interval'],
    gcGrace: config['gc-grace'],
    orphanGrace: config['orphan-grace'],
  },
}).catch((err: unknown) => {
  console.error(`cairn: the cluster did not start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});

for (const [name, service] of cluster.services) {
  const disks = Array.isArray(service.ready.nodes) ? (service.ready.nodes as { nodeId: string; url: string }[]) : [];
  const urls = disks.length > 1 ? disks.map((d) => `${d.nodeId} ${d.url}`).join(', ') : service.ready.url;
  console.log(`  ${name.padEnd(10)} pid ${String(service.child.pid).padEnd(8)} ${urls}`);
}
console.log('');
console.log(`S3 endpoint:        ${cluster.endpoint}`);
console.log(`Access key id:      ${config['access-key-id']}`);
console.log(`Secret access key:  ${config['secret-access-key']}`);
console.log(
  config.domain
    ? `Region:             us-east-1 (path-style, or virtual-hosted style under ${config.domain})`
    : 'Region:             us-east-1 (path-style addressing)',
);
console.log(`Logs:               ${path.join(dataDir, 'logs')}`);
console.log(`Cluster secret:     ${process.env[CLUSTER_SECRET_ENV] ? `from ${CLUSTER_SECRET_ENV}` : path.join(dataDir, CLUSTER_SECRET_FILE)} (internal requests are signed with it)`);
console.log('Cairn is ready. Press Ctrl-C to stop.');

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\nCairn: ${signal} received, stopping all services...`);
  cluster.stop().then(
    () => {
      console.log('Cairn: stopped.');
      process.exit(0);
    },
    (err: unknown) => {
      console.error('cairn: stop failed', err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
