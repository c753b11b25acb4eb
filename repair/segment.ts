// Repairs one segment of one object version, or of one part of an upload in progress (the same
// rules: a part's segments become the object's when the upload completes, and must not reach it
// with fewer than k+m shards). Reads the record, decides which shards are bad (never written, on a
// lost node, reported and confirmed corrupt or missing) and which must move (on a draining node);
// writes replacements under NEW shard ids on nodes that hold nothing of the segment
// (copying a movable shard as is, rebuilding the rest from k healthy shards), then swaps the
// placements with one compare-and-swap. Everything is re-derived from the namespace each time, so
// running it twice, or after a crash half-way, is harmless: a finished swap leaves nothing to do,
// and an interrupted one leaves only unreferenced shards for the orphan collector.
import { decodeBlockCrcs } from '../erasure/frames.js';
import { randomBytes } from 'node:crypto';
import { sharedCodec } from '../erasure/codec.js';
import { shardDataLength, shardFramedLength, type Layout } from '../erasure/layout.js';
import { NotEnoughShardsError, ShardSourceError } from '../erasure/stream.js';
import type { Logger } from '../common/log.js';
import { NamespaceError } from '../namespace/client.js';
import type { NodeRecord, ReplaceShardsRequest, RepairReason, Segment } from '../namespace/types.js';
import { StorageNodeError } from '../storage-node/client.js';
import { isValidShardId } from '../storage-node/types.js';
import type { InflightShards, NodeView } from './cluster-view.js';
import type { RepairNamespace } from './deps.js';
import type { RepairItem } from './queue.js';
import type { TokenBucket } from './rate.js';
import { rebuildFramed } from '../erasure/rebuild.js';
import { framedBlocks, ShardUpload, SourceError, StallError } from './shard-io.js';

export interface SegmentRepairDeps {
  namespace: RepairNamespace;
  view: NodeView;
  limiter: TokenBucket;
  inflight: InflightShards;
  log: Logger;
  /** A node that makes no progress for this long fails its part of the repair. */
  stallTimeoutMs: number;
  /** Workers sharing the rate limit: a rebuild done by its target node is paced at its share. */
  workers: number;
}

export type RepairOutcome =
  | { kind: 'healthy' }
  | { kind: 'stale'; reason: string }
  | { kind: 'repaired'; rebuilt: number; copied: number; bytes: number; left: number }
  | { kind: 'conflict' }
  | { kind: 'unrecoverable'; readable: number; needed: number }
  | { kind: 'blocked'; reason: string };

/** ok: readable and staying; bad: to rebuild; move: readable, on a draining node; unsure: node suspect or not answering. */
type Health = 'ok' | 'bad' | 'move' | 'unsure';

/**
 * What is being repaired, read fresh from the namespace: an object version or a part. Both hold a
 * layout and segments; they differ in how they are read and in which compare-and-swap commits.
 */
interface Subject {
  layout: Layout;
  segments: Segment[];
  /** Leads every new shard id, so an id still says what it belongs to. */
  idPrefix: string;
  replace(request: ReplaceShardsRequest): Promise<unknown>;
}

interface Plan {
  subject: Subject;
  item: RepairItem;
  segment: Segment;
  layout: Layout;
  health: Health[];
  /** Segments one more loss away from unreadable skip the rate limit. */
  urgent: boolean;
}

interface Target {
  id: string;
}

interface Written {
  index: number;
  nodeId: string;
  shardId: string;
  bytes: number;
}

/** Candidates asked of the namespace beyond what is needed, so zones can be chosen among them. */
const ZONE_SPARE = 4;
const REPORTED: ReadonlySet<RepairReason> = new Set(['corrupt', 'missing', 'unreadable']);

