// The inventory audit. The scrubber checks the shards a node HAS; this checks the shards a node
// SHOULD have: a file lost from a live node (a replaced disk, a crash that ate a file, an operator's
// rm) is otherwise noticed only if a GET happens to need it, and a lost parity shard never is.
// For each up node it walks the node's reverse index in the namespace and the node's own listing
// side by side (both in shard-id order, only ids cross the network) and reports every referenced
// shard the node does not hold to the durable repair queue. A node is audited as soon as it comes
// back with a new boot id (a new process may have come up on an empty or older disk), and then
// every --audit-interval.
import type { Logger } from '../common/log.js';
import type { NodeRecord, ShardRef } from '../namespace/types.js';
import type { NodeView } from './cluster-view.js';
import { NAMESPACE_PAGE, type RepairNamespace, type RepairNodeClient } from './deps.js';
import { damageReportOf } from './refs.js';
import type { Worker, WorkerProgress, WorkerStats } from './worker.js';

/** Node listing pages read per step: a node full of unreferenced shards cannot make one step unbounded. */
const MAX_LIST_PAGES_PER_STEP = 64;
const LIST_PAGE = 1000;
const HEAD_CONCURRENCY = 8;
const MAX_WAIT_MS = 60_000;
/**
 * The same boot of a node whose audit failed (most often it is down but not yet declared down) is
 * audited again no sooner than this. Retried at once, a dead node's audit spun: 2,000 failed
 * attempts in 3 s, each a namespace call and a refused connection, taking a core from the reads
 * that were decoding around that node.
 */
export const RETRY_AFTER_FAILURE_MS = 5_000;

interface Audit {
  bootId: string | undefined;
  startedAt: number;
  /** Reverse-index cursor: refs up to this id are done. */
  after?: string;
  /** Node-listing cursor, and the ids already listed past `after`. */
  listAfter?: string;
  listEnded: boolean;
  listed: string[];
  checked: number;
  missing: number;
}

interface NodeHistory {
  bootId: string | undefined;
  finishedAt: number;
  checked: number;
  missing: number;
}

export class InventoryAuditor implements Worker {
  readonly name = 'audit';
  private readonly audits = new Map<string, Audit>();
  private readonly history = new Map<string, NodeHistory>();
  /** The last failed audit of a node, and which boot of it that was. */
  private readonly failures = new Map<string, { bootId: string | undefined; at: number }>();
  private missingFound = 0;

