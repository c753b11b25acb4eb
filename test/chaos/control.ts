// Process-level control of the cluster under test: which storage nodes, gateways and the repair
// service are running, killing and restarting them, and the namespace view of the nodes. The
// bookkeeping here (which nodes are down or impaired) is what the fault gate reasons about.
import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { type Cluster } from '../../deploy/cluster.js';
import { NamespaceClient } from '../../namespace/client.js';
import type { NodeRecord } from '../../namespace/types.js';

const REGISTER_TIMEOUT_MS = 20_000;
const POLL_MS = 250;

export interface GatewayInfo {
  name: string;
  port: number;
  endpoint: string;
}

export interface Crash {
  name: string;
  at: number;
  code: number | null;
  signal: string | null;
}

const CRASH_RESTART_DELAY_MS = 1_000;

export class ClusterControl {
  /** Storage nodes that are not running (killed, or between stop and restart). */
  readonly downNodes = new Set<string>();
  /** Storage nodes running with a quota they have (nearly) reached. */
  readonly fullNodes = new Set<string>();
  /** Services that exited without the harness asking: each is a bug. */
  readonly crashes: Crash[] = [];
  readonly namespace: NamespaceClient;
  /** Set before the cluster is stopped at the end, when exits are expected. */
  closing = false;
  private readonly expectedExits = new WeakSet<ChildProcess>();

  constructor(
    readonly cluster: Cluster,
    readonly dataDir: string,
    readonly gateways: GatewayInfo[],
    private readonly now: () => number,
    private readonly log: (line: string) => void,
  ) {
    this.namespace = new NamespaceClient(cluster.namespaceUrl, { secret: cluster.clusterSecret, timeoutMs: 15_000 });
    for (const name of cluster.services.keys()) this.watch(name);
  }

  get nodeIds(): string[] {
    return this.cluster.nodeIds;
  }

  /** Nodes whose loss the gate counts against m: down, or under a quota (and so due for a restart). */
  impaired(): Map<string, string> {
    const out = new Map<string, string>();
    for (const id of this.fullNodes) out.set(id, 'quota');
    for (const id of this.downNodes) out.set(id, 'killed');
    return out;
  }

  /** Where shard files "lost" by the harness are put aside (outside every node's directory). */
  get hiddenDir(): string {
    return path.join(this.dataDir, 'chaos-hidden');
  }

  nodeDir(nodeId: string): string {
    return path.join(this.dataDir, 'nodes', nodeId);
  }

  isRunning(name: string): boolean {
    return this.cluster.services.has(name);
  }

  async killNode(nodeId: string, signal: NodeJS.Signals): Promise<void> {
    this.downNodes.add(nodeId);
    await this.kill(nodeId, signal);
  }

  /** Starts a node and waits until the namespace has its new URL, so gateways can reach it again. */
  async startNode(nodeId: string, extraArgs: string[] = []): Promise<void> {
    const service = await this.cluster.startNode(nodeId, extraArgs);
    this.watch(nodeId);
    await this.waitRegistered(nodeId, service.ready.url);
    this.downNodes.delete(nodeId);
  }

  /** SIGSTOP: the node hangs (no heartbeats, no answers) but keeps its connections open. */
  pauseNode(nodeId: string): void {
    this.downNodes.add(nodeId);
    this.cluster.services.get(nodeId)?.child.kill('SIGSTOP');
  }

  /** SIGCONT, then waits for its heartbeat to make it `up` again. */
  async resumeNode(nodeId: string): Promise<void> {
    const service = this.cluster.services.get(nodeId);
    if (!service) return;
    service.child.kill('SIGCONT');
    await this.waitRegistered(nodeId, service.ready.url);
    this.downNodes.delete(nodeId);
  }

  /** A replaced disk: the node keeps its identity but comes back without any shard. */
  async wipeShards(nodeId: string): Promise<void> {
    await rm(path.join(this.nodeDir(nodeId), 'shards'), { recursive: true, force: true });
  }

  async killGateway(name: string): Promise<void> {
    await this.kill(name, 'SIGKILL');
  }

  /** Restarts a gateway on its old port: clients keep their endpoint. */
  async startGateway(name: string): Promise<void> {
    const info = this.gateways.find((g) => g.name === name);
    if (!info) throw new Error(`unknown gateway ${name}`);
    await this.cluster.startGateway(name, info.port);
    this.watch(name);
  }

  repairUrl(): string | undefined {
    return this.cluster.services.get('repair')?.ready.url;
  }

  async killRepair(): Promise<void> {
    await this.kill('repair', 'SIGKILL');
  }

  async startRepair(): Promise<void> {
    await this.cluster.startRepair();
    this.watch('repair');
  }

  private async kill(name: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.cluster.services.get(name)?.child;
    if (child) this.expectedExits.add(child);
    await this.cluster.kill(name, signal);
  }

  /** Notices a service that dies on its own: records the crash and brings the service back. */
  private watch(name: string): void {
    const child = this.cluster.services.get(name)?.child;
    child?.once('exit', (code, signal) => {
      if (this.closing || this.expectedExits.has(child)) return;
      this.crashes.push({ name, at: this.now(), code, signal });
      this.log(`CRASH ${name} exited on its own (code ${code}, signal ${signal}); restarting it`);
      if (this.nodeIds.includes(name)) this.downNodes.add(name);
      setTimeout(() => void this.restart(name), CRASH_RESTART_DELAY_MS);
    });
  }

  private async restart(name: string): Promise<void> {
    if (this.closing || this.isRunning(name)) return;
    try {
      if (this.nodeIds.includes(name)) await this.startNode(name);
      else if (name === 'repair') await this.startRepair();
      else if (this.gateways.some((g) => g.name === name)) await this.startGateway(name);
    } catch (err) {
      this.log(`restarting ${name} after its crash failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async nodes(): Promise<Map<string, NodeRecord>> {
    return new Map((await this.namespace.listNodes()).map((n) => [n.id, n]));
  }

  private async waitRegistered(nodeId: string, url: string): Promise<void> {
    const deadline = Date.now() + REGISTER_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const node = await this.namespace.getNode(nodeId).catch(() => undefined);
      if (node?.url === url && node.state === 'up') return;
      await sleep(POLL_MS);
    }
    throw new Error(`${nodeId} did not re-register at ${url} within ${REGISTER_TIMEOUT_MS} ms`);
  }

  close(): Promise<void> {
    return this.namespace.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
