// What the namespace says about redundancy: every segment of every committed object (and of every
// part of an upload in progress) with its k+m placements, and how many of those shards are lost
// right now — no node, a node that is not up (or that the harness took out), or a shard the harness
// damaged (flipped bit, missing file) that nobody healed yet. The fault gate uses it to never let a
// segment lose more than m shards; the report uses it to time how long repair takes to restore
// full redundancy.
import type { NamespaceClient } from '../../namespace/client.js';
import type { NodeRecord, ShardPlacement } from '../../namespace/types.js';

const PAGE_LIMIT = 1000;
const MAX_PAGES = 100;
const FETCH_CONCURRENCY = 16;

export interface SegmentView {
  key: string;
  /** Object version, or the upload id for a part of an upload in progress. */
  versionId: string;
  segment: number;
  upload?: { uploadId: string; partNumber: number };
  placements: ShardPlacement[];
  /** Shard indices lost now. */
  lost: number[];
  /** Why each of `lost` is lost, e.g. "2:unplaced", "4:node-3(down)", "0:corrupt". */
  why: string[];
}

export interface RedundancySnapshot {
  at: number;
  segments: SegmentView[];
  nodes: Map<string, NodeRecord>;
  objects: number;
  /** Segments with at least one lost shard. */
  degraded: number;
  maxLost: number;
  nullPlacements: number;
  shortPlacements: number;
}

export interface ScanContext {
  namespace: NamespaceClient;
  bucket: string;
  width: number;
  /**
   * Nodes the harness took out, with why ("killed", or "quota" for a node that is up but will be
   * restarted to lift its quota): their shards count as lost before the namespace notices.
   */
  impaired: () => ReadonlyMap<string, string>;
  /** "corrupt" or "missing" when the harness damaged this shard copy and nobody healed it yet. */
  damage: (placement: ShardPlacement) => string | undefined;
  /**
   * True when the shard's file is on its node's disk. Checked for every placement, so that damage
   * the harness did not itself record (a disk replaced while a write to it was still committing)
   * cannot pass for full redundancy.
   */
  onDisk: (placement: ShardPlacement & { nodeId: string }) => Promise<boolean>;
}

export async function scanRedundancy(ctx: ScanContext, now: () => number): Promise<RedundancySnapshot> {
  // The snapshot is as of its start: anything that happened before then is reflected in it.
  const at = now();
  const nodes = new Map((await ctx.namespace.listNodes()).map((n) => [n.id, n]));
  const raw = [...(await objectSegments(ctx)), ...(await uploadSegments(ctx))];
  const placed = raw.flatMap((s) => s.placements.flatMap((p) => (p.nodeId === null ? [] : [{ nodeId: p.nodeId, shardId: p.shardId }])));
  const present = await mapLimit(placed, FETCH_CONCURRENCY, (p) => ctx.onDisk(p));
  const absent = new Set(placed.filter((_, i) => !present[i]).map((p) => `${p.nodeId}/${p.shardId}`));
  // Read after the records: a node taken out while the scan ran is counted too.
  const impaired = ctx.impaired();
  const problem = (p: ShardPlacement): string | undefined => {
    if (p.nodeId === null) return 'unplaced';
    const why = impaired.get(p.nodeId);
    if (why) return `${p.nodeId}(${why})`;
    const state = nodes.get(p.nodeId)?.state ?? 'unknown';
    if (state !== 'up') return `${p.nodeId}(${state})`;
    const damage = ctx.damage(p) ?? (absent.has(`${p.nodeId}/${p.shardId}`) ? 'no file' : undefined);
    return damage ? `${p.nodeId}(${damage})` : undefined;
  };
  const segments = raw.map((s) => {
    const lost: number[] = [];
    const why: string[] = [];
    for (let i = 0; i < ctx.width; i++) {
      const p = s.placements[i];
      const reason = p ? problem(p) : 'missing';
      if (reason) {
        lost.push(i);
        why.push(`${i}:${reason}`);
      }
    }
    return { ...s, lost, why };
  });
  return {
    at,
    segments,
    nodes,
    objects: new Set(segments.filter((s) => !s.upload).map((s) => s.key)).size,
    degraded: segments.filter((s) => s.lost.length > 0).length,
    maxLost: segments.reduce((max, s) => Math.max(max, s.lost.length), 0),
    nullPlacements: segments.reduce((n, s) => n + s.placements.filter((p) => p.nodeId === null).length, 0),
    shortPlacements: segments.filter((s) => s.placements.length < ctx.width).length,
  };
}