export async function repairSegment(item: RepairItem, deps: SegmentRepairDeps, signal: AbortSignal): Promise<RepairOutcome> {
  const subject = item.part === undefined ? await loadObject(item, deps.namespace) : await loadPart(item, item.part, deps.namespace);
  if (typeof subject === 'string') return { kind: 'stale', reason: subject };
  const { layout } = subject;
  const segment = subject.segments[item.segment];
  if (!segment || segment.size === 0) return { kind: 'stale', reason: 'no such segment' };
  await deps.view.refresh();
  const health = await assess(segment, layout.k, item, deps);
  const plan: Plan = { subject, item, segment, layout, health, urgent: count(health, 'ok', 'move') <= layout.k };
  const bad = indicesOf(health, 'bad');
  const moves = indicesOf(health, 'move');
  if (bad.length === 0 && moves.length === 0) return { kind: 'healthy' };
  const readable = count(health, 'ok', 'move', 'unsure');
  if (bad.length > 0 && readable < plan.layout.k) return { kind: 'unrecoverable', readable, needed: plan.layout.k };
  const targets = assignTargets(plan, [...bad, ...moves], await chooseTargets(plan, bad.length + moves.length, deps));
  if (targets.size === 0) return { kind: 'blocked', reason: 'no node can take a shard of this segment' };
  const written = await writeReplacements(plan, targets, deps, signal);
  if (written.length === 0) return { kind: 'blocked', reason: 'no replacement shard could be written' };
  return commit(plan, written, bad.length + moves.length, deps);
}

/** The object version the item names, or why there is nothing to repair. */
async function loadObject(item: RepairItem, namespace: RepairNamespace): Promise<Subject | string> {
  const record = await namespace.getObjectOrNull(item.bucket, item.key).catch(goneIsNull);
  if (!record) return 'object deleted';
  if (record.versionId !== item.versionId) return 'object overwritten';
  const { layout, segments, versionId } = record;
  return { layout, segments, idPrefix: versionId, replace: (req: ReplaceShardsRequest) => namespace.replaceShards(record.bucket, record.key, req) };
}

/**
 * The part as it is now. A re-uploaded part is repaired as the new upload of that part number: the
 * item names a segment of the part, not one upload of it, and a re-upload racing the repair wins at
 * the compare-and-swap. A completed upload's segments are the object's now: its walk finds them.
 */
async function loadPart(item: RepairItem, partNumber: number, namespace: RepairNamespace): Promise<Subject | string> {
  const uploadId = item.versionId;
  const part = await namespace.getPartOrNull(uploadId, partNumber);
  if (!part) return 'upload completed or aborted';
  const { layout, segments } = part;
  return { layout, segments, idPrefix: `${uploadId}.p${partNumber}`, replace: (req: ReplaceShardsRequest) => namespace.replacePartShards(uploadId, partNumber, req) };
}

// ---- assessing the segment --------------------------------------------------------------------

function assess(segment: Segment, k: number, item: RepairItem, deps: SegmentRepairDeps): Promise<Health[]> {
  const reported = item.reasons.some((r) => REPORTED.has(r));
  // A report that names no shard means "something in this segment failed": check every shard.
  const checkAll = reported && item.suspect.length === 0;
  return Promise.all(
    segment.placements.map(async (p, index): Promise<Health> => {
      if (p.nodeId === null || deps.view.isLost(p.nodeId)) return 'bad';
      const node = deps.view.get(p.nodeId)!;
      if (node.state !== 'up' || deps.view.isUnreachable(node.id)) return 'unsure';
      const settled: Health = node.mode === 'draining' ? 'move' : 'ok';
      if (reported && item.suspect.includes(index)) return (await verify(node, p.shardId, recordedCrcs(segment, k, index), deps)) ?? 'unsure';
      if (checkAll) return (await exists(node, p.shardId, deps)) === false ? 'bad' : settled;
      return settled;
    }),
  );
}

/** The block CRCs recorded for data shard `index` at write time (the integrity chain), if any. */
function recordedCrcs(segment: Segment, k: number, index: number): number[] | undefined {
  if (segment.blockCrcs === undefined || index >= k) return undefined;
  return decodeBlockCrcs(segment.blockCrcs).filter((_, j) => j % k === index);
}

/**
 * Asks the node to check the shard's every block locally (no data crosses the network), and
 * compares the CRCs it stores with those recorded at write time: a block corrupted before its CRC
 * was computed passes the node's own check but not this one.
 */
