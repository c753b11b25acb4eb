// The on-disk shard store of a storage node (no HTTP here).
//
// Layout of the data dir:
//   <dir>/node-id                 the node's identity, written once, checked on every start
//   <dir>/shards/<xx>/<id>        shard files; xx = first byte of sha256(id), so no directory grows huge
//   <dir>/packs/<seq>.log         small shards, packed as records of append-only logs (storage-node/pack-log.ts)
//   <dir>/tmp/                    uploads in progress; anything left here is a torn write and is wiped at start
//
// Shard file = 32-byte header + the frames (block data + CRC32C LE) exactly as received:
//   0  "CAIRNSH1"   8  u16 version   10 u16 flags (0)   12 u32 blockSize
//   16 u64 dataLength   24 u32 blockCount   28 u32 CRC32C of bytes 0..27
// The header is written last, at offset 0, just before fsync: a file whose header does not check
// out was never completely written (or has rotted), and rename makes only complete files visible.
// A shard of at most `packMaxBytes` (header included) is held in memory as it arrives and then
// appended to the pack log instead, in the same format; a longer one spills to a shard file.
import { createHash, randomBytes } from 'node:crypto';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { CRC_BYTES } from '../erasure/layout.js';
import { CorruptFrameError, FrameParser, TruncatedFrameError, verifyFrame, type FrameCheck } from '../erasure/frames.js';
import type { Logger } from '../common/log.js';
import { MAX_PACKED_SHARD_BYTES, PackLog } from './pack-log.js';
import { DEFAULT_OPEN_SHARD_FILES, OpenShardFiles, type OpenShardFilesOptions, type OpenShardFilesStats, type ReusableShardFile } from './open-shards.js';
import { fsyncDir } from '../common/files.js';
import { createShardFile, openShardFileForRead, probeDirectIo, shareRelease, type FileBytes, type ShardFile, type ShardFileReader, type IoMode } from './shard-file.js';
import {
  isValidShardId,
  PREVERIFIED_READ_BYTES,
  WHOLE_SHARD_BLOCK,
  type PutShardResponse,
  type ShardInfo,
  type ShardListPage,
  type StorageErrorCode,
  type VerifyShardResponse,
} from './types.js';

export const MAGIC = Buffer.from('CAIRNSH1', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 32;

const MiB = 1024 * 1024;
const READ_BATCH_BYTES = 1 * MiB;
/**
 * Shards up to this many stored bytes are packed into logs: a 64 KiB object's 16 KiB shards, and
 * up to 512 KiB objects at k = 4. Above it a file's fixed cost (≈ 1.6 ms of CPU) is small against
 * the shard's own I/O, and a shard file is cheaper to move and rebuild.
 */
export const DEFAULT_PACK_MAX_BYTES = 128 * 1024;
/** Shards at least this long are read around the page cache when the store reads directly; smaller ones stay cached. */
export const DIRECT_READ_MIN_BYTES = 256 * 1024;
const STATFS_TTL_MS = 1000;
/**
 * After a write fails because the data dir is not writable, the node reports no free space for this
 * long, so placement steers new writes elsewhere; the next write after it is the probe.
 */
const UNWRITABLE_HOLD_MS = 30_000;
const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface StoreLimits {
  /** Largest accepted blockSize. */
  maxBlockSize: number;
  /** Largest accepted shard, in framed bytes (data + CRCs). */
  maxShardBytes: number;
  /** Uploads written at once; more wait in line. */
  maxConcurrentWrites: number;
  /** Uploads allowed to wait for a slot; beyond this a PUT is refused with Busy. */
  maxQueuedWrites: number;
  /**
   * Most bytes of shard files this node may hold (Infinity = the disk's size). An operator's cap
   * on a shared disk, and the chaos harness's way of making a disk "full".
   */
  quotaBytes: number;
}

export const DEFAULT_LIMITS: StoreLimits = {
  maxBlockSize: 16 * MiB,
  maxShardBytes: 4 * 1024 * MiB,
  maxConcurrentWrites: 32,
  maxQueuedWrites: 256,
  quotaBytes: Number.POSITIVE_INFINITY,
};

export interface StoreOptions {
  dir: string;
  /** Required on first start; on later starts it must match the stored id if given. */
  nodeId?: string;
  limits?: Partial<StoreLimits>;
  log?: Logger;
  /**
   * Write shards around the page cache (O_DIRECT) when the data dir's filesystem allows it
   * (probed at open). Default true; false always writes through the page cache.
   */
  directWrites?: boolean;
  /**
   * Read shards of DIRECT_READ_MIN_BYTES or more around the page cache, when the filesystem allows
   * it. Default true; false suits workloads that re-read the same large objects.
   */
  directReads?: boolean;
  /** Shards of at most this many stored bytes are packed into logs; 0 = every shard is a file. Default DEFAULT_PACK_MAX_BYTES. */
  packMaxBytes?: number;
  /** Shard files kept open between reads (open-shards.ts). Default DEFAULT_OPEN_SHARD_FILES; max 0 opens every time. */
  openFiles?: OpenShardFilesOptions;
}

export interface StoreUsage {
  usedBytes: number;
  shardCount: number;
  capacityBytes: number;
  freeBytes: number;
}

/** Inclusive range of data bytes; `end` omitted = to the end; `suffix` = the last n bytes (HTTP semantics). */
export type ByteRange = { start: number; end?: number } | { suffix: number };

/** Verified data bytes of a read. */
export interface ShardChunk {
  readonly data: Buffer;
  /** `data` may be overwritten once this is called: call it when the bytes have been sent. Optional (see FileBytes). */
  release(): void;
}

/** A verified read in progress: iterate it exactly once, or close() it. */
export interface ShardReader extends AsyncIterable<ShardChunk> {
  readonly info: ShardInfo;
  readonly start: number;
  /** Inclusive; start - 1 for an empty read. */
  readonly end: number;
  readonly length: number;
  close(): Promise<void>;
}

export class StoreError extends Error {
  constructor(readonly code: StorageErrorCode, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = 'StoreError';
  }
}

export class NodeIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeIdError';
  }
}