  constructor(
    private readonly namespace: RepairNamespace,
    private readonly view: NodeView,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  async tick(): Promise<number> {
    await this.view.refresh(true);
    const up = this.view.list().filter((n) => n.state === 'up');
    for (const id of this.audits.keys()) if (!up.some((n) => n.id === id)) this.audits.delete(id);
    for (const node of up) if (!this.audits.has(node.id) && this.isDue(node)) this.begin(node);
    if (this.audits.size === 0) return this.untilNextDue(up);
    await Promise.all([...this.audits.keys()].map((id) => this.step(id)));
    return 0;
  }

  progress(): WorkerProgress {
    const nodes: Record<string, unknown> = {};
    for (const [id, h] of this.history) nodes[id] = { lastAudit: new Date(h.finishedAt).toISOString(), bootId: h.bootId, checked: h.checked, missing: h.missing };
    for (const [id, a] of this.audits) nodes[id] = { ...(nodes[id] as object | undefined), auditing: { checked: a.checked, missing: a.missing } };
    return this.stats.snapshot(this.audits.size, { nodes, missingFound: this.missingFound });
  }

  private isDue(node: NodeRecord): boolean {
    const failed = this.failures.get(node.id);
    if (failed && failed.bootId === node.bootId && Date.now() - failed.at < RETRY_AFTER_FAILURE_MS) return false;
    const last = this.history.get(node.id);
    return !last || last.bootId !== node.bootId || Date.now() - last.finishedAt >= this.intervalMs;
  }

  private untilNextDue(up: NodeRecord[]): number {
    const next = Math.min(...up.map((n) => (this.history.get(n.id)?.finishedAt ?? 0) + this.intervalMs));
    // A restarted node (new boot id) must be noticed within seconds, not at the next interval.
    return Math.max(250, Math.min(MAX_WAIT_MS, 2_000, next - Date.now()));
  }

  private begin(node: NodeRecord): void {
    this.audits.set(node.id, { bootId: node.bootId, startedAt: Date.now(), listEnded: false, listed: [], checked: 0, missing: 0 });
  }

  /** One page of the node's reverse index against its listing. A failure abandons the audit (retried after RETRY_AFTER_FAILURE_MS). */
  private async step(nodeId: string): Promise<void> {
    const audit = this.audits.get(nodeId)!;
    const client = this.view.client(nodeId);
    try {
      if (!client) throw new Error('node is not in the node list');
      const page = await this.namespace.shardsOnNode(nodeId, audit.after, NAMESPACE_PAGE);
      if (page.refs.length === 0) return this.finish(nodeId, audit);
      const held = await this.listThrough(client, audit, page.refs[page.refs.length - 1]!.shardId);
      // Only refs the listing has reached can be judged in this step.
      const judged = page.refs.filter((r) => audit.listEnded || r.shardId <= held.reached);
      const absent = judged.filter((r) => !held.ids.has(r.shardId));
      await this.reportMissing(nodeId, client, audit, absent);
      audit.checked += judged.length;
      this.stats.addDone(judged.length);
      audit.after = judged.length > 0 ? judged[judged.length - 1]!.shardId : audit.after;
      if (page.next === undefined && judged.length === page.refs.length) this.finish(nodeId, audit);
    } catch (err) {
      this.log.warn(`inventory audit of ${nodeId} failed; it is retried`, { reason: err instanceof Error ? err.message : String(err) });
      this.stats.addFailed();
      this.audits.delete(nodeId);
      this.failures.set(nodeId, { bootId: audit.bootId, at: Date.now() });
    }
  }

  /**
   * The node's ids after the audit cursor up to `last` (or as far as the page budget reaches). Ids
   * listed beyond `last` are kept for the next step, so every id is listed once per audit.
   */
  private async listThrough(client: RepairNodeClient, audit: Audit, last: string): Promise<{ ids: Set<string>; reached: string }> {
    for (let pages = 0; !audit.listEnded && pages < MAX_LIST_PAGES_PER_STEP && !(audit.listed.length > 0 && audit.listed[audit.listed.length - 1]! >= last); pages++) {
      const page = await client.listShards(audit.listAfter, LIST_PAGE);
      audit.listed.push(...page.shards.map((s) => s.id));
      if (page.shards.length > 0) audit.listAfter = page.shards[page.shards.length - 1]!.id;
      if (page.next === undefined || page.shards.length === 0) audit.listEnded = true;
    }
    const reached = audit.listed.length > 0 ? audit.listed[audit.listed.length - 1]! : '';
    const beyond = audit.listed.findIndex((id) => id > last);
    const cut = beyond === -1 ? audit.listed.length : beyond;
    const ids = new Set(audit.listed.slice(0, cut));
    audit.listed = audit.listed.slice(cut);
    return { ids, reached: audit.listEnded ? last : reached };
  }

  /** Confirms each absent shard with a HEAD (the listing is a snapshot) and queues its segment's repair. */
  private async reportMissing(nodeId: string, client: RepairNodeClient, audit: Audit, absent: ShardRef[]): Promise<void> {
    const confirmed: ShardRef[] = [];
    for (let i = 0; i < absent.length; i += HEAD_CONCURRENCY) {
      const batch = absent.slice(i, i + HEAD_CONCURRENCY);
      const heads = await Promise.all(batch.map((r) => client.headShard(r.shardId)));
      batch.forEach((r, j) => heads[j] === null && confirmed.push(r));
    }
    if (confirmed.length === 0) return;
    for (const ref of confirmed.slice(0, 3)) this.log.warn('audit: a referenced shard is missing from its node', { node: nodeId, shard: ref.shardId, object: `${ref.bucket}/${ref.key}`, segment: ref.segment, index: ref.index });
    if (confirmed.length > 3) this.log.warn(`audit: ${confirmed.length - 3} more referenced shards are missing from ${nodeId}`);
    await this.namespace.reportDamage(confirmed.map((r) => damageReportOf(r, 'missing')));
    audit.missing += confirmed.length;
    this.missingFound += confirmed.length;
  }

  private finish(nodeId: string, audit: Audit): void {
    this.audits.delete(nodeId);
    this.failures.delete(nodeId);
    this.history.set(nodeId, { bootId: audit.bootId, finishedAt: Date.now(), checked: audit.checked, missing: audit.missing });
    const seconds = (Date.now() - audit.startedAt) / 1000;
    const line = `inventory audit of ${nodeId} done`;
    const fields = { shards: audit.checked, missing: audit.missing, seconds };
    if (audit.missing > 0) this.log.warn(line, fields);
    else this.log.info(line, fields);
  }
}