async function verify(node: NodeRecord, shardId: string, recorded: number[] | undefined, deps: SegmentRepairDeps): Promise<Health | undefined> {
  try {
    const result = await deps.view.clientFor(node).verifyShard(shardId);
    if (result.headerCorrupt || result.corruptBlocks.length > 0) return 'bad';
    if (recorded && result.blockCrcs !== undefined) {
      const stored = decodeBlockCrcs(result.blockCrcs);
      if (stored.length !== recorded.length || stored.some((crc, j) => crc !== recorded[j])) return 'bad';
    }
    return node.mode === 'draining' ? 'move' : 'ok';
  } catch (err) {
    if (err instanceof StorageNodeError && err.code === 'NoSuchShard') return 'bad';
    return undefined;
  }
}

async function exists(node: NodeRecord, shardId: string, deps: SegmentRepairDeps): Promise<boolean | undefined> {
  try {
    return (await deps.view.clientFor(node).headShard(shardId)) !== null;
  } catch {
    return undefined;
  }
}

// ---- choosing where replacements go -------------------------------------------------------------

/**
 * Live nodes that hold nothing of this segment, from the namespace's placement (weighted by free
 * space); among them, zones the segment does not use yet come first.
 */
async function chooseTargets(plan: Plan, needed: number, deps: SegmentRepairDeps): Promise<Target[]> {
  const holders = plan.segment.placements.flatMap((p) => (p.nodeId === null ? [] : [p.nodeId]));
  const unfit = deps.view.list().filter((n) => n.state !== 'up' || n.mode === 'draining' || deps.view.isUnreachable(n.id)).map((n) => n.id);
  const exclude = [...new Set([...holders, ...unfit])];
  const { nodes } = await deps.namespace.place({ count: Math.min(256, needed + ZONE_SPARE), exclude });
  const zoneUse = new Map<string, number>();
  plan.segment.placements.forEach((p, i) => {
    // Shards that stay (readable or merely suspect) occupy their zone; bad and moving ones do not.
    if (plan.health[i] === 'ok' || plan.health[i] === 'unsure') bump(zoneUse, deps.view.get(p.nodeId)?.zone ?? '');
  });
  const zoneOf = (t: Target): string => deps.view.get(t.id)?.zone ?? '';
  const pool = [...nodes];
  const picked: Target[] = [];
  while (picked.length < needed && pool.length > 0) {
    const least = Math.min(...pool.map((t) => zoneUse.get(zoneOf(t)) ?? 0));
    const next = pool.find((t) => (zoneUse.get(zoneOf(t)) ?? 0) === least)!;
    picked.push(next);
    pool.splice(pool.indexOf(next), 1);
    bump(zoneUse, zoneOf(next));
  }
  return picked;
}

/**
 * Shard index → target, rebuilds before moves. When no other node is free (a small cluster), a bad
 * shard on a live node may be rewritten on that same node under a new id: it then still holds only
 * that one shard of the segment.
 */
function assignTargets(plan: Plan, wanted: number[], targets: Target[]): Map<number, Target> {
  const free = [...targets];
  const out = new Map<number, Target>();
  for (const index of wanted) {
    const target = free.shift() ?? sameNode(plan, index);
    if (target) out.set(index, target);
  }
  return out;
}

function sameNode(plan: Plan, index: number): Target | undefined {
  const p = plan.segment.placements[index];
  if (plan.health[index] !== 'bad' || p.nodeId === null) return undefined;
  return plan.item.reasons.some((r) => REPORTED.has(r)) ? { id: p.nodeId } : undefined;
}

// ---- writing replacements -----------------------------------------------------------------------