export function assertShardId(id: string): void {
  if (!isValidShardId(id)) {
    throw new StoreError('InvalidShardId', `invalid shard id ${JSON.stringify(id.slice(0, 64))}: want 1-200 of [A-Za-z0-9._-], not starting with . _ or -`);
  }
}

// ---------------------------------------------------------------------------------------------
// Header and frame geometry

interface Geometry {
  blockSize: number;
  dataLength: number;
  blocks: number;
}

function encodeHeader(g: Geometry): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(h, 0);
  h.writeUInt16LE(FORMAT_VERSION, 8);
  h.writeUInt16LE(0, 10);
  h.writeUInt32LE(g.blockSize, 12);
  h.writeBigUInt64LE(BigInt(g.dataLength), 16);
  h.writeUInt32LE(g.blocks, 24);
  h.writeUInt32LE(crc32c(h.subarray(0, 28)) >>> 0, 28);
  return h;
}

function corruptHeader(id: string, why: string): StoreError {
  return new StoreError('CorruptBlock', `shard ${id} has a corrupt header (${why})`, { block: WHOLE_SHARD_BLOCK, header: true });
}

function decodeHeader(id: string, h: Buffer): Geometry {
  if (h.length < HEADER_BYTES) throw corruptHeader(id, 'file shorter than its header');
  if (!h.subarray(0, 8).equals(MAGIC)) throw corruptHeader(id, 'bad magic');
  if ((crc32c(h.subarray(0, 28)) >>> 0) !== h.readUInt32LE(28)) throw corruptHeader(id, 'header CRC mismatch');
  const version = h.readUInt16LE(8);
  if (version !== FORMAT_VERSION) throw new StoreError('InternalError', `shard ${id} has format version ${version}; this node reads ${FORMAT_VERSION}`);
  const g = { blockSize: h.readUInt32LE(12), dataLength: Number(h.readBigUInt64LE(16)), blocks: h.readUInt32LE(24) };
  if (g.blockSize === 0 || g.blocks !== Math.ceil(g.dataLength / g.blockSize)) throw corruptHeader(id, 'inconsistent geometry');
  return g;
}

function storedLength(g: Geometry): number {
  return HEADER_BYTES + g.dataLength + g.blocks * CRC_BYTES;
}

function frameOffset(g: Geometry, index: number): number {
  return HEADER_BYTES + index * (g.blockSize + CRC_BYTES);
}

function frameLength(g: Geometry, index: number): number {
  return Math.min(g.blockSize, g.dataLength - index * g.blockSize) + CRC_BYTES;
}

/** Last frame index of a batch starting at `from`: as many frames as fit in READ_BATCH_BYTES, at least one. */
function batchEnd(g: Geometry, from: number, last: number): number {
  let to = from;
  let bytes = frameLength(g, from);
  while (to < last && bytes + frameLength(g, to + 1) <= READ_BATCH_BYTES) bytes += frameLength(g, ++to);
  return to;
}

/**
 * Reads frames [from, to] in one call; frames cut short by the end of the file come back short
 * (and fail verification). The frames live in `read`: release it when they are no longer used.
 */
async function readFrames(file: ShardFileReader, g: Geometry, from: number, to: number): Promise<{ frames: Buffer[]; read: FileBytes }> {
  const start = frameOffset(g, from);
  const read = await file.read(start, frameOffset(g, to) + frameLength(g, to) - start);
  const buf = read.bytes;
  const frames: Buffer[] = [];
  for (let i = from, at = 0; i <= to; i++) {
    const len = frameLength(g, i);
    frames.push(buf.subarray(Math.min(at, buf.length), Math.min(at + len, buf.length)));
    at += len;
  }
  return { frames, read };
}

