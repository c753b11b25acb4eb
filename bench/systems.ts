// The two systems under test, seen the same way by every workload: an S3 endpoint with
// credentials, and the OS processes behind it (for peak RSS, CPU and disk-write accounting).
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cluster, type ClusterOptions, type RepairOptions } from '../deploy/cluster.js';
import { NamespaceClient } from '../namespace/client.js';
import { onCleanup, trackDir, trackProcesses } from './cleanup.js';
import { parseSeries, putWaitCounts, type PutWaitCounts } from './put-waits.js';
import type { Credentials } from './s3/sigv4.js';

export interface System {
  name: 'cairn' | 's3rver' | 'floor';
  endpoint: string;
  creds: Credentials;
  /** The process that speaks S3 (Cairn's gateway, or s3rver). */
  frontPid(): number;
  /** Every process of the system. */
  pids(): number[];
  /** The processes that put stored bytes on disk (Cairn: storage nodes and namespace). */
  writerPids(): number[];
}

export const REGION = 'us-east-1';

/** Where bench temp dirs go; the same filesystem the machine-limit disk test measures. */
export async function benchTempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `cairn-bench-${prefix}-`));
}

export interface CairnStartOptions {
  nodes: number;
  /** Storage nodes (disks) per storage process. */
  nodesPerProcess: number;
  k: number;
  m: number;
  downAfter?: string;
  repair?: RepairOptions;
  /** Runs on the fresh data dir before any service starts (e.g. to bulk-load the namespace). */
  prepare?: (dataDir: string) => Promise<void>;
  log: (line: string) => void;
}

/**
 * The user every Cairn workload acts as, as S3 clients do: root's requests skip authorization
 * (no bucket record, no policy), so measuring as root would hide what a user's requests cost.
 */
export const BENCH_USER = 'bench';

/** The cluster's root credentials: the bench's own setup only, never a workload's. */
const ROOT_CREDS: Credentials = { accessKeyId: 'bench', secretAccessKey: 'bench-secret-0123456789', region: REGION };

export class CairnSystem implements System {
  readonly name = 'cairn' as const;
  /** BENCH_USER's key once the cluster is up (root's until then). */
  creds: Credentials = ROOT_CREDS;
  private stopFn: (() => Promise<void>) | undefined;
  private namespaceClient: NamespaceClient | undefined;

  private constructor(readonly cluster: Cluster, readonly dataDir: string) {}

  static async start(opts: CairnStartOptions): Promise<CairnSystem> {
    const dataDir = await benchTempDir('cairn');
    const removeDir = trackDir(dataDir);
    const unregisterDir = onCleanup(`remove ${dataDir}`, removeDir);
    await opts.prepare?.(dataDir);
    const clusterOpts: ClusterOptions = {
      dataDir,
      port: 0,
      accessKeyId: ROOT_CREDS.accessKeyId,
      secretAccessKey: ROOT_CREDS.secretAccessKey,
      nodes: opts.nodes,
      nodesPerProcess: opts.nodesPerProcess,
      k: opts.k,
      m: opts.m,
      downAfter: opts.downAfter,
      repair: opts.repair,
    };
    const t0 = performance.now();
    const cluster = new Cluster(clusterOpts);
    // Every child the cluster ever spawns (restarted nodes too) is killed if the bench dies.
    trackProcesses(() => cluster.children);
    const system = new CairnSystem(cluster, dataDir);
    const unregisterCluster = onCleanup('stop Cairn cluster', async () => {
      await system.namespaceClient?.close().catch(() => undefined);
      await cluster.stop().catch(() => undefined);
      for (const child of cluster.children) child.kill('SIGKILL');
    });
    system.stopFn = async () => {
      await unregisterCluster();
      await unregisterDir();
    };
    try {
      await cluster.start();
      await system.actAsUser();
    } catch (err) {
      await system.stop();
      throw err;
    }
    opts.log(`Cairn cluster up in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${opts.nodes} nodes (${opts.nodesPerProcess} per storage process), k=${opts.k} m=${opts.m}, gateway ${cluster.endpoint}, data ${dataDir}; requests as user "${BENCH_USER}"`);
    return system;
  }