async function writeReplacements(plan: Plan, targets: Map<number, Target>, deps: SegmentRepairDeps, signal: AbortSignal): Promise<Written[]> {
  const written: Written[] = [];
  const rebuild = new Map<number, Target>();
  const copies = [...targets].filter(([i]) => plan.health[i] === 'move');
  for (const [i, t] of targets) if (plan.health[i] === 'bad') rebuild.set(i, t);
  const copied = await Promise.all(copies.map(([i, t]) => copyShard(plan, i, t, deps, signal)));
  copies.forEach(([i, t], n) => {
    const result = copied[n];
    if (result === 'source-failed') {
      // The draining node cannot serve it: rebuild it from the others instead.
      if (rebuild.size < plan.layout.m) rebuild.set(i, t);
    } else if (result) written.push(result);
  });
  if (rebuild.size > 0) written.push(...(await rebuildWithRetry(plan, rebuild, deps, signal)));
  return written;
}

/** Copies a shard from its (draining) node as is: no decoding, the blocks are re-framed and re-checked. */
async function copyShard(plan: Plan, index: number, target: Target, deps: SegmentRepairDeps, signal: AbortSignal): Promise<Written | 'source-failed' | undefined> {
  const from = plan.segment.placements[index];
  const source = deps.view.client(from.nodeId!);
  if (!source) return 'source-failed';
  const upload = startUpload(plan, index, target, deps);
  let bytes = 0;
  try {
    const stream = await source.streamShard(from.shardId, undefined, signal).catch((err: unknown) => {
      throw new SourceError(`opening ${from.shardId} failed: ${messageOf(err)}`, err);
    });
    for await (const { frames, bytes: n } of framedBlocks(stream, plan.layout, plan.segment.size)) {
      await deps.limiter.take(2 * n, signal, plan.urgent);
      await upload.write(frames);
      bytes += n;
    }
    await upload.finish();
    return { index, nodeId: target.id, shardId: upload.shardId, bytes };
  } catch (err) {
    abandon(upload, deps);
    if (signal.aborted) throw err;
    deps.log.warn('shard copy failed', { shard: from.shardId, from: from.nodeId, to: target.id, reason: messageOf(err) });
    return err instanceof SourceError || isSourceFailure(err) ? 'source-failed' : undefined;
  }
}

/** Rebuilds from k healthy shards; a source that fails mid-way is dropped and the rebuild restarts without it (at most m times). */
async function rebuildWithRetry(plan: Plan, wanted: Map<number, Target>, deps: SegmentRepairDeps, signal: AbortSignal): Promise<Written[]> {
  const skip = new Set<number>();
  for (let attempt = 0; ; attempt++) {
    const sources = chooseSources(plan, wanted, skip);
    try {
      return await rebuildOnce(plan, wanted, sources, deps, signal);
    } catch (err) {
      if (!(err instanceof ShardSourceError) || attempt >= plan.layout.m || signal.aborted) throw err;
      const source = plan.segment.placements[err.shardIndex];
      deps.log.warn('repair source failed; trying another shard', { shard: source?.shardId, reason: err.message });
      if (source?.nodeId && isUnreachable(err.cause)) deps.view.noteUnreachable(source.nodeId);
      skip.add(err.shardIndex);
    }
  }
}

/** k source indices: healthy data shards first (cheapest to read), then parity, then movable, then unsure ones. */
function chooseSources(plan: Plan, wanted: Map<number, Target>, skip: Set<number>): number[] {
  const rank: Record<Health, number> = { ok: 0, move: 1, unsure: 2, bad: 9 };
  const usable = plan.health
    .map((h, i) => ({ h, i }))
    .filter(({ h, i }) => h !== 'bad' && !wanted.has(i) && !skip.has(i))
    .sort((a, b) => rank[a.h] - rank[b.h] || a.i - b.i);
  if (usable.length < plan.layout.k) throw new NotEnoughShardsError(usable.length, plan.layout.k);
  return usable.slice(0, plan.layout.k).map(({ i }) => i);
}

async function rebuildOnce(plan: Plan, wanted: Map<number, Target>, sources: number[], deps: SegmentRepairDeps, signal: AbortSignal): Promise<Written[]> {
  if (wanted.size === 1) {
    const [[index, target]] = [...wanted];
    return rebuildOnTarget(plan, index!, target!, sources, deps, signal);
  }
  return rebuildHere(plan, wanted, sources, deps, signal);
}

