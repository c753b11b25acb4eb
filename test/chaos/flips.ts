// Bit rot and lost files, injected: one flipped bit in one block of one shard on disk (in its file,
// or in its record of a pack log), or a shard file gone from a live node — at most one shard per segment at a time. The tracker follows
// each one until the cluster heals it (the block verifies again or the file is back, or repair
// moved the shard elsewhere), the workload supersedes it (the object was overwritten or deleted),
// or — so damage nobody heals cannot hold the fault budget forever — the harness undoes it itself
// after a while and says so in the report.
import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { ShardPlacement } from '../../namespace/types.js';
import { readPackedShards } from '../../storage-node/pack-log.js';
import type { RedundancySnapshot, SegmentView } from './redundancy.js';

const HEADER_BYTES = 32;
const CRC_BYTES = 4;
const MAGIC = 'CAIRNSH1';

export type FlipState = 'corrupt' | 'healed' | 'moved' | 'superseded' | 'reverted';

export interface Flip {
  /** A flipped bit, or the whole file moved out of the node's sight. */
  kind: 'bit' | 'missing';
  nodeId: string;
  shardId: string;
  file: string;
  key: string;
  versionId: string;
  segment: number;
  index: number;
  block: number;
  frameOffset: number;
  blockLength: number;
  byteOffset: number;
  original: number;
  flipped: number;
  at: number;
  state: FlipState;
  resolvedAt?: number;
  /** Where a missing shard's file was put aside. */
  hidden?: string;
  /** Offset in `file` of the shard's header: 0 for a shard file, the record's bytes for a packed shard. */
  base: number;
}

interface Geometry {
  blockSize: number;
  dataLength: number;
  blocks: number;
}

export function shardFile(nodeDir: string, shardId: string): string {
  const fan = createHash('sha256').update(shardId).digest('hex').slice(0, 2);
  return path.join(nodeDir, 'shards', fan, shardId);
}

/** Where a shard's bytes are on a node's disk (its header first): its own file, or a pack log record. */
export async function locateShard(nodeDir: string, shardId: string): Promise<{ file: string; offset: number; packed: boolean } | undefined> {
  const file = shardFile(nodeDir, shardId);
  if (await stat(file).then(() => true, () => false)) return { file, offset: 0, packed: false };
  const packed = (await readPackedShards(path.join(nodeDir, 'packs'))).get(shardId);
  return packed && { file: packed.file, offset: packed.offset, packed: true };
}

export class FlipTracker {
  readonly flips: Flip[] = [];
  /** "node/shard" → kind of every flip not yet resolved: looked up for every placement of every scan. */
  private readonly corrupt = new Map<string, Flip['kind']>();

  constructor(private readonly nodeDir: (nodeId: string) => string, private readonly now: () => number) {}

  outstanding(): Flip[] {
    return this.flips.filter((f) => f.state === 'corrupt');
  }

  /** "corrupt" or "missing" while the harness's damage to this shard copy is not healed. */
  damage(p: ShardPlacement): string | undefined {
    const kind = this.corrupt.get(`${p.nodeId}/${p.shardId}`);
    return kind === undefined ? undefined : kind === 'bit' ? 'corrupt' : 'missing';
  }

  /** Flips one bit of shard `index` of `segment`, chosen by the draws in [0,1); undefined if its file is not there. */
  async inject(segment: SegmentView, index: number, draws: readonly number[]): Promise<Flip | undefined> {
    const p = segment.placements[index];
    if (!p?.nodeId) return undefined;
    const at = await locateShard(this.nodeDir(p.nodeId), p.shardId);
    if (!at) return undefined;
    const { file, offset: base } = at;
    const fh = await open(file, 'r+').catch(() => undefined);
    if (!fh) return undefined;
    try {
      const g = parseHeader((await fh.read(Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, base)).buffer);
      if (!g || g.dataLength === 0) return undefined;
      const block = Math.min(g.blocks - 1, Math.floor(draws[0]! * g.blocks));
      const blockLength = Math.min(g.blockSize, g.dataLength - block * g.blockSize);
      const frameOffset = base + HEADER_BYTES + block * (g.blockSize + CRC_BYTES);
      const byteOffset = frameOffset + Math.min(blockLength - 1, Math.floor(draws[1]! * blockLength));
      const one = Buffer.alloc(1);
      await fh.read(one, 0, 1, byteOffset);
      const original = one[0]!;
      one[0] = original ^ (1 << Math.floor(draws[2]! * 8));
      await fh.write(one, 0, 1, byteOffset);
      const flip: Flip = {
        kind: 'bit', nodeId: p.nodeId, shardId: p.shardId, file, key: segment.key, versionId: segment.versionId, segment: segment.segment, index,
        block, frameOffset, blockLength, byteOffset, original, flipped: one[0]!, at: this.now(), state: 'corrupt', base,
      };
      this.flips.push(flip);
      this.corrupt.set(`${flip.nodeId}/${flip.shardId}`, flip.kind);
      return flip;
    } finally {
      await fh.close();
    }
  }

