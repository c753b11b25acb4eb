// Starts a whole Cairn cluster on this machine, every service its own OS process: the namespace,
// N storage nodes, a gateway and the repair service. Used by `npm start` and by the tests.
// Every service gets the cluster secret in its environment (never on its command line, which `ps`
// shows): the one given, else the data dir's own, made on first start (<data-dir>/cluster-secret).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CLUSTER_SECRET_ENV, loadOrCreateSecretFile } from '../common/cluster-secret.js';
import { ClusterSecret } from '../common/internal-auth.js';
import { parseReadyLine, WATCH_PARENT_ENV, type ReadyInfo } from '../common/process.js';
import { entryArgs, REPO_ROOT } from '../common/source-tree.js';

const STARTUP_TIMEOUT_MS = 60_000;

/**
 * Node flags per service entry. The storage nodes and the repair service move their bytes through
 * Buffers, whose memory is outside V8's heap, so their heaps stay near 10 MB and V8 sizes the old
 * generation's limit to match (26 MB). Under load it then began a full mark-compact every ~150 ms
 * (--trace-incremental-marking: "Start (allocation limit): 10MB / 26MB"), the young generation
 * being as large as the room left. A larger initial old space leaves room: measured on the repair
 * bench (2 GiB rebuilt), server CPU per MB rebuilt 26.4 / 22.2 → 14.1 / 15.5 ms and throughput
 * 58 / 67 → 98 / 90 MB/s; on 64 MiB PUTs, storage mark-compacts 46 → 3 in 6 s and their CPU per
 * MiB 4.5 → 3.5 ms. The gateway too: its GETs receive every shard byte into fresh socket Buffers,
 * and it ran ~3 mark-compacts a second at 150 MB/s; with the flag its CPU per MiB fell 3.27 / 3.23
 * → 2.70 / 2.62 ms on GETs and 6.23 / 6.41 → 5.64 / 6.05 on PUTs (64 MiB, 8 streams, interleaved),
 * while its peak RSS stayed within the bench's bounds (512 MiB stream 200 / 194, 1,000 trickling
 * uploads 233 / 243, 200 stalled GETs 208 / 225 MiB; 198 / 252 / 204 before).
 *
 * The namespace too: V8 counts Buffer memory allocated since the last mark-compact against the old
 * generation's limit, and a small object's commit brings its bytes in Buffers several times over
 * (the request body, their decoded copy, the value-log entry). On 4 KiB PUTs at 32 clients its
 * 8 MB heap ran a mark-compact every ~300 ms ("Start (task): 8MB / 31MB"), V8's marking threads
 * taking ~0.045 ms of CPU per PUT besides the main thread's; with the flag, one every ~15 s. Four
 * KiB PUTs at 256 clients, interleaved pairs: 2,836 / 2,817 / 3,198 → 3,106 / 3,463 / 3,398 ops/s,
 * the namespace's user CPU per PUT 0.149 / 0.165 / 0.138 → 0.132 / 0.123 / 0.121 ms; 4 KiB GETs
 * unchanged (the first of each pair was the faster, whichever it was).
 *
 * The gateway also runs without V8's allocation-site pretenuring. Large transfers keep request,
 * stream and socket objects alive for seconds, so V8 learns to allocate what those sites make
 * straight into the old generation, and it kept doing so for the short-lived small requests that
 * came after: once 32 objects of 64 MiB had been written and read, every 4 KiB PUT at 32 clients
 * cost the gateway ~20% more CPU (its CPU per PUT over the load generator's, five runs each:
 * 3.50-3.83 after large objects, 3.03-3.16 on a fresh cluster), its old generation grew by ~1 MB a
 * scavenge, scavenges took ~5.5 ms instead of ~1.5-2, and full mark-compacts came every few
 * seconds. Without pretenuring the ratio after large objects was 2.90-2.94 (three runs), the heap
 * stayed flat, and the large transfers' own CPU per MiB did not change (3.18 / 3.43 vs 3.23 /
 * 3.14 ms). This is what slowed every full bench run's small-object phases (they follow `large`):
 * 4 KiB PUTs at 32 clients made 846-1,540 ops/s there, against 1,800-2,200 in runs of `small`
 * alone, and 2,198 in the first full run with the flag.
 */