/**
 * One shard wanted (the usual case: one lost node): the target node rebuilds it from the sources
 * itself (storage-node/rebuild.ts). The rebuilt bytes cross no network, this process moves none of
 * the data, and rebuilds spread over the nodes that receive shards instead of all passing through
 * this one process (on the bench, 0.7 of a core before, 0.14 after).
 */
async function rebuildOnTarget(plan: Plan, index: number, target: Target, sources: number[], deps: SegmentRepairDeps, signal: AbortSignal): Promise<Written[]> {
  const { layout, segment } = plan;
  const client = deps.view.client(target.id);
  if (!client) throw new Error(`target node ${target.id} is not known`);
  const from = sources.map((i) => {
    const p = segment.placements[i];
    const node = p.nodeId === null ? undefined : deps.view.get(p.nodeId);
    if (!node) throw new ShardSourceError(i, `node ${p.nodeId} of shard ${i} is not known`);
    return { index: i, url: node.url, shardId: p.shardId };
  });
  const bytes = shardDataLength(layout, segment.size);
  // The node paces itself at this worker's share of the rate limit (urgent segments go unpaced):
  // pacing here could only delay the start, and the whole rebuild would then run at full speed.
  const rate = deps.limiter.rate / Math.max(1, deps.workers);
  const paced = Number.isFinite(rate) && !plan.urgent ? { bytesPerSecond: rate } : {};
  const shardId = newShardId(plan.subject.idPrefix, plan.item.segment, index);
  deps.inflight.add(target.id, shardId);
  try {
    await client.rebuildShard(shardId, { ...layout, segmentSize: segment.size, index, sources: from, ...paced }, signal);
    return [{ index, nodeId: target.id, shardId, bytes }];
  } catch (err) {
    deps.inflight.delete(target.id, shardId);
    if (signal.aborted) throw err;
    const failedSource = err instanceof StorageNodeError && err.code === 'SourceFailed' ? err.details?.sourceIndex : undefined;
    if (typeof failedSource === 'number') {
      const cause = err instanceof StorageNodeError && err.details?.sourceCode === 'Unavailable' ? new StorageNodeError('Unavailable', 503, err.message) : err;
      throw new ShardSourceError(failedSource, err instanceof Error ? err.message : String(err), { cause });
    }
    if (isUnreachable(err)) deps.view.noteUnreachable(target.id);
    deps.log.warn('rebuilding a shard on its target failed', { shard: shardId, node: target.id, reason: messageOf(err) });
    return [];
  }
}

/** Several shards wanted: read the sources here once and send each rebuilt shard to its target. */
async function rebuildHere(plan: Plan, wanted: Map<number, Target>, sources: number[], deps: SegmentRepairDeps, signal: AbortSignal): Promise<Written[]> {
  const { layout, segment } = plan;
  const indices = [...wanted.keys()];
  const open = (i: number): Promise<AsyncIterable<Uint8Array>> => {
    const p = segment.placements[i];
    const client = p.nodeId === null ? undefined : deps.view.client(p.nodeId);
    if (!client) return Promise.reject(new Error(`node ${p.nodeId} of shard ${i} is not known`));
    return client.streamShard(p.shardId, undefined, signal);
  };
  const uploads = indices.map((i) => startUpload(plan, i, wanted.get(i)!, deps));
  let bytes = 0;
  try {
    for await (const stripe of rebuildFramed(open, sources, indices, layout, segment.size, sharedCodec(layout))) {
      await deps.limiter.take(stripe.length * (layout.k + indices.length), signal, plan.urgent);
      await Promise.all(uploads.map((u, j) => u.write([stripe.frames[j]]).catch(() => undefined)));
      if (uploads.every((u) => u.failed)) throw new Error(`every target failed: ${uploads[0].failed?.message}`);
      bytes += stripe.length;
    }
  } catch (err) {
    for (const u of uploads) abandon(u, deps);
    throw err;
  }
  return finishUploads(uploads, indices, bytes, deps);
}