  get endpoint(): string {
    return this.cluster.endpoint;
  }

  /** A new key of BENCH_USER (made if missing, e.g. not by a fixture) becomes the workloads' credentials. */
  private async actAsUser(): Promise<void> {
    if ((await this.namespace.getUserOrNull(BENCH_USER)) === null) await this.namespace.createUser(BENCH_USER);
    const key = await this.namespace.createAccessKey(BENCH_USER);
    this.creds = { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey, region: REGION };
  }

  get namespace(): NamespaceClient {
    this.namespaceClient ??= new NamespaceClient(this.cluster.namespaceUrl, { secret: this.cluster.clusterSecret, connections: 64 });
    return this.namespaceClient;
  }

  get repairUrl(): string | undefined {
    return this.cluster.services.get('repair')?.ready.url;
  }

  /** Starts (or restarts) a storage node, in a process of its own. */
  async startNode(nodeId: string): Promise<void> {
    await this.cluster.startNode(nodeId);
  }

  /** A new disk in the same storage process as `neighbour` (which restarts to serve it). */
  async addNodeBeside(nodeId: string, neighbour: string): Promise<void> {
    await this.cluster.addNodeBeside(nodeId, neighbour);
  }

  /** Takes one storage node down (its process, or its disk out of a shared process). */
  async killNode(nodeId: string): Promise<void> {
    await this.cluster.killNode(nodeId, 'SIGKILL');
  }

  /** A fresh gateway process (new port), e.g. for a clean peak-RSS baseline. */
  async restartGateway(): Promise<void> {
    const pid = this.pidOf('gateway');
    const force = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 10_000);
    await this.cluster.kill('gateway', 'SIGTERM');
    clearTimeout(force);
    await this.cluster.startGateway('gateway', 0);
  }

  nodeDataDir(nodeId: string): string {
    return this.cluster.nodeDataDir(nodeId);
  }

  frontPid(): number {
    return this.pidOf('gateway');
  }

  pids(): number[] {
    return [...this.cluster.services.values()].map((s) => s.ready.pid);
  }

  writerPids(): number[] {
    return [...this.cluster.services.entries()].filter(([name]) => name === 'namespace' || this.cluster.isStorageService(name)).map(([, s]) => s.ready.pid);
  }

  pidOf(service: string): number {
    const s = this.cluster.services.get(service);
    if (!s) throw new Error(`Cairn service ${service} is not running`);
    return s.ready.pid;
  }

  /** The gateway's Prometheus counters, summed over labels. */
  async gatewayMetrics(): Promise<Map<string, number>> {
    return parsePrometheus(await metricsText(`${this.endpoint}/-/metrics`));
  }

  /** Where small PUTs wait (bench/put-waits.ts), as the gateway's and the namespace's metrics count it now. */
  async putWaitCounts(): Promise<PutWaitCounts> {
    const [gateway, namespace] = await Promise.all([metricsText(`${this.endpoint}/-/metrics`), metricsText(`${this.cluster.namespaceUrl}/metrics`)]);
    return putWaitCounts(parseSeries(gateway), parseSeries(namespace));
  }

  async stop(): Promise<void> {
    await this.stopFn?.();
    this.stopFn = undefined;
  }
}

async function metricsText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

/** name → value summed over every label set; a declared metric with no samples yet is 0. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [, name] of text.matchAll(/^# TYPE (\S+) (?:counter|gauge)/gm)) out.set(name!, 0);
  for (const [series, value] of parseSeries(text)) {
    const name = series.split('{', 1)[0]!;
    out.set(name, (out.get(name) ?? 0) + value);
  }
  return out;
}