const SERVICE_NODE_FLAGS: Record<string, string[]> = {
  'storage-node/main.ts': ['--initial-old-space-size=64'],
  'repair/main.ts': ['--initial-old-space-size=64'],
  'namespace/main.ts': ['--initial-old-space-size=64'],
  'gateway/main.ts': ['--initial-old-space-size=64', '--no-allocation-site-pretenuring'],
};

/**
 * Environment for one kind of service, under whatever the launcher's own environment sets. glibc
 * serves allocations of 128 KiB and more (every 256 KiB block a storage node frames, stages or
 * rebuilds) with fresh mmaps, or trims freed heap back to the kernel, so most such Buffers cost
 * 64 page faults before their first byte is written: a rebuilt block's copy into its frame ran at
 * ~2 GB/s, the largest single cost of the storage process on the repair bench after CRC32C. A
 * 4 MiB mmap threshold and a 128 MiB trim threshold keep that memory in the process for reuse:
 * repair bench 188 / 182 → 211 / 200 MB/s with the variables set for every process, and 182 / 158 →
 * 193 / 175 MB/s (CPU per MB rebuilt 6.22 / 7.15 → 5.48 / 7.03 ms) for the storage nodes alone,
 * builds alternated. The memory kept is bounded by the trim threshold above the peak.
 */
