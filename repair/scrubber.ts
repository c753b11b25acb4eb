// The scrubber: once per --scrub-interval, every live storage node checks every block of every
// shard it holds against its CRC32C, locally and at the node's own scrub rate (POST /scrub, a
// bounded slice per call); no data crosses the network for healthy shards. Each corrupt shard is
// mapped to its object through the reverse index and reported to the namespace's durable repair
// queue, where the repairers pick it up like any other damage.
import type { Logger } from '../common/log.js';
import type { DamageReport, ObjectRecord } from '../namespace/types.js';
import { decodeBlockCrcs } from '../erasure/frames.js';
import { StorageNodeError } from '../storage-node/client.js';
import type { ScrubResponse } from '../storage-node/types.js';
import type { NodeView } from './cluster-view.js';
import { NAMESPACE_PAGE, type RepairNamespace } from './deps.js';
import { damageReportOf } from './refs.js';
import type { Worker, WorkerProgress, WorkerStats } from './worker.js';

/** Shards and bytes a node checks per call: a call returns within a few seconds at any sane scrub rate. */
const SCRUB_SLICE = { limit: 500, maxBytes: 64 * 1024 * 1024 };
/** Longest sleep between ticks, so the status stays fresh and a shortened interval takes effect. */
const MAX_WAIT_MS = 60_000;
const BUSY_RETRY_MS = 1000;
const FIRST_PASS_MAX_DELAY_MS = 3_600_000;

interface Pass {
  number: number;
  startedAt: number;
  /** node id → cursor; 'done' once the node's walk finished in this pass. */
  cursors: Map<string, string | undefined>;
  checked: number;
  bytes: number;
  corrupt: number;
}

export class Scrubber implements Worker {
  readonly name = 'scrub';
  private pass: Pass | undefined;
  private passes = 0;
  /**
   * The first pass waits a while after start (at most an hour): a repair process restarted in a
   * loop must not re-read every disk each time, yet a new cluster is scrubbed the same day.
   */
  private nextPassAt: number;
  private lastPass: { finishedAt: string; seconds: number; checked: number; bytes: number; corrupt: number } | undefined;
  private corruptFound = 0;
  /** Shards whose stored block CRCs differ from the record's (the integrity chain). */
  private chainBroken = 0;
  private reported = 0;

  constructor(
    private readonly namespace: RepairNamespace,
    private readonly view: NodeView,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly scrubIntervalMs: number,
  ) {
    this.nextPassAt = Date.now() + Math.min(scrubIntervalMs, FIRST_PASS_MAX_DELAY_MS);
  }

  async tick(): Promise<number> {
    const now = Date.now();
    if (!this.pass) {
      if (now < this.nextPassAt) return Math.min(MAX_WAIT_MS, this.nextPassAt - now);
      this.pass = { number: ++this.passes, startedAt: now, cursors: new Map(), checked: 0, bytes: 0, corrupt: 0 };
    }
    await this.view.refresh(true);
    const pass = this.pass;
    const nodes = this.view.list().filter((n) => n.state === 'up' && pass.cursors.get(n.id) !== DONE);
    if (nodes.length === 0) {
      this.finishPass(pass);
      return Math.min(MAX_WAIT_MS, Math.max(0, this.nextPassAt - Date.now()));
    }
    const busy = await Promise.all(nodes.map((n) => this.scrubSlice(pass, n.id)));
    // Nodes already scrubbing for someone else are asked again shortly, not in a tight loop.
    return busy.every(Boolean) ? BUSY_RETRY_MS : 0;
  }

  progress(): WorkerProgress {
    const pass = this.pass;
    const upNodes = this.view.list().filter((n) => n.state === 'up').length;
    const nodesLeft = pass ? upNodes - [...pass.cursors.values()].filter((c) => c === DONE).length : 0;
    return this.stats.snapshot(Math.max(0, nodesLeft), {
      pass: pass ? { number: pass.number, startedAt: new Date(pass.startedAt).toISOString(), checked: pass.checked, bytes: pass.bytes, corrupt: pass.corrupt } : null,
      lastPass: this.lastPass ?? null,
      nextPassAt: pass ? null : new Date(this.nextPassAt).toISOString(),
      corruptFound: this.corruptFound,
      chainBroken: this.chainBroken,
      reported: this.reported,
    });
  }