  /** Moves shard `index` of `segment` out of its node's sight (into `hiddenDir`); undefined if its file is not there. */
  async hide(segment: SegmentView, index: number, hiddenDir: string): Promise<Flip | undefined> {
    const p = segment.placements[index];
    if (!p?.nodeId) return undefined;
    const file = shardFile(this.nodeDir(p.nodeId), p.shardId);
    const hidden = path.join(hiddenDir, `${p.nodeId}.${p.shardId}`);
    await mkdir(hiddenDir, { recursive: true });
    if (!(await rename(file, hidden).then(() => true, () => false))) return undefined;
    const flip: Flip = {
      kind: 'missing', nodeId: p.nodeId, shardId: p.shardId, file, key: segment.key, versionId: segment.versionId, segment: segment.segment, index,
      block: -1, frameOffset: -1, blockLength: 0, byteOffset: -1, original: 0, flipped: 0, at: this.now(), state: 'corrupt', hidden, base: 0,
    };
    this.flips.push(flip);
    this.corrupt.set(`${flip.nodeId}/${flip.shardId}`, flip.kind);
    return flip;
  }

  /** Updates every outstanding flip from the disk and the namespace snapshot. */
  async refresh(snapshot: RedundancySnapshot): Promise<void> {
    const placed = new Set(snapshot.segments.flatMap((s) => s.placements.map((p) => `${p.nodeId}/${p.shardId}`)));
    const versions = new Set(snapshot.segments.map((s) => s.versionId));
    for (const flip of this.outstanding()) {
      if (!placed.has(`${flip.nodeId}/${flip.shardId}`)) this.resolve(flip, versions.has(flip.versionId) ? 'moved' : 'superseded');
      else if (await this.repaired(flip)) this.resolve(flip, 'healed');
    }
  }

  private async repaired(flip: Flip): Promise<boolean> {
    if (flip.kind === 'missing') return stat(flip.file).then(() => true, () => false);
    // A rewritten shard may sit elsewhere now (a new pack log record, or a file instead of a record).
    const now = await locateShard(this.nodeDir(flip.nodeId), flip.shardId);
    if (!now) return false;
    if (now.file === flip.file && now.offset === flip.base) return this.blockVerifies(flip);
    return this.blockVerifies({ ...flip, file: now.file, frameOffset: flip.frameOffset - flip.base + now.offset });
  }

  /** Undoes the damage, unless the cluster rewrote the shard meanwhile. */
  async revert(flip: Flip): Promise<void> {
    if (flip.kind === 'missing') return this.unhide(flip);
    const fh = await open(flip.file, 'r+').catch(() => undefined);
    if (fh) {
      try {
        const one = Buffer.alloc(1);
        await fh.read(one, 0, 1, flip.byteOffset);
        if (one[0] === flip.flipped && !(await this.blockVerifies(flip))) {
          one[0] = flip.original;
          await fh.write(one, 0, 1, flip.byteOffset);
        }
      } finally {
        await fh.close();
      }
    }
    this.resolve(flip, 'reverted');
  }

  private async unhide(flip: Flip): Promise<void> {
    const absent = await stat(flip.file).then(() => false, () => true);
    if (absent && flip.hidden) await rename(flip.hidden, flip.file).catch(() => undefined);
    else if (flip.hidden) await rm(flip.hidden, { force: true });
    this.resolve(flip, 'reverted');
  }

  private resolve(flip: Flip, state: FlipState): void {
    this.corrupt.delete(`${flip.nodeId}/${flip.shardId}`);
    flip.state = state;
    flip.resolvedAt = this.now();
  }

  /** True when the flipped block's CRC32C matches again (the shard was rewritten); false while corrupt or missing. */
  private async blockVerifies(flip: Pick<Flip, 'file' | 'blockLength' | 'frameOffset'>): Promise<boolean> {
    const fh = await open(flip.file, 'r').catch(() => undefined);
    if (!fh) return false;
    try {
      const frame = Buffer.alloc(flip.blockLength + CRC_BYTES);
      const { bytesRead } = await fh.read(frame, 0, frame.length, flip.frameOffset);
      if (bytesRead < frame.length) return false;
      return (crc32c(frame.subarray(0, flip.blockLength)) >>> 0) === frame.readUInt32LE(flip.blockLength);
    } finally {
      await fh.close();
    }
  }
}

function parseHeader(h: Buffer): Geometry | undefined {
  if (h.subarray(0, 8).toString('latin1') !== MAGIC) return undefined;
  const g = { blockSize: h.readUInt32LE(12), dataLength: Number(h.readBigUInt64LE(16)), blocks: h.readUInt32LE(24) };
  return g.blockSize > 0 && g.blocks === Math.ceil(g.dataLength / g.blockSize) ? g : undefined;
}