const SERVICE_ENV: Record<string, Record<string, string>> = {
  'storage-node/main.ts': { MALLOC_MMAP_THRESHOLD_: String(4 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(128 * 1024 * 1024) },
};

export interface ClusterOptions {
  dataDir: string;
  host?: string;
  /** Gateway port; 0 picks a free one. */
  port?: number;
  accessKeyId: string;
  secretAccessKey: string;
  nodes?: number;
  /** Storage nodes (disks) served by one storage process (default 1: a process per node, each killable alone). */
  nodesPerProcess?: number;
  k?: number;
  m?: number;
  blockSize?: number;
  segmentSize?: number;
  /** Objects of at most this many bytes are kept in the namespace, not erasure-coded (gateway default: k × 4 KiB; 0 never). */
  inlineMax?: number;
  downAfter?: string;
  /** How long a storage node may stall a shard read or write before the gateway gives up on it (e.g. "10s"). */
  shardTimeout?: string;
  /** Domain(s), comma-separated, served virtual-hosted style: Host `<bucket>.<domain>` (e.g. "s3.localhost"). */
  domain?: string;
  /** Origins browsers may call the gateway from (CORS), comma-separated; the gateway defaults to "*". */
  corsOrigins?: string;
  /** Echo every service's log lines to this process's stderr, prefixed with the service name. */
  echoLogs?: boolean;
  /** Repair service settings (durations like "1h", rates like "100MB"); unset ones take the service's defaults. */
  repair?: RepairOptions;
  /** The secret services sign internal requests with (≥ 32 bytes); default: `<data-dir>/cluster-secret`, made if missing. */
  clusterSecret?: string;
  /** Serve S3 over HTTPS with this certificate and key (PEM file paths). */
  tls?: { certFile: string; keyFile: string };
}

export interface RepairOptions {
  /** Segment repairers in parallel (default 2). */
  workers?: number;
  /** Byte-rate limit on repair reads plus writes, e.g. "100MB" (per second) or "unlimited". */
  rate?: string;
  /** Time between scrub passes over every node (default 24h). */
  scrubInterval?: string;
  /** Time between inventory audits of each node (default 1h; a restarted node is audited at once). */
  auditInterval?: string;
  /** How long an unreferenced shard stays before GC deletes it (default 1h). */
  gcGrace?: string;
  /** Age after which a shard no record references counts as an orphan (default 1h). */
  orphanGrace?: string;
  /** How often idle repair scanners look for new work (default 2s). */
  interval?: string;
}

/** Written to `<data-dir>/cluster.json` whenever a service (re)starts, so `npm run admin` finds the services. */
export interface ClusterManifest {
  services: Record<string, { url: string; pid: number }>;
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  ready: ReadyInfo;
}

export class Cluster {
  readonly services = new Map<string, ServiceProcess>();
  private readonly logs: WriteStream[] = [];
  /** Every process ever spawned, ready or not, so that nothing outlives a failed start. */
  readonly children = new Set<ChildProcess>();
  namespaceUrl = '';
  /** Storage processes by service name, and the node ids each serves. */
  private readonly storageHosts = new Map<string, string[]>();
  private manifestWrite: Promise<void> = Promise.resolve();
  private secretText = '';
  private secret: ClusterSecret | undefined;

  constructor(readonly opts: ClusterOptions) {}

  get endpoint(): string {
    return this.require('gateway').ready.url;
  }

  get nodeIds(): string[] {
    return Array.from({ length: this.opts.nodes ?? 6 }, (_, i) => `node-${i + 1}`);
  }

  /** What clients of the internal services (tests, tools) sign with. */
  get clusterSecret(): ClusterSecret {
    if (!this.secret) throw new Error('the cluster has not started');
    return this.secret;
  }

  async start(): Promise<void> {
    await mkdir(path.join(this.opts.dataDir, 'logs'), { recursive: true });
    this.secretText = this.opts.clusterSecret ?? (await loadOrCreateSecretFile(this.opts.dataDir));
    this.secret = ClusterSecret.parse(this.secretText);
    await this.startNamespace();
    await Promise.all(this.storagePlan().map(([name, ids]) => (ids.length === 1 && name === ids[0] ? this.startNode(name) : this.startStorageHost(name, ids))));
    await Promise.all([this.startGateway(), this.startRepair()]);
  }

  /** The storage processes to start: a node alone keeps its id as service name, a group is "storage-<n>". */
  private storagePlan(): [string, string[]][] {
    const perProcess = Math.max(1, this.opts.nodesPerProcess ?? 1);
    const plan: [string, string[]][] = [];
    for (let i = 0; i < this.nodeIds.length; i += perProcess) {
      const ids = this.nodeIds.slice(i, i + perProcess);
      plan.push([ids.length === 1 ? ids[0]! : `storage-${plan.length + 1}`, ids]);
    }
    return plan;
  }

  /**
   * Starts the namespace on the cluster's data dir. Once it has run, a restart (after `kill('namespace')`)
   * keeps its port, so the other services, which know it only by URL, reconnect by themselves.
   */
  async startNamespace(): Promise<ServiceProcess> {
    const port = this.namespaceUrl ? new URL(this.namespaceUrl).port : '0';
    const ns = await this.spawnService('namespace', 'namespace/main.ts', [
      '--data-dir', path.join(this.opts.dataDir, 'namespace'),
      '--host', this.host,
      '--port', port,
      ...(this.opts.downAfter ? ['--down-after', this.opts.downAfter] : []),
    ]);
    this.namespaceUrl = ns.ready.url;
    return ns;
  }

  /** `extraArgs` are more storage-node flags for this start only (the chaos harness restarts a node with a quota). */
  startNode(nodeId: string, extraArgs: string[] = []): Promise<ServiceProcess> {
    this.storageHosts.set(nodeId, [nodeId]);
    return this.spawnService(nodeId, 'storage-node/main.ts', [
      '--node-id', nodeId,
      '--data-dir', this.nodeDataDir(nodeId),
      '--host', this.host,
      '--namespace', this.namespaceUrl,
      ...extraArgs,
    ]);
  }

  /** One storage process serving several nodes' disks. */
  startStorageHost(name: string, nodeIds: string[]): Promise<ServiceProcess> {
    this.storageHosts.set(name, nodeIds);
    return this.spawnService(name, 'storage-node/main.ts', [
      '--disks', nodeIds.map((id) => `${id}=${this.nodeDataDir(id)}`).join(','),
      '--host', this.host,
      '--namespace', this.namespaceUrl,
    ]);
  }

  nodeDataDir(nodeId: string): string {
    return path.join(this.opts.dataDir, 'nodes', nodeId);
  }

  /** Whether a service is a storage process (serving one node or several). */
  isStorageService(name: string): boolean {
    return this.storageHosts.has(name);
  }

  /** The service (process) serving a node, if one is running. */
  storageServiceOf(nodeId: string): string | undefined {
    for (const [name, ids] of this.storageHosts) if (ids.includes(nodeId) && this.services.has(name)) return name;
    return undefined;
  }

  /**
   * Takes one node down with `signal`. A node sharing its process with others goes down with the
   * process, which then comes back serving the others only, so just this node stays down
   * (as when one disk of a machine dies); `startNode` brings it back in a process of its own.
   */
  async killNode(nodeId: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const name = this.storageServiceOf(nodeId);
    if (!name) throw new Error(`storage node ${nodeId} is not running`);
    const rest = this.storageHosts.get(name)!.filter((id) => id !== nodeId);
    await this.kill(name, signal);
    this.storageHosts.delete(name);
    if (rest.length > 0) await this.startStorageHost(name, rest);
  }

  /**
   * A new disk `nodeId` in the machine of `neighbour`: that node's storage process stops and comes
   * back serving the new disk too (a process serving one node becomes a group "storage-<nodeId>").
   */
  async addNodeBeside(nodeId: string, neighbour: string): Promise<void> {
    const name = this.storageServiceOf(neighbour);
    if (!name) throw new Error(`storage node ${neighbour} is not running`);
    const ids = [...this.storageHosts.get(name)!, nodeId];
    await this.stopGracefully(name);
    this.storageHosts.delete(name);
    await this.startStorageHost(name === neighbour ? `storage-${neighbour}` : name, ids);
  }

  /** More gateways over the same namespace and nodes take another `name` and usually port 0. */
  startGateway(name = 'gateway', port = this.opts.port ?? 9000): Promise<ServiceProcess> {
    const o = this.opts;
    return this.spawnService(name, 'gateway/main.ts', [
      '--host', this.host,
      '--port', String(port),
      '--namespace', this.namespaceUrl,
      '--access-key-id', o.accessKeyId,
      ...(o.k ? ['--k', String(o.k)] : []),
      ...(o.m ? ['--m', String(o.m)] : []),
      ...(o.blockSize ? ['--block-size', String(o.blockSize)] : []),
      ...(o.segmentSize ? ['--segment-size', String(o.segmentSize)] : []),
      ...(o.inlineMax !== undefined ? ['--inline-max', String(o.inlineMax)] : []),
      ...(o.shardTimeout ? ['--shard-timeout', o.shardTimeout] : []),
      ...(o.domain ? ['--domain', o.domain] : []),
      ...(o.corsOrigins ? ['--cors-origins', o.corsOrigins] : []),
      // Services run in the repository root: paths are resolved against the launcher's directory first.
      ...(o.tls ? ['--tls-cert', path.resolve(o.tls.certFile), '--tls-key', path.resolve(o.tls.keyFile)] : []),
    ], { CAIRN_SECRET_ACCESS_KEY: o.secretAccessKey }); // never on a command line, where `ps` shows it
  }

  /** `overrides` replace the cluster's repair options for this start only (tests restart repair with another rate). */
  startRepair(overrides: RepairOptions = {}): Promise<ServiceProcess> {
    const r = { ...this.opts.repair, ...overrides };
    return this.spawnService('repair', 'repair/main.ts', [
      '--namespace', this.namespaceUrl,
      '--host', this.host,
      ...(r.workers !== undefined ? ['--workers', String(r.workers)] : []),
      ...(r.rate ? ['--rate', r.rate] : []),
      ...(r.scrubInterval ? ['--scrub-interval', r.scrubInterval] : []),
      ...(r.auditInterval ? ['--audit-interval', r.auditInterval] : []),
      ...(r.gcGrace ? ['--gc-grace', r.gcGrace] : []),
      ...(r.orphanGrace ? ['--orphan-grace', r.orphanGrace] : []),
      ...(r.interval ? ['--interval', r.interval] : []),
      ...(this.opts.shardTimeout ? ['--shard-timeout', this.opts.shardTimeout] : []),
    ]);
  }

  /** Sends `signal` to one service and waits for its process to exit. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const service = this.require(name);
    this.services.delete(name);
    if (service.child.exitCode !== null || service.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => service.child.once('exit', () => resolve()));
    service.child.kill(signal);
    await exited;
  }

  /** Stops everything: the gateway and repair first so no new writes start, the namespace last. */
  async stop(): Promise<void> {
    const storage = [...this.storageHosts.keys()];
    const order = ['gateway', 'repair', ...storage, 'namespace'];
    const extraGateways = [...this.services.keys()].filter((n) => !order.includes(n));
    for (const group of [[...order.slice(0, 2), ...extraGateways], storage, order.slice(-1)]) {
      await Promise.all(group.filter((n) => this.services.has(n)).map((n) => this.stopGracefully(n)));
    }
    const logs = this.logs.splice(0);
    await Promise.all(logs.map((log) => new Promise<void>((resolve) => log.end(() => resolve()))));
  }

  private async stopGracefully(name: string): Promise<void> {
    const service = this.require(name);
    const timer = setTimeout(() => service.child.kill('SIGKILL'), 15_000);
    await this.kill(name, 'SIGTERM');
    clearTimeout(timer);
  }

  /** Best effort: the manifest is a convenience for the admin command, never needed by a service. */
  private writeManifest(): void {
    const manifest: ClusterManifest = { services: {} };
    for (const [name, s] of this.services) manifest.services[name] = { url: s.ready.url, pid: s.ready.pid };
    const text = JSON.stringify(manifest, null, 2) + '\n';
    // Chained so that two services becoming ready at once cannot interleave their writes.
    this.manifestWrite = this.manifestWrite.then(() => writeFile(path.join(this.opts.dataDir, 'cluster.json'), text)).catch(() => undefined);
  }

  private get host(): string {
    return this.opts.host ?? '127.0.0.1';
  }

  private require(name: string): ServiceProcess {
    const service = this.services.get(name);
    if (!service) throw new Error(`service ${name} is not running`);
    return service;
  }

  private spawnService(name: string, entry: string, args: string[], env: Record<string, string> = {}): Promise<ServiceProcess> {
    // CAIRN_NODE_ARGS adds node flags to every service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" (NODE_OPTIONS refuses --cpu-prof).
    const nodeArgs = (process.env.CAIRN_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const serviceFlags = SERVICE_NODE_FLAGS[entry] ?? [];
    const child = spawn(process.execPath, ['--no-warnings', ...serviceFlags, ...nodeArgs, ...entryArgs(entry), ...args], {
      cwd: REPO_ROOT,
      env: { ...SERVICE_ENV[entry], ...process.env, ...env, [CLUSTER_SECRET_ENV]: this.secretText, [WATCH_PARENT_ENV]: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a terminal's Ctrl-C reaches only the launcher, which stops services in order.
      detached: true,
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    const log = createWriteStream(path.join(this.opts.dataDir, 'logs', `${name}.log`), { flags: 'a' });
    this.logs.push(log);
    child.stderr?.pipe(log, { end: false });
    if (this.opts.echoLogs) {
      createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`${name.padEnd(9)} | ${line}\n`));
    }
    return new Promise<ServiceProcess>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${name} did not become ready within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.once('error', fail);
      const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null): void =>
        fail(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready; see ${log.path}`));
      child.once('exit', onEarlyExit);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const ready = parseReadyLine(line);
        if (!ready) return;
        clearTimeout(timer);
        child.removeListener('exit', onEarlyExit);
        child.once('exit', (code, signal) => {
          if (this.services.get(name)?.child === child) {
            this.services.delete(name);
            process.stderr.write(`cairn: ${name} exited unexpectedly (code ${code}, signal ${signal})\n`);
          }
        });
        const service = { name, child, ready };
        this.services.set(name, service);
        this.writeManifest();
        resolve(service);
      });
    });
  }
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const cluster = new Cluster(opts);
  try {
    await cluster.start();
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    for (const child of cluster.children) child.kill('SIGKILL');
    throw err;
  }
  return cluster;
}
