// Storage node process entry: one disk (--node-id, --data-dir) or several (--disks), each disk a
// storage node of its own. Pass node ids on the command line (not only via the environment) so
// operators can find a node's process: pgrep -f 'node-3'.
import { randomBytes } from 'node:crypto';
import { clusterSecretFromEnv } from '../common/cluster-secret.js';
import { parseDuration } from '../common/duration.js';
import { close, listen } from '../common/http.js';
import type { ClusterSecret } from '../common/internal-auth.js';
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { announceReady, onShutdown, readConfig } from '../common/process.js';
import { diskPorts, parseDiskList, type DiskSpec } from './disks.js';
import { Heartbeater } from './heartbeat.js';
import { DEFAULT_SCRUB_RATE } from './scrub.js';
import { nodeUrlKey } from './rebuild.js';
import { createStorageNodeServer } from './server.js';
import { parseByteSize } from './size.js';
import { DEFAULT_OPEN_SHARD_FILES } from './open-shards.js';
import { DEFAULT_PACK_MAX_BYTES, ShardStore } from './store.js';

const log = createLogger('storage-node');

interface NodeConfig {
  disks: DiskSpec[];
  host: string;
  /** The first disk's port; the others count up from it (0: each picks a free one). */
  port: number;
  namespaceUrl: string | undefined;
  /** One per disk, when others must use other URLs than the bound ones. */
  advertiseUrls: string[] | undefined;
  zone: string | undefined;
  heartbeatMs: number;
  /** Scrub read rate in bytes per second. */
  scrubRate: number;
  /** Quota on stored bytes; Infinity when unset. */
  maxBytes: number;
  directWrites: boolean;
  directReads: boolean;
  /** Shards of at most this many stored bytes are packed into logs; 0 = off. */
  packMaxBytes: number;
  /** Shard files each disk keeps open between reads of the same shard; 0 = none. */
  openFiles: number;
}

/** The most `--open-files` may ask for: it counts per disk, and one process may serve many disks. */
const MAX_OPEN_FILES = 4096;