  /** Scrubs the node's next slice; true when the node was busy with another scrub. */
  private async scrubSlice(pass: Pass, nodeId: string): Promise<boolean> {
    const client = this.view.client(nodeId);
    if (!client) return false;
    let result: ScrubResponse;
    try {
      result = await client.scrub({ after: pass.cursors.get(nodeId), ...SCRUB_SLICE });
    } catch (err) {
      if (err instanceof StorageNodeError && err.code === 'Busy') return true;
      // A node that cannot scrub now (stopping, overloaded) is skipped for this pass, not retried in a loop.
      this.log.warn(`scrub of ${nodeId} failed; skipping it this pass`, { reason: err instanceof Error ? err.message : String(err) });
      pass.cursors.set(nodeId, DONE);
      return false;
    }
    pass.checked += result.checked;
    pass.bytes += result.bytes;
    this.stats.addDone(result.checked);
    this.stats.addBytes(result.bytes);
    // Reported before the cursor moves on: if reporting fails, the slice is scrubbed again.
    if (result.corrupt.length > 0) await this.report(pass, nodeId, result.corrupt.map((c) => c.id));
    if (result.crcs) await this.checkChain(nodeId, result.crcs);
    pass.cursors.set(nodeId, result.next ?? DONE);
    return false;
  }

  /** Maps corrupt shards to their segments and queues their repair durably in the namespace. */
  private async report(pass: Pass, nodeId: string, shardIds: string[]): Promise<void> {
    pass.corrupt += shardIds.length;
    this.corruptFound += shardIds.length;
    const refs = await this.namespace.lookupShardRefs(nodeId, shardIds);
    const reports: DamageReport[] = [];
    for (const ref of refs) {
      this.log.warn('scrub found a corrupt shard', { node: nodeId, shard: ref.shardId, object: `${ref.bucket}/${ref.key}`, segment: ref.segment, index: ref.index });
      reports.push(damageReportOf(ref, 'corrupt'));
    }
    const unreferenced = shardIds.length - refs.length;
    if (unreferenced > 0) this.log.info(`scrub: ${unreferenced} corrupt shards on ${nodeId} belong to no object; the orphan collector removes them`);
    if (reports.length > 0) {
      await this.namespace.reportDamage(reports);
      this.reported += reports.length;
    }
  }

  /**
   * The integrity chain: every data shard's stored block CRCs must be the ones the gateway recorded
   * when it proved them against the client's bytes. A block that was corrupted before its CRC was
   * computed verifies against its own CRC on the node, but not against the record.
   */
  private async checkChain(nodeId: string, crcs: Record<string, string>): Promise<void> {
    const ids = Object.keys(crcs);
    const records = new Map<string, ObjectRecord | null>();
    const reports: DamageReport[] = [];
    for (let i = 0; i < ids.length; i += NAMESPACE_PAGE) {
      for (const ref of await this.namespace.lookupShardRefs(nodeId, ids.slice(i, i + NAMESPACE_PAGE))) {
        if (ref.upload) continue; // a part's recorded CRCs move into its object's record: checked once the upload completes
        const name = `${ref.bucket}\u0000${ref.key}`;
        if (!records.has(name)) records.set(name, await this.namespace.getObjectOrNull(ref.bucket, ref.key));
        const record = records.get(name);
        const recorded = record?.versionId === ref.versionId ? record.segments[ref.segment]?.blockCrcs : undefined;
        if (!record || recorded === undefined || ref.index >= record.layout.k) continue;
        const k = record.layout.k;
        const expected = decodeBlockCrcs(recorded).filter((_, j) => j % k === ref.index);
        const stored = decodeBlockCrcs(crcs[ref.shardId]!);
        if (expected.length === stored.length && expected.every((crc, j) => crc === stored[j])) continue;
        this.chainBroken++;
        this.log.warn('scrub: a shard does not match the CRCs recorded at write time', { node: nodeId, shard: ref.shardId, object: `${ref.bucket}/${ref.key}` });
        reports.push({ bucket: ref.bucket, key: ref.key, versionId: ref.versionId, segment: ref.segment, shardIndex: ref.index, nodeId, reason: 'corrupt' });
      }
    }
    if (reports.length > 0) {
      await this.namespace.reportDamage(reports);
      this.reported += reports.length;
    }
  }

  private finishPass(pass: Pass): void {
    const seconds = (Date.now() - pass.startedAt) / 1000;
    this.lastPass = { finishedAt: new Date().toISOString(), seconds, checked: pass.checked, bytes: pass.bytes, corrupt: pass.corrupt };
    this.log.info(`scrub pass ${pass.number} done`, { shards: pass.checked, bytes: pass.bytes, corrupt: pass.corrupt, seconds });
    this.nextPassAt = pass.startedAt + this.scrubIntervalMs;
    this.pass = undefined;
  }
}

/** Marks a node finished for this pass; not a valid shard id, so never sent as a cursor. */
const DONE = '\u0000done';