function verifyStoredFrame(id: string, frame: Buffer, index: number): Buffer {
  try {
    return verifyFrame(frame, index).data;
  } catch (err) {
    if (err instanceof CorruptFrameError || err instanceof TruncatedFrameError) {
      throw new StoreError('CorruptBlock', `shard ${id}: ${err.message}`, { block: index });
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Small concurrency helpers

/** Serialises commits and deletes of the same id so the used-bytes accounting sees them in order. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Bounds uploads: a waiting upload costs only a socket (TCP back-pressure holds its body), a running one a file and buffers. */
class WriteSlots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number, private readonly maxQueued: number) {}

  get inFlight(): number {
    return this.active;
  }

  async acquire(): Promise<() => void> {
    if (this.active >= this.max) {
      if (this.waiting.length >= this.maxQueued) {
        throw new StoreError('Busy', `node is busy: ${this.active} uploads running and ${this.waiting.length} waiting`);
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

/**
 * Bytes promised to uploads in flight, so concurrent uploads cannot overrun the quota together. An
 * upload claims its bytes as they arrive (before writing them) and hands them back once its shard
 * is counted as used, or when it fails.
 */
class Reservations {
  total = 0;

  open(check: (more: number) => void): { grow(n: number): void; release(): void } {
    let mine = 0;
    return {
      grow: (n: number): void => {
        check(n);
        mine += n;
        this.total += n;
      },
      release: (): void => {
        this.total -= mine;
        mine = 0;
      },
    };
  }
}

/** Each shard's size (for the used-bytes total), and its id in sorted order for paginated listing. */
export class ShardIndex {
  private readonly sizes = new Map<string, number>();
  private readonly ids = new SortedIds();
  usedBytes = 0;

  get count(): number {
    return this.sizes.size;
  }

  load(entries: [string, number][]): void {
    for (const [id, size] of entries) {
      this.usedBytes += size - (this.sizes.get(id) ?? 0);
      this.sizes.set(id, size);
    }
    this.ids.load([...this.sizes.keys()].sort(compareIds));
  }

  set(id: string, size: number): void {
    const old = this.sizes.get(id);
    if (old === undefined) this.ids.add(id);
    this.usedBytes += size - (old ?? 0);
    this.sizes.set(id, size);
  }

  remove(id: string): void {
    const old = this.sizes.get(id);
    if (old === undefined) return;
    this.sizes.delete(id);
    this.usedBytes -= old;
    this.ids.delete(id);
  }

  size(id: string): number | undefined {
    return this.sizes.get(id);
  }

  after(after: string | undefined, limit: number): { ids: string[]; more: boolean } {
    return this.ids.after(after, limit);
  }
}

/** Ids per chunk of SortedIds; a chunk splits in two past twice this. */
const SORTED_CHUNK = 1000;

/**
 * Distinct strings in sorted order, as a list of sorted chunks (the idea of Python's
 * sortedcontainers): an insert or delete costs O(log n + chunk), where one sorted array cost O(n)
 * (177 us per insert at 1M ids, and a node holds millions of small shards).
 */
export class SortedIds {
  private chunks: string[][] = [];
  /** The last id of each chunk, for the binary search. */
  private maxes: string[] = [];

  /** Replaces the contents with `sorted` (ascending, distinct). */
  load(sorted: string[]): void {
    this.chunks = [];
    for (let at = 0; at < sorted.length; at += SORTED_CHUNK) this.chunks.push(sorted.slice(at, at + SORTED_CHUNK));
    this.maxes = this.chunks.map((chunk) => chunk[chunk.length - 1]!);
  }

  add(id: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([id]);
      this.maxes.push(id);
      return;
    }
    // The first chunk whose last id is not below `id`, or the last chunk for a new maximum.
    const c = Math.min(lowerBound(this.maxes, id), this.chunks.length - 1);
    const chunk = this.chunks[c]!;
    const at = lowerBound(chunk, id);
    if (chunk[at] === id) return;
    chunk.splice(at, 0, id);
    this.maxes[c] = chunk[chunk.length - 1]!;
    if (chunk.length > 2 * SORTED_CHUNK) {
      const upper = chunk.splice(SORTED_CHUNK);
      this.chunks.splice(c + 1, 0, upper);
      this.maxes.splice(c, 1, chunk[chunk.length - 1]!, upper[upper.length - 1]!);
    }
  }

  delete(id: string): void {
    const c = lowerBound(this.maxes, id);
    const chunk = this.chunks[c];
    if (!chunk) return;
    const at = lowerBound(chunk, id);
    if (chunk[at] !== id) return;
    chunk.splice(at, 1);
    if (chunk.length > 0) this.maxes[c] = chunk[chunk.length - 1]!;
    else {
      this.chunks.splice(c, 1);
      this.maxes.splice(c, 1);
    }
  }

  /** Up to `limit` ids after `after` (all from the first when undefined), and whether more follow. */
  after(after: string | undefined, limit: number): { ids: string[]; more: boolean } {
    let c = after === undefined ? 0 : upperBound(this.maxes, after);
    let at = after === undefined || c >= this.chunks.length ? 0 : upperBound(this.chunks[c]!, after);
    const ids: string[] = [];
    while (c < this.chunks.length && ids.length < limit) {
      const chunk = this.chunks[c]!;
      const take = Math.min(chunk.length - at, limit - ids.length);
      for (let n = 0; n < take; n++) ids.push(chunk[at + n]!);
      at += take;
      if (at >= chunk.length) {
        c++;
        at = 0;
      }
    }
    return { ids, more: c < this.chunks.length };
  }
}

function lowerBound(ids: string[], id: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Plain code-unit order, the same order JavaScript's default sort and string comparison use. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function upperBound(ids: string[], id: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** Writes a small file so that after a crash it is either absent or complete. */
async function writeFileDurably(file: string, data: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fs.open(tmp, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

// ---------------------------------------------------------------------------------------------
// The store

export class ShardStore {
  private readonly index = new ShardIndex();
  private readonly locks = new KeyedMutex();
  private readonly slots: WriteSlots;
  private readonly reservations = new Reservations();
  private unwritableUntil = 0;
  private mode: IoMode = 'buffered';
  private largeReads: IoMode = 'buffered';
  private statfsCache: { at: number; capacityBytes: number; freeBytes: number } | undefined;
  /**
   * Open handles of the shard fan directories (256 per disk), for the fsync after each rename or
   * unlink: opening and closing the directory every time were two of a shard put's ten file
   * operations, each a threadpool round trip.
   */
  private readonly fanHandles = new Map<string, Promise<FileHandle>>();
  /** Shard files kept open for the next read of the same shard; dropped whenever a shard's file is replaced or removed. */
  private readonly openFiles: OpenShardFiles<OpenedShard>;
  /** Names temp files: the tmp directory is emptied at every open, so a count is unique (a random name cost an RNG call and a getpid per shard). */
  private tmpCount = 0;

  private constructor(
    readonly dir: string,
    readonly nodeId: string,
    readonly limits: StoreLimits,
    private readonly log: Logger | undefined,
    private readonly packs: PackLog,
    readonly packMaxBytes: number,
    openFiles: OpenShardFilesOptions,
  ) {
    this.slots = new WriteSlots(limits.maxConcurrentWrites, limits.maxQueuedWrites);
    this.openFiles = new OpenShardFiles(openFiles);
  }

  static async open(opts: StoreOptions): Promise<ShardStore> {
    const dir = path.resolve(opts.dir);
    await fs.mkdir(dir, { recursive: true });
    const nodeId = await resolveNodeId(dir, opts.nodeId);
    const packMax = opts.packMaxBytes ?? DEFAULT_PACK_MAX_BYTES;
    if (!Number.isSafeInteger(packMax) || packMax < 0 || packMax > MAX_PACKED_SHARD_BYTES) throw new RangeError(`packMaxBytes must be an integer in 0..${MAX_PACKED_SHARD_BYTES}`);
    await prepareDirs(dir);
    const packs = await PackLog.open(path.join(dir, 'packs'), opts.log);
    const store = new ShardStore(dir, nodeId, { ...DEFAULT_LIMITS, ...opts.limits }, opts.log, packs, packMax, opts.openFiles ?? DEFAULT_OPEN_SHARD_FILES);
    const wanted = { writes: opts.directWrites !== false, reads: opts.directReads !== false };
    if ((wanted.writes || wanted.reads) && (await probeDirectIo(path.join(dir, 'tmp')))) {
      if (wanted.writes) store.mode = 'direct';
      if (wanted.reads) store.largeReads = 'direct';
    }
    store.index.load(await store.resolveTwins(await store.walk()));
    return store;
  }

  /** Waits for pack log writes under way and closes the logs, the fan directories and the kept shard files (files in use close with their readers). */
  async close(): Promise<void> {
    await this.packs.close();
    await this.openFiles.close();
    const fans = [...this.fanHandles.values()];
    this.fanHandles.clear();
    await Promise.all(fans.map((fh) => fh.then((h) => h.close()).catch(() => undefined)));
  }

  /** Makes a create, rename or unlink in a shard fan directory durable. */
  private async syncFan(dir: string): Promise<void> {
    let handle = this.fanHandles.get(dir);
    if (!handle) {
      handle = fs.open(dir, 'r');
      this.fanHandles.set(dir, handle);
      // A failed open is not kept: the next sync tries again.
      handle.catch(() => this.fanHandles.delete(dir));
    }
    await (await handle).sync();
  }

  /** Reads that reused a kept shard file, files kept, and kept files found changed (see open-shards.ts). */
  get openFileStats(): Readonly<OpenShardFilesStats> {
    return this.openFiles.stats;
  }

  /** Shard files kept open now. */
  get openFileCount(): number {
    return this.openFiles.size;
  }

  /** Most shard files kept open at once (`--open-files`). */
  get openFileMax(): number {
    return this.openFiles.max;
  }

  /** Pack log activity since open (see PackLog.stats). */
  get packStats(): Readonly<PackLog['stats']> {
    return this.packs.stats;
  }

  /** How many shards are packed into logs rather than kept as files. */
  get packedCount(): number {
    return this.packs.count;
  }

  /** How shard files are written: decided once at open (see storage-node/shard-file.ts). */
  get writeMode(): IoMode {
    return this.mode;
  }

  /** How shards of DIRECT_READ_MIN_BYTES or more are read; smaller ones always go through the page cache. */
  get largeReadMode(): IoMode {
    return this.largeReads;
  }

  get shardCount(): number {
    return this.index.count;
  }

  get usedBytes(): number {
    return this.index.usedBytes;
  }

  get writesInFlight(): number {
    return this.slots.inFlight;
  }

  /** Disk figures capped by the quota: a node with a quota reports it as its capacity. */
  async usage(): Promise<StoreUsage> {
    const now = Date.now();
    if (!this.statfsCache || now - this.statfsCache.at > STATFS_TTL_MS) {
      const s = await fs.statfs(this.dir);
      this.statfsCache = { at: now, capacityBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
    }
    const quota = this.limits.quotaBytes;
    const capacityBytes = Math.min(this.statfsCache.capacityBytes, quota);
    const room = Math.min(this.statfsCache.freeBytes, Math.max(0, quota - this.index.usedBytes - this.reservations.total));
    const freeBytes = now < this.unwritableUntil ? 0 : room;
    return { usedBytes: this.index.usedBytes, shardCount: this.index.count, capacityBytes, freeBytes };
  }

  /**
   * Stores a framed shard. Every frame is CRC-checked as it arrives; a bad frame, a failing body
   * (client gone) or a full disk removes the temp file and nothing becomes visible. `expectedBytes`
   * (the request's content-length, when known) lets an oversize upload be refused before any I/O.
   */
  async put(id: string, blockSize: number, body: AsyncIterable<Uint8Array>, expectedBytes?: number): Promise<PutShardResponse> {
    assertShardId(id);
    this.assertBlockSize(blockSize);
    if (expectedBytes !== undefined) await this.assertRoomFor(expectedBytes);
    const release = await this.slots.acquire();
    const space = this.reservations.open((n) => this.assertQuota(n));
    // Named only when the shard spills to a file: most small shards never need one.
    let tmp = '';
    const createTmp = (): Promise<ShardFile> => {
      tmp = path.join(this.dir, 'tmp', `${(this.tmpCount++).toString(36)}.part`);
      return createShardFile(tmp, this.mode, HEADER_BYTES);
    };
    // A shard declared too long to pack goes straight to a file; an undeclared one is held until it proves so.
    const packMax = expectedBytes !== undefined && expectedBytes + HEADER_BYTES > this.packMaxBytes ? 0 : this.packMaxBytes;
    const sink = new ShardSink(packMax, createTmp);
    try {
      space.grow(HEADER_BYTES);
      const received = await this.receive(sink, blockSize, body, (n) => space.grow(n));
      const header = encodeHeader(received.geometry);
      const info: ShardInfo = { id, blockSize, dataLength: received.geometry.dataLength, storedLength: storedLength(received.geometry), mtime: '' };
      const file = await sink.fileIfSpilled();
      if (file) {
        await file.finish(header);
        // The file was last written just now: a stat would cost a threadpool round trip per shard.
        info.mtime = new Date().toISOString();
        await sink.close();
        await this.commit(id, tmp, info.storedLength, space.release);
      } else {
        const packed = await this.commitPacked(id, [header, ...sink.held], space.release);
        info.mtime = new Date(packed.mtimeMs).toISOString();
      }
      return { ...info, blockCrcs: received.crcs };
    } catch (err) {
      await sink.close().catch(() => undefined);
      if (tmp) await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw this.mapWriteError(err, id);
    } finally {
      space.release();
      release();
    }
  }

  /** Header facts of a shard, or null when absent. */
  async stat(id: string): Promise<ShardInfo | null> {
    assertShardId(id);
    const opened = await this.openShard(id, 'header');
    if (!opened) return null;
    await opened.file.close();
    return opened.info;
  }

  /**
   * Opens a verified read of data bytes `range` (whole shard if omitted). The frames holding the
   * first PREVERIFIED_READ_BYTES of the range are read and checked before this resolves; later frames
   * are checked as the reader is iterated and a bad one makes the iteration throw.
   */
  async openRead(id: string, range?: ByteRange): Promise<ShardReader> {
    assertShardId(id);
    const opened = await this.openShard(id, 'data');
    if (!opened) throw noSuchShard(id);
    let reader: RangeReader;
    try {
      const { start, end } = resolveRange(opened.geometry.dataLength, range);
      reader = new RangeReader(id, opened.file, opened.geometry, opened.info, start, end);
    } catch (err) {
      await opened.file.close().catch(() => undefined);
      throw err;
    }
    try {
      await reader.prefetch();
      return reader;
    } catch (err) {
      // The reader's close waits for a read it has under way before the file goes.
      await reader.close().catch(() => undefined);
      throw err;
    }
  }

  /** Removes a shard; false when it was not there. */
  async delete(id: string): Promise<boolean> {
    assertShardId(id);
    const file = this.shardPath(id);
    return this.locks.run(id, async () => {
      if (await this.packs.remove(id)) {
        this.index.remove(id);
        return true;
      }
      this.openFiles.drop(id);
      try {
        await fs.unlink(file);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return false;
        throw err;
      }
      this.index.remove(id);
      await this.syncFan(path.dirname(file));
      return true;
    });
  }

  /** Shards with id > after, in id order. A shard whose header is unreadable is listed with blockSize and dataLength 0. */
  async list(after?: string, limit = 1000): Promise<ShardListPage> {
    const page = this.index.after(after, limit);
    const infos = await mapLimit(page.ids, 16, (id) => this.listInfo(id));
    const shards = infos.filter((s): s is ShardInfo => s !== null);
    const last = page.ids[page.ids.length - 1];
    return page.more && last !== undefined ? { shards, next: last } : { shards };
  }

  /** Shard ids after `after` in id order, from memory (no I/O): the scrubber's walk. */
  ids(after: string | undefined, limit: number): { ids: string[]; more: boolean } {
    return this.index.after(after, limit);
  }

  /**
   * Checks every block of a shard. `pace` is awaited before each read with the bytes about to be
   * read, so a caller can rate-limit (and abort) a long verification between reads.
   */
  async verify(id: string, pace?: (bytes: number) => Promise<void>): Promise<VerifyShardResponse> {
    assertShardId(id);
    let opened: OpenedShard | null;
    try {
      opened = await this.openShard(id, 'verify');
    } catch (err) {
      if (err instanceof StoreError && err.details?.header === true) return { id, blocks: 0, corruptBlocks: [WHOLE_SHARD_BLOCK], headerCorrupt: true };
      throw err;
    }
    if (!opened) throw noSuchShard(id);
    const { file, geometry: g } = opened;
    const corruptBlocks: number[] = [];
    const crcs = Buffer.alloc(g.blocks * 4);
    try {
      for (let from = 0; from < g.blocks; ) {
        const to = batchEnd(g, from, g.blocks - 1);
        await pace?.(frameOffset(g, to) + frameLength(g, to) - frameOffset(g, from));
        const { frames, read } = await readFrames(file, g, from, to);
        frames.forEach((frame, i) => {
          if (frame.length >= 4) crcs.writeUInt32LE(frame.readUInt32LE(frame.length - 4), (from + i) * 4);
          try {
            verifyFrame(frame, from + i);
          } catch {
            corruptBlocks.push(from + i);
          }
        });
        read.release();
        from = to + 1;
      }
    } finally {
      await file.close();
    }
    return { id, blocks: g.blocks, corruptBlocks, blockCrcs: crcs.toString('base64') };
  }

  /**
   * Where a stored shard's bytes are (its header first): its own file at offset 0, or a record
   * inside a pack log. For operators and fault-injecting tests; undefined when not stored here.
   */
  locate(id: string): { file: string; offset: number; length: number; packed: boolean } | undefined {
    assertShardId(id);
    const packed = this.packs.locate(id);
    if (packed) return { ...packed, packed: true };
    const length = this.index.size(id);
    return length === undefined ? undefined : { file: this.shardPath(id), offset: 0, length, packed: false };
  }

  /** Where a shard's own file lives (for operators and tests; it need not exist, and a packed shard has none). */
  shardPath(id: string): string {
    assertShardId(id);
    const fan = createHash('sha256').update(id).digest('hex').slice(0, 2);
    return path.join(this.dir, 'shards', fan, id);
  }

  // ---- internals ----

  private assertBlockSize(blockSize: number): void {
    if (!Number.isSafeInteger(blockSize) || blockSize < 1 || blockSize > this.limits.maxBlockSize) {
      throw new StoreError('InvalidArgument', `block size must be an integer in 1..${this.limits.maxBlockSize}, got ${blockSize}`);
    }
  }

  private async assertRoomFor(bytes: number): Promise<void> {
    if (bytes > this.limits.maxShardBytes) {
      throw new StoreError('ShardTooLarge', `shard of ${bytes} bytes exceeds the limit of ${this.limits.maxShardBytes}`);
    }
    const { freeBytes } = await this.usage();
    if (bytes + HEADER_BYTES > freeBytes) {
      throw new StoreError('InsufficientStorage', `shard of ${bytes} bytes does not fit in ${freeBytes} free bytes`);
    }
  }

  /** Refuses `more` bytes that would take stored plus in-flight bytes over the quota. */
  private assertQuota(more: number): void {
    const quota = this.limits.quotaBytes;
    const after = this.index.usedBytes + this.reservations.total + more;
    if (after > quota) throw new StoreError('InsufficientStorage', `node quota of ${quota} bytes reached (${this.index.usedBytes} used)`);
  }

  /** fs failures of a write become clean, typed answers: a full, read-only or failing disk must not look like a bug. */
  private mapWriteError(err: unknown, id: string): unknown {
    const code = errnoCode(err);
    if (code === undefined || err instanceof StoreError) return err;
    if (NO_SPACE.has(code)) return new StoreError('InsufficientStorage', `the node ran out of disk space while writing the shard (${code})`);
    if (NOT_WRITABLE.has(code)) {
      this.unwritableUntil = Date.now() + UNWRITABLE_HOLD_MS;
      this.log?.warn('data dir is not writable; reporting no free space for a while', { id, code });
      return new StoreError('InsufficientStorage', `the node's data dir is not writable (${code})`);
    }
    // Anything else (a client gone mid-body) keeps its own meaning; only a failing disk is logged here.
    if (code !== 'EIO') return err;
    this.log?.error('shard write failed', { id, err });
    return new StoreError('InternalError', `writing the shard failed (${code})`);
  }

  private async receive(
    file: Pick<ShardFile, 'append'>,
    blockSize: number,
    body: AsyncIterable<Uint8Array>,
    claim: (bytes: number) => void,
  ): Promise<{ geometry: Geometry; crcs: number[] }> {
    const parser = new FrameParser(blockSize);
    const crcs: number[] = [];
    let dataLength = 0;
    let received = 0;
    const accept = (frames: FrameCheck[]): void => {
      for (const f of frames) {
        crcs.push(f.crc);
        dataLength += f.dataLength;
      }
    };
    try {
      for await (const chunk of body) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        received += buf.length;
        if (received > this.limits.maxShardBytes) {
          throw new StoreError('ShardTooLarge', `shard exceeds the limit of ${this.limits.maxShardBytes} bytes`);
        }
        accept(parser.push(buf));
        claim(buf.length);
        await file.append(buf);
      }
      accept(parser.end());
    } catch (err) {
      if (err instanceof CorruptFrameError || err instanceof TruncatedFrameError) {
        throw new StoreError('BadFrame', err.message, { block: err.blockIndex });
      }
      throw err;
    }
    return { geometry: { blockSize, dataLength, blocks: crcs.length }, crcs };
  }

  /** `handBack` returns the upload's reserved bytes in the same tick as they start counting as used. */
  private async commit(id: string, tmp: string, size: number, handBack: () => void): Promise<void> {
    const target = this.shardPath(id);
    await this.locks.run(id, async () => {
      await fs.rename(tmp, target);
      this.openFiles.drop(id);
      this.index.set(id, size);
      handBack();
      this.unwritableUntil = 0;
      await this.syncFan(path.dirname(target));
      // A packed copy written before is superseded only once the file is durable.
      await this.packs.remove(id);
    });
  }

  /** Appends a small shard to the pack log; an older copy of it in a file is removed once the new one is durable. */
  private async commitPacked(id: string, shard: Buffer[], handBack: () => void): Promise<{ mtimeMs: number }> {
    return this.locks.run(id, async () => {
      const hadFile = this.index.size(id) !== undefined && !this.packs.has(id);
      const packed = await this.packs.append(id, shard);
      this.index.set(id, packed.length);
      handBack();
      this.unwritableUntil = 0;
      if (hadFile) {
        this.openFiles.drop(id);
        await removeFileDurably(this.shardPath(id));
      }
      return packed;
    });
  }

  /**
   * Opens a shard and checks its header. Only a read of a large shard's data goes around the page
   * cache: a header alone (stat, listings) is one small read, which the cache serves best. A data
   * read reuses the shard's file kept open by the read before, and keeps the file it opens; a
   * verification opens the file afresh, so that it checks the disk as it is now, header included.
   */
  private async openShard(id: string, purpose: 'header' | 'data' | 'verify'): Promise<OpenedShard | null> {
    if (purpose === 'data') {
      const kept = this.openFiles.take(id);
      if (kept) return kept;
    }
    const whole = purpose !== 'header';
    const large = whole && (this.index.size(id) ?? 0) >= DIRECT_READ_MIN_BYTES;
    let file: ShardFileReader;
    let ownFile: ReusableShardFile | undefined;
    try {
      file = this.packs.reader(id, whole) ?? (ownFile = await openShardFileForRead(this.shardPath(id), large ? this.largeReads : 'buffered'));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw err;
    }
    try {
      const head = await file.read(0, HEADER_BYTES);
      let geometry: Geometry;
      try {
        geometry = decodeHeader(id, head.bytes);
      } finally {
        head.release();
      }
      const stat = await file.stat();
      const info: ShardInfo = { id, blockSize: geometry.blockSize, dataLength: geometry.dataLength, storedLength: stat.size, mtime: stat.mtime.toISOString() };
      return purpose === 'data' && ownFile ? this.openFiles.keep(id, { file: ownFile, geometry, info }) : { file, geometry, info };
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
  }

  private async listInfo(id: string): Promise<ShardInfo | null> {
    try {
      return await this.stat(id);
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'CorruptBlock')) throw err;
      return { id, blockSize: 0, dataLength: 0, storedLength: this.index.size(id) ?? 0, mtime: new Date(0).toISOString() };
    }
  }

  /**
   * Sizes of all shards, files and packed. An id found both ways was rewritten the other way by a
   * write that crashed before removing the older copy: the newer copy stays, the other goes.
   */
  private async resolveTwins(files: [string, number][]): Promise<[string, number][]> {
    const entries = new Map(files);
    for (const p of this.packs.all()) {
      if (entries.has(p.id)) {
        const fileTime = (await fs.stat(this.shardPath(p.id))).mtimeMs;
        this.log?.warn('shard stored both as a file and packed; keeping the newer', { id: p.id, kept: fileTime > p.mtimeMs ? 'file' : 'packed' });
        if (fileTime > p.mtimeMs) {
          await this.packs.remove(p.id);
          continue;
        }
        await removeFileDurably(this.shardPath(p.id));
      }
      entries.set(p.id, p.length);
    }
    return [...entries];
  }

  /** Sizes of all shard files, read once at start; stray files are reported and left alone. */
  private async walk(): Promise<[string, number][]> {
    const shards = path.join(this.dir, 'shards');
    const fans = (await fs.readdir(shards)).filter((name) => /^[0-9a-f]{2}$/.test(name));
    const perFan = await mapLimit(fans, 8, async (fan) => {
      const names = await fs.readdir(path.join(shards, fan));
      const sized = await mapLimit(names, 32, async (name): Promise<[string, number] | null> => {
        const file = path.join(shards, fan, name);
        if (!isValidShardId(name) || this.shardPath(name) !== file) {
          this.log?.warn('ignoring stray file in shard dir', { file });
          return null;
        }
        const st = await fs.lstat(file);
        return st.isFile() ? [name, st.size] : null;
      });
      return sized.filter((e): e is [string, number] => e !== null);
    });
    return perFan.flat();
  }
}

interface OpenedShard {
  file: ShardFileReader;
  geometry: Geometry;
  info: ShardInfo;
}

class RangeReader implements ShardReader {
  readonly length: number;
  private nextBlock: number;
  private readonly lastBlock: number;
  private prefetched: ShardChunk[] = [];
  /** The batch after the one being sent, already being read. */
  private ahead: Promise<ShardChunk[]> | undefined;
  private closed = false;

  constructor(
    private readonly id: string,
    private readonly file: ShardFileReader,
    private readonly g: Geometry,
    readonly info: ShardInfo,
    readonly start: number,
    readonly end: number,
  ) {
    this.length = end - start + 1;
    this.nextBlock = this.length > 0 ? Math.floor(start / g.blockSize) : 0;
    this.lastBlock = this.length > 0 ? Math.floor(end / g.blockSize) : -1;
  }

  async prefetch(): Promise<void> {
    let bytes = 0;
    for (let batch = this.nextBatch(); batch; batch = bytes < PREVERIFIED_READ_BYTES ? this.nextBatch() : undefined) {
      for (const chunk of await batch) {
        this.prefetched.push(chunk);
        bytes += chunk.data.length;
      }
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ShardChunk> {
    try {
      while (this.prefetched.length > 0) yield this.prefetched.shift()!;
      for (let batch = this.nextBatch(); batch; batch = this.nextBatch()) yield* await batch;
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Chunks handed out are the consumer's to release; those never handed out are ours.
    for (const chunk of this.prefetched) chunk.release();
    this.prefetched = [];
    const ahead = this.ahead;
    this.ahead = undefined;
    if (ahead) for (const chunk of await ahead.catch(() => [])) chunk.release();
    await this.file.close();
  }

  /**
   * The next batch, with the one after it already being read. A direct read waits for the device
   * (no kernel read-ahead), so reading one batch ahead keeps the disk and the socket busy together.
   */
  private nextBatch(): Promise<ShardChunk[]> | undefined {
    const batch = this.ahead ?? this.startBatch();
    this.ahead = batch ? this.startBatch() : undefined;
    return batch;
  }

  private startBatch(): Promise<ShardChunk[]> | undefined {
    if (this.closed || this.nextBlock > this.lastBlock) return undefined;
    const batch = this.readBatch();
    // Awaited in turn, where a failure surfaces; until then it must not count as unhandled.
    batch.catch(() => undefined);
    return batch;
  }

  /** The requested data bytes of the next batch of frames, every frame verified; they share one buffer. */
  private async readBatch(): Promise<ShardChunk[]> {
    const from = this.nextBlock;
    const to = batchEnd(this.g, from, this.lastBlock);
    this.nextBlock = to + 1;
    const { frames, read } = await readFrames(this.file, this.g, from, to);
    let data: Buffer[];
    try {
      data = frames.map((frame, i) => {
        const index = from + i;
        const bytes = verifyStoredFrame(this.id, frame, index);
        const base = index * this.g.blockSize;
        return bytes.subarray(Math.max(0, this.start - base), Math.min(bytes.length, this.end - base + 1));
      });
    } catch (err) {
      read.release();
      throw err;
    }
    const releases = shareRelease(read, data.length);
    return data.map((bytes, i) => ({ data: bytes, release: releases[i]! }));
  }
}

async function prepareDirs(dir: string): Promise<void> {
  const tmp = path.join(dir, 'tmp');
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  const shards = path.join(dir, 'shards');
  await fs.mkdir(shards, { recursive: true });
  const fans = Array.from({ length: 256 }, (_, i) => path.join(shards, i.toString(16).padStart(2, '0')));
  await mapLimit(fans, 32, (fan) => fs.mkdir(fan, { recursive: true }));
  await fsyncDir(shards);
  await fsyncDir(dir);
}

async function removeFileDurably(file: string): Promise<void> {
  await fs.rm(file, { force: true });
  await fsyncDir(path.dirname(file));
}

/**
 * Where a shard's bytes go as they arrive: held in memory while the shard may still be packed
 * (at most `packMax` stored bytes), spilled to a shard file once it proves longer.
 */
class ShardSink {
  /** Copies of the bytes held (the body's chunks may be reused once appended). */
  readonly held: Buffer[] = [];
  private heldBytes = HEADER_BYTES;
  private opening: Promise<ShardFile> | undefined;

  constructor(private readonly packMax: number, private readonly create: () => Promise<ShardFile>) {}

  async append(chunk: Buffer): Promise<void> {
    if (!this.opening && this.heldBytes + chunk.length <= this.packMax) {
      this.held.push(Buffer.from(chunk));
      this.heldBytes += chunk.length;
      return;
    }
    const file = await this.spill();
    await file.append(chunk);
  }

  /** The shard file, when the bytes went to one; undefined means they are all in `held`. */
  fileIfSpilled(): Promise<ShardFile> | undefined {
    return this.opening;
  }

  async close(): Promise<void> {
    if (this.opening) await (await this.opening.catch(() => undefined))?.close();
  }

  private spill(): Promise<ShardFile> {
    this.opening ??= (async () => {
      const file = await this.create();
      try {
        for (const chunk of this.held.splice(0)) await file.append(chunk);
      } catch (err) {
        // close() only reaches a file that opened whole: this one is closed here.
        await file.close().catch(() => undefined);
        throw err;
      }
      return file;
    })();
    return this.opening;
  }
}

async function resolveNodeId(dir: string, wanted: string | undefined): Promise<string> {
  const file = path.join(dir, 'node-id');
  let stored: string | undefined;
  try {
    stored = (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  if (stored !== undefined) {
    if (wanted !== undefined && wanted !== stored) {
      throw new NodeIdError(`data dir ${dir} belongs to node "${stored}", not "${wanted}"; refusing to start (use the right --data-dir or --node-id)`);
    }
    return stored;
  }
  if (wanted === undefined) throw new NodeIdError(`data dir ${dir} has no node id yet: pass --node-id (or CAIRN_NODE_ID) on first start`);
  if (!NODE_ID_PATTERN.test(wanted)) throw new NodeIdError(`invalid node id "${wanted}": want 1-64 of [A-Za-z0-9._-], starting with a letter or digit`);
  await writeFileDurably(file, wanted + '\n');
  return wanted;
}

function resolveRange(dataLength: number, range: ByteRange | undefined): { start: number; end: number } {
  if (range === undefined) return { start: 0, end: dataLength - 1 };
  const unsatisfiable = (): StoreError =>
    new StoreError('InvalidRange', `range not satisfiable for a shard of ${dataLength} data bytes`, { dataLength });
  if ('suffix' in range) {
    if (!Number.isSafeInteger(range.suffix) || range.suffix <= 0 || dataLength === 0) throw unsatisfiable();
    return { start: Math.max(0, dataLength - range.suffix), end: dataLength - 1 };
  }
  const { start } = range;
  const end = Math.min(range.end ?? dataLength - 1, dataLength - 1);
  if (!Number.isSafeInteger(start) || start < 0 || start >= dataLength) throw unsatisfiable();
  if (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < start)) throw unsatisfiable();
  return { start, end };
}

/** One writev for a batch of received chunks: gathering them with Buffer.concat would copy every byte once more. */
function noSuchShard(id: string): StoreError {
  return new StoreError('NoSuchShard', `no shard ${id}`);
}

const NO_SPACE: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);
const NOT_WRITABLE: ReadonlySet<string> = new Set(['EROFS', 'EACCES', 'EPERM']);