function loadConfig(): NodeConfig {
  const c = readConfig({
    'node-id': { env: 'CAIRN_NODE_ID' },
    'data-dir': { env: 'CAIRN_NODE_DATA_DIR' },
    // Several disks in one process, each its own node: node-1=/data/d1,node-2=/data/d2.
    disks: { env: 'CAIRN_NODE_DISKS' },
    host: { env: 'CAIRN_NODE_HOST', default: '127.0.0.1' },
    port: { env: 'CAIRN_NODE_PORT', default: '0' },
    namespace: { env: 'CAIRN_NAMESPACE_URL' },
    // The URL others should use, when it differs from the bound one (0.0.0.0, NAT, containers);
    // with --disks, one per disk, comma-separated.
    'advertise-url': { env: 'CAIRN_NODE_ADVERTISE_URL' },
    zone: { env: 'CAIRN_ZONE' },
    'heartbeat-interval': { env: 'CAIRN_HEARTBEAT_INTERVAL', default: '1s' },
    'scrub-rate': { env: 'CAIRN_SCRUB_RATE', default: String(DEFAULT_SCRUB_RATE) },
    // Unset: the disk's own size is the limit.
    'max-bytes': { env: 'CAIRN_NODE_MAX_BYTES' },
    // "auto": shards are written around the page cache (O_DIRECT) where the filesystem allows it.
    'direct-writes': { env: 'CAIRN_DIRECT_WRITES', default: 'auto' },
    // "auto": shards of 256 KiB or more are read around the page cache too; "off" suits workloads
    // that read the same large objects again and again.
    'direct-reads': { env: 'CAIRN_DIRECT_READS', default: 'auto' },
    // Shards up to this size are appended to pack logs instead of getting a file each; "0" = off.
    'pack-max': { env: 'CAIRN_PACK_MAX', default: String(DEFAULT_PACK_MAX_BYTES) },
    // Shard files each disk keeps open for the next read of the same shard (ranged reads); "0" = none.
    'open-files': { env: 'CAIRN_OPEN_FILES', default: String(DEFAULT_OPEN_SHARD_FILES.max) },
  });
  const autoOrOff = (flag: 'direct-writes' | 'direct-reads'): boolean => {
    const value = c[flag] ?? 'auto';
    if (value !== 'auto' && value !== 'off') throw new Error(`--${flag} must be auto or off, got "${value}"`);
    return value === 'auto';
  };
  const disks = readDisks(c['disks'], c['node-id'], c['data-dir']);
  const advertiseUrls = c['advertise-url']?.split(',').map((u) => u.trim());
  if (advertiseUrls && advertiseUrls.length !== disks.length) throw new Error(`--advertise-url gives ${advertiseUrls.length} URLs for ${disks.length} disks`);
  const port = Number(c.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got "${c.port}"`);
  const heartbeatMs = parseDuration(c['heartbeat-interval'] ?? '1s');
  if (heartbeatMs < 1) throw new Error('--heartbeat-interval must be positive');
  const openFiles = Number(c['open-files']);
  if (!Number.isSafeInteger(openFiles) || openFiles < 0 || openFiles > MAX_OPEN_FILES) throw new Error(`--open-files must be an integer in 0..${MAX_OPEN_FILES}, got "${c['open-files']}"`);
  return {
    disks,
    host: c.host ?? '127.0.0.1',
    port,
    namespaceUrl: c.namespace,
    advertiseUrls,
    zone: c.zone,
    heartbeatMs,
    scrubRate: parseByteSize(c['scrub-rate'] ?? String(DEFAULT_SCRUB_RATE), '--scrub-rate'),
    maxBytes: c['max-bytes'] ? parseByteSize(c['max-bytes'], '--max-bytes') : Number.POSITIVE_INFINITY,
    directWrites: autoOrOff('direct-writes'),
    directReads: autoOrOff('direct-reads'),
    packMaxBytes: c['pack-max'] === '0' ? 0 : parseByteSize(c['pack-max'] ?? String(DEFAULT_PACK_MAX_BYTES), '--pack-max'),
    openFiles,
  };
}

function readDisks(list: string | undefined, nodeId: string | undefined, dataDir: string | undefined): DiskSpec[] {
  if (list !== undefined) {
    if (nodeId !== undefined || dataDir !== undefined) throw new Error('--disks names every node id and data dir; do not also give --node-id or --data-dir');
    return parseDiskList(list);
  }
  if (!dataDir) throw new Error('--data-dir (or CAIRN_NODE_DATA_DIR) or --disks is required');
  return [{ nodeId, dataDir }];
}

interface DiskNode {
  nodeId: string;
  url: string;
  stop(): Promise<void>;
}

/** The disks of this process by node URL: a rebuild on one of them reads sources on the others from disk. */
type DiskStores = Map<string, ShardStore>;

/** Opens one disk's store and serves it as a storage node: its own server, metrics and heartbeats. */
async function startDiskNode(config: NodeConfig, secret: ClusterSecret, disk: DiskSpec, port: number, advertiseUrl: string | undefined, disks: DiskStores): Promise<DiskNode> {
  const store = await ShardStore.open({ dir: disk.dataDir, nodeId: disk.nodeId, log, limits: { quotaBytes: config.maxBytes }, directWrites: config.directWrites, directReads: config.directReads, packMaxBytes: config.packMaxBytes, openFiles: { ...DEFAULT_OPEN_SHARD_FILES, max: config.openFiles } });
  let ownHost: string | undefined;
  const server = createStorageNodeServer(store, { log, secret, host: () => ownHost, metrics: new Registry('storage-node'), scrubRate: config.scrubRate, localStores: (u) => disks.get(nodeUrlKey(u)) });
  const boundUrl = await listen(server, config.host, port);
  const url = advertiseUrl ?? boundUrl;
  // Everyone reaches the node by the URL it registers (the namespace hands it out).
  ownHost = new URL(url).host;
  disks.set(nodeUrlKey(url), store);
  let heartbeats: Heartbeater | undefined;
  // Tells repair this is a new process: whatever happened while it was away (a replaced disk, files
  // lost in a crash) is checked by an inventory audit of this node.
  const bootId = randomBytes(8).toString('hex');
  if (config.namespaceUrl) {
    heartbeats = new Heartbeater({
      namespaceUrl: config.namespaceUrl,
      nodeId: store.nodeId,
      secret,
      intervalMs: config.heartbeatMs,
      log,
      report: async () => {
        const u = await store.usage();
        return { url, bootId, capacityBytes: u.capacityBytes, usedBytes: u.usedBytes, freeBytes: u.freeBytes, ...(config.zone ? { zone: config.zone } : {}) };
      },
    });
    // Ready means registered: a node restarted on a new port is found by readers as soon as it says so.
    if (!(await heartbeats.beat())) log.warn('the first heartbeat failed; announcing ready anyway, beats continue', { nodeId: store.nodeId });
    heartbeats.start();
  }
  log.info('serving', {
    url,
    nodeId: store.nodeId,
    dataDir: store.dir,
    shards: store.shardCount,
    usedBytes: store.usedBytes,
    scrubRate: config.scrubRate,
    shardWrites: store.writeMode,
    largeShardReads: store.largeReadMode,
    packMaxBytes: store.packMaxBytes,
    ...(Number.isFinite(config.maxBytes) ? { maxBytes: config.maxBytes } : {}),
  });
  return {
    nodeId: store.nodeId,
    url,
    stop: async () => {
      disks.delete(nodeUrlKey(url));
      await heartbeats?.stop();
      await close(server);
      await store.close();
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const secret = clusterSecretFromEnv();
  if (!config.namespaceUrl) log.warn('no --namespace given: this node will not register itself');
  const ports = diskPorts(config.port, config.disks.length);
  const started: DiskNode[] = [];
  const disks: DiskStores = new Map();
  onShutdown(log, async () => {
    await Promise.all(started.map((node) => node.stop()));
  });
  // One after another: a disk that cannot start stops the process before the next one registers.
  for (const [i, disk] of config.disks.entries()) started.push(await startDiskNode(config, secret, disk, ports[i]!, config.advertiseUrls?.[i], disks));
  const first = started[0]!;
  announceReady({ service: 'storage-node', url: first.url, nodeId: first.nodeId, nodes: started.map(({ nodeId, url }) => ({ nodeId, url })) });
}

main().catch((err: unknown) => {
  log.error('cannot start storage node', { err });
  process.exit(1);
});