async function finishUploads(uploads: ShardUpload[], indices: number[], bytes: number, deps: SegmentRepairDeps): Promise<Written[]> {
  const results = await Promise.allSettled(uploads.map((u) => u.finish()));
  const written: Written[] = [];
  results.forEach((r, j) => {
    const u = uploads[j];
    if (r.status === 'fulfilled') written.push({ index: indices[j], nodeId: u.nodeId, shardId: u.shardId, bytes });
    else {
      deps.log.warn('writing a rebuilt shard failed', { shard: u.shardId, node: u.nodeId, reason: messageOf(r.reason) });
      abandon(u, deps);
    }
  });
  return written;
}

function startUpload(plan: Plan, index: number, target: Target, deps: SegmentRepairDeps): ShardUpload {
  const shardId = newShardId(plan.subject.idPrefix, plan.item.segment, index);
  const client = deps.view.client(target.id);
  if (!client) throw new Error(`target node ${target.id} is not known`);
  deps.inflight.add(target.id, shardId);
  const framedLength = shardFramedLength(plan.layout, plan.segment.size);
  return new ShardUpload(client, target.id, shardId, plan.layout.blockSize, deps.stallTimeoutMs, framedLength);
}

function abandon(upload: ShardUpload, deps: SegmentRepairDeps): void {
  if (upload.failed && isUnreachable(upload.failed)) deps.view.noteUnreachable(upload.nodeId);
  upload.abort();
  deps.inflight.delete(upload.nodeId, upload.shardId);
}

/** Shard ids are never reused (GC depends on it): a repaired shard gets a fresh one that still names its object version (or upload and part). */
export function newShardId(prefix: string, segment: number, index: number): string {
  const suffix = `r${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
  const id = `${prefix}.${segment}.${index}.${suffix}`;
  return isValidShardId(id) ? id : `${suffix}.${segment}.${index}`;
}

// ---- committing -------------------------------------------------------------------------------

async function commit(plan: Plan, written: Written[], wanted: number, deps: SegmentRepairDeps): Promise<RepairOutcome> {
  const { subject, item } = plan;
  const changes = written.map((w) => ({ index: w.index, from: plan.segment.placements[w.index], to: { nodeId: w.nodeId, shardId: w.shardId } }));
  try {
    await subject.replace({ versionId: item.versionId, segment: item.segment, changes });
  } catch (err) {
    if (!isLostRace(err)) throw err; // unknown whether it applied: leave the shards to the orphan collector
    // A concurrent overwrite or delete (of a part: re-upload, completion or abort) won: our shards
    // are referenced by nothing, remove them.
    await Promise.all(written.map((w) => deps.view.client(w.nodeId)?.deleteShard(w.shardId).catch(() => undefined)));
    return { kind: 'conflict' };
  } finally {
    for (const w of written) deps.inflight.delete(w.nodeId, w.shardId);
  }
  const rebuilt = written.filter((w) => plan.health[w.index] === 'bad').length;
  const bytes = written.reduce((sum, w) => sum + w.bytes, 0);
  return { kind: 'repaired', rebuilt, copied: written.length - rebuilt, bytes, left: wanted - written.length };
}

function isLostRace(err: unknown): boolean {
  return err instanceof NamespaceError && ['PlacementConflict', 'NoSuchKey', 'NoSuchBucket', 'NoSuchUpload', 'NoSuchPart'].includes(err.code);
}

function goneIsNull(err: unknown): null {
  if (err instanceof NamespaceError && err.code === 'NoSuchBucket') return null;
  throw err;
}

/** No answer (refused, reset, timed out, stalled): the node is likely gone, whatever the namespace says yet. */
function isUnreachable(err: unknown): boolean {
  if (err instanceof StorageNodeError) return err.code === 'Unavailable';
  return err instanceof StallError;
}

function isSourceFailure(err: unknown): boolean {
  return err instanceof StorageNodeError && ['NoSuchShard', 'CorruptBlock'].includes(err.code);
}

// ---- small helpers ----------------------------------------------------------------------------

function indicesOf(health: Health[], wanted: Health): number[] {
  return health.flatMap((h, i) => (h === wanted ? [i] : []));
}

function count(health: Health[], ...kinds: Health[]): number {
  return health.filter((h) => kinds.includes(h)).length;
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