/** Full redundancy: every segment has all k+m shards, intact, on nodes that are up. */
export function isFullyRedundant(snapshot: RedundancySnapshot): boolean {
  return snapshot.degraded === 0;
}

/** Segments that would lose more than m shards if `nodeId` were lost too. */
export function atRiskWithout(snapshot: RedundancySnapshot, nodeId: string, m: number): SegmentView[] {
  return snapshot.segments.filter((s) => {
    const extra = s.placements.some((p, i) => p.nodeId === nodeId && !s.lost.includes(i)) ? 1 : 0;
    return s.lost.length + extra > m;
  });
}

/** Segments that hold a shard on `nodeId`: of committed objects only, or also of parts of uploads in progress. */
export function segmentsOn(snapshot: RedundancySnapshot, nodeId: string, which: 'objects' | 'all' = 'all'): number {
  return snapshot.segments.filter((s) => (which === 'all' || !s.upload) && s.placements.some((p) => p.nodeId === nodeId)).length;
}

export function describeSnapshot(s: RedundancySnapshot, examples = 0): string {
  const text = `${s.segments.length} segments of ${s.objects} objects: ${s.degraded} degraded (max ${s.maxLost} shards lost), ${s.nullPlacements} unplaced shards`;
  const degraded = s.segments.filter((x) => x.lost.length > 0).slice(0, examples);
  if (degraded.length === 0) return text;
  return `${text} [e.g. ${degraded.map((x) => `${x.key}${x.upload ? ` (upload part ${x.upload.partNumber})` : ''} seg ${x.segment} v ${x.versionId}: ${x.why.join(' ')}`).join('; ')}]`;
}

type RawSegment = Omit<SegmentView, 'lost' | 'why'>;

async function objectSegments(ctx: ScanContext): Promise<RawSegment[]> {
  const keys: string[] = [];
  let continuation: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await ctx.namespace.listObjects(ctx.bucket, { continuation, maxKeys: PAGE_LIMIT });
    keys.push(...res.entries.map((e) => e.key));
    if (!res.isTruncated || !res.nextContinuation) break;
    continuation = res.nextContinuation;
  }
  const records = await mapLimit(keys, FETCH_CONCURRENCY, (key) => ctx.namespace.getObjectOrNull(ctx.bucket, key));
  return records.flatMap((r) => (r ? r.segments.map((s, i) => ({ key: r.key, versionId: r.versionId, segment: i, placements: s.placements })) : []));
}

async function uploadSegments(ctx: ScanContext): Promise<RawSegment[]> {
  const out: RawSegment[] = [];
  const { uploads } = await ctx.namespace.listUploads(ctx.bucket, { maxUploads: PAGE_LIMIT });
  for (const upload of uploads) {
    const parts = await ctx.namespace.listParts(upload.uploadId, { maxParts: PAGE_LIMIT }).catch(() => ({ parts: [] }));
    for (const part of parts.parts) {
      part.segments.forEach((s, i) =>
        out.push({ key: upload.key, versionId: `${upload.uploadId}/${part.partNumber}`, segment: i, upload: { uploadId: upload.uploadId, partNumber: part.partNumber }, placements: s.placements }),
      );
    }
  }
  return out;
}

export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
