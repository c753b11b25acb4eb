// The read path: streams a byte range of an object. For each window of stripes it reads only the
// data shards that hold the wanted bytes (no decoding on the healthy path); when one of them is
// missing, down, or returns a corrupt block, it reads other shards of the same stripes until it has
// k, and reconstructs. The next window is fetched while the current one is sent.
import { blockLengthFor, stripeCount, stripeDataLength, type Layout } from '../../erasure/layout.js';
import type { StripeCodec } from '../../erasure/codec.js';
import type { NodeRecord, ObjectRecord, Segment, ShardPlacement } from '../../namespace/types.js';
import { StorageNodeError, type StorageNodePool } from '../../storage-node/client.js';
import { PREVERIFIED_READ_BYTES } from '../../storage-node/types.js';
import type { Logger } from '../../common/log.js';
import type { NodeDirectory } from './node-directory.js';
import { s3Error } from '../s3/errors.js';
import { crc32c } from '@node-rs/crc32';
import { IntegrityError } from './integrity.js';
import { ChunkedBytes } from './chunked-bytes.js';
import { sharedDownloadBudget, type MemoryBudget, type Release } from './memory-budget.js';
import { QuietTimer } from '../../common/quiet-timer.js';

export interface ReaderDeps {
  nodes: StorageNodePool;
  directory: NodeDirectory;
  codec: StripeCodec;
  log: Logger;
  /** A shard read slower than this is abandoned for parity: one hung node must not stall a GET for long. */
  readTimeoutMs: number;
  /** Called when a shard could not be read: for metrics, and to tell repair about bad shards. */
  onShardFailure?: (failure: ShardFailure) => void;
  /** Called when a window had to be reconstructed from parity. */
  onDegradedRead?: () => void;
  /** Bytes of windows held in memory, across every read of the process; default sharedDownloadBudget. */
  downloadBudget?: MemoryBudget;
  /**
   * Aborted when the client has gone: a window still waiting for memory stops waiting, and shard
   * fetches under way are cancelled (their memory is given back at once, and they are not failures).
   */
  signal?: AbortSignal;
  /** How long a window handed out may go unconsumed before the windows read ahead are let go; default READ_AHEAD_IDLE_MS. */
  readAheadIdleMs?: number;
}

/** Upper bound on shard bytes fetched per request: what the storage node verifies before answering (a bad block is a clean CorruptBlock, not a cut). */
const WINDOW_SHARD_BYTES = PREVERIFIED_READ_BYTES;

/**
 * Windows fetched ahead of the one being sent. One is not enough to hide a window's fetch (the nodes
 * read and verify it before the first byte comes back) behind sending the previous one.
 */
const PREFETCH_WINDOWS = 2;

/**
 * A consumer that leaves a window this long (its client reads slower than ~4 MB/s, or not at all)
 * gets no more read-ahead for the rest of the object: the windows read ahead are let go, and each
 * window is fetched when asked for. A client that stopped then holds one window of the download
 * budget, not three; one that reads slowly loses nothing (a fetch takes far less than its send).
 */
export const READ_AHEAD_IDLE_MS = 2_000;

export interface ShardFailure {
  record: ObjectRecord;
  segment: number;
  index: number;
  nodeId: string | null;
  /** The storage node's error code (CorruptBlock, NoSuchShard, Unavailable, ...), or 'NotPlaced' / 'NodeDown' / 'NodeUnreachable' (refused lately, not tried). */
  code: string;
  reason: string;
}

/** Yields bytes [start, end] (inclusive) of the object. */
export async function* readObjectRange(record: ObjectRecord, start: number, end: number, deps: ReaderDeps): AsyncGenerator<Buffer> {
  for await (const window of readObjectWindows(record, start, end, deps)) yield* window;
}

/**
 * Bytes [start, end] (inclusive) of the object, a window of stripes at a time: the pieces of one
 * window come together, so a sender can write them in one go (one writev, not one write each).
 */
export async function* readObjectWindows(record: ObjectRecord, start: number, end: number, deps: ReaderDeps): AsyncGenerator<Buffer[]> {
  if (record.inline) {
    yield [inlineBytes(record).subarray(start, end + 1)];
    return;
  }
  const readAhead: ReadAhead = { depth: PREFETCH_WINDOWS, idleMs: deps.readAheadIdleMs ?? READ_AHEAD_IDLE_MS };
  yield* readPlannedWindows(planObjectWindows(record, start, end, deps), record.layout, readAhead, deps);
}

/** An inline object's bytes (raw: the namespace client reads records in blob lines), checked against the CRC32C they were committed with. */
function inlineBytes(record: ObjectRecord): Buffer {
  const bytes = record.inline?.bytes ?? Buffer.alloc(0);
  if (bytes.length !== record.size || crc32c(bytes) >>> 0 !== record.inline?.crc32c) {
    throw new IntegrityError(`inline bytes of ${record.bucket}/${record.key} do not match their record (${bytes.length} of ${record.size} bytes)`);
  }
  return bytes;
}

interface Window {
  firstStripe: number;
  lastStripe: number;
  /** Segment bytes [from, to] wanted from this window. */
  from: number;
  to: number;
}

/** One read's read-ahead, across its segments: `depth` windows ahead, 0 once its consumer stalled. */
interface ReadAhead {
  depth: number;
  idleMs: number;
}

interface SegmentReaderDeps extends ReaderDeps {
  reportFailure: (failure: Omit<ShardFailure, 'record' | 'segment'>) => void;
}

/** What the windows of one segment share while it is read. */
interface SegmentRead {
  segment: Segment;
  deps: SegmentReaderDeps;
  /** Shard indices that failed once: not asked again for this segment. */
  failed: Set<number>;
  /**
   * With a whole segment read, the CRC32C its bytes must have, as the client's bytes had when they
   * arrived: the last line of defence against a bug or memory corruption after the block checks.
   */
  expectedCrc: number | undefined;
  crc: number;
  windowsLeft: number;
}

/** A window of the read, with its segment. */
interface PlannedWindow {
  read: SegmentRead;
  window: Window;
}

/**
 * The windows of bytes [start, end] in order, segment after segment, planned as they are asked for.
 * A record read with a selection carries only some segments (segmentSlice): they must hold the range.
 */
function* planObjectWindows(record: ObjectRecord, start: number, end: number, deps: ReaderDeps): Generator<PlannedWindow> {
  const slice = record.segmentSlice ?? { first: 0, offset: 0 };
  const carried = record.segments.reduce((sum, s) => sum + s.size, 0);
  if (start < slice.offset || end >= slice.offset + carried) {
    throw s3Error('InternalError', `bytes ${start}-${end} are not in the segments read (${slice.offset}..${slice.offset + carried - 1})`);
  }
  let segmentStart = slice.offset;
  for (const [i, segment] of record.segments.entries()) {
    const index = slice.first + i;
    const segmentEnd = segmentStart + segment.size - 1;
    if (segment.size > 0 && segmentEnd >= start && segmentStart <= end) {
      const from = Math.max(start, segmentStart) - segmentStart;
      const to = Math.min(end, segmentEnd) - segmentStart;
      const windows = planWindows(record.layout, segment.size, from, to);
      const read: SegmentRead = {
        segment,
        deps: { ...deps, reportFailure: (f) => deps.onShardFailure?.({ ...f, record, segment: index }) },
        failed: new Set(),
        expectedCrc: from === 0 && to === segment.size - 1 ? segment.crc32c : undefined,
        crc: 0,
        windowsLeft: windows.length,
      };
      for (const window of windows) yield { read, window };
    }
    segmentStart += segment.size;
    if (segmentStart > end) return;
  }
}

/**
 * Fetches the planned windows `readAhead.depth` ahead of the one being sent, across segment
 * boundaries (a 64 MiB GET stalled at its 32 MiB boundary while the next segment's first window was
 * fetched). A whole segment's last window is held back until its CRC32C is known, so a mismatch cuts
 * the response short instead of completing it with wrong bytes.
 */
async function* readPlannedWindows(plan: Iterator<PlannedWindow>, layout: Layout, readAhead: ReadAhead, deps: ReaderDeps): AsyncGenerator<Buffer[]> {
  const budget = deps.downloadBudget ?? sharedDownloadBudget;
  const ahead: AheadWindow[] = [];
  /** Windows read ahead and then let go: asked for again, in order, before the rest of the plan. */
  const again: PlannedWindow[] = [];
  const nextPlanned = (): PlannedWindow | undefined => {
    if (again.length > 0) return again.shift();
    const next = plan.next();
    return next.done ? undefined : next.value;
  };
  /**
   * Asks for windows until `count` are ahead. The one the consumer needs next (`needed`, none ahead)
   * may wait for memory; the others take only memory free at once, and stop at the first refused.
   */
  const fetchUpTo = (count: number, needed: boolean): void => {
    while (ahead.length < count) {
      const planned = nextPlanned();
      if (!planned) return;
      const { segment, failed } = planned.read;
      const bytes = windowMemory(layout, segment, planned.window);
      let memory: Promise<Release>;
      if (needed && ahead.length === 0) {
        // Taken out of `ahead` before it is awaited: only the client going away ends its wait.
        memory = budget.reserve(bytes, deps.signal);
      } else {
        const release = budget.tryReserve(bytes);
        if (!release) {
          again.unshift(planned);
          return;
        }
        memory = Promise.resolve(release);
      }
      const window = readBudgetedWindow(segment, layout, planned.window, failed, planned.read.deps, memory);
      // Marked handled: a window fetched ahead may be abandoned if the client goes away first.
      window.catch(() => undefined);
      ahead.push({ planned, window });
    }
  };
  /** Windows nobody will take as they are: each gives its bytes back once read (read-ahead never waits for memory). */
  const letGo = (windowsAhead: AheadWindow[]): void => {
    for (const { window } of windowsAhead) window.then((w) => w.release(), () => undefined);
  };
  /** Lets go of the windows read ahead; they are fetched again when asked for. */
  const dropReadAhead = (): void => {
    readAhead.depth = 0;
    const dropped = ahead.splice(0);
    letGo(dropped);
    again.unshift(...dropped.map((a) => a.planned));
  };
  /** The window last yielded: its bytes are the consumer's until it asks for the next one. */
  let held: Release | undefined;
  try {
    for (;;) {
      fetchUpTo(Math.max(1, readAhead.depth), true);
      const next = ahead.shift();
      if (!next) return;
      const current = await next.window;
      held = current.release;
      fetchUpTo(readAhead.depth, false);
      checkSegmentCrc(next.planned.read, current.pieces);
      const idle = ahead.length > 0 ? setTimeout(dropReadAhead, readAhead.idleMs) : undefined;
      try {
        yield current.pieces;
      } finally {
        clearTimeout(idle);
      }
      held();
      held = undefined;
    }
  } finally {
    letGo(ahead.splice(0));
    held?.();
  }
}

/** Adds a window's bytes to its segment's CRC32C; at the segment's last window, it must be the one stored. */
function checkSegmentCrc(read: SegmentRead, pieces: Buffer[]): void {
  if (read.expectedCrc === undefined) return;
  for (const piece of pieces) read.crc = crc32c(piece, read.crc) >>> 0;
  if (--read.windowsLeft === 0 && read.crc !== read.expectedCrc >>> 0) {
    throw new IntegrityError(`segment read back with CRC32C ${read.crc.toString(16)}, stored ${(read.expectedCrc >>> 0).toString(16)}`);
  }
}

interface HeldWindow {
  pieces: Buffer[];
  release: Release;
}

/** A window asked for ahead of its turn, with its place in the plan (to ask for it again if let go). */
interface AheadWindow {
  planned: PlannedWindow;
  window: Promise<HeldWindow>;
}

/**
 * A window read once its bytes are reserved: the shard bytes it may fetch (k shards of its range,
 * whether data or, on a degraded read, parity). A failed read gives them back at once.
 */
async function readBudgetedWindow(segment: Segment, layout: Layout, w: Window, failed: Set<number>, deps: SegmentReaderDeps, memory: Promise<Release>): Promise<HeldWindow> {
  const release = await memory;
  try {
    return { pieces: await readWindow(segment, layout, w, failed, deps), release };
  } catch (err) {
    release();
    throw err;
  }
}

/** Memory a window holds: k shards of its range, whether data or, on a degraded read, parity. */
function windowMemory(layout: Layout, segment: Segment, w: Window): number {
  const range = shardRange(layout, segment.size, w);
  return layout.k * (range.end - range.start + 1);
}

function planWindows(layout: Layout, segmentSize: number, from: number, to: number): Window[] {
  const stripeBytes = layout.k * layout.blockSize;
  const stripesPerWindow = Math.max(1, Math.floor(WINDOW_SHARD_BYTES / layout.blockSize));
  const first = Math.floor(from / stripeBytes);
  const last = Math.min(Math.floor(to / stripeBytes), stripeCount(layout, segmentSize) - 1);
  const windows: Window[] = [];
  for (let s = first; s <= last; s += stripesPerWindow) {
    const lastStripe = Math.min(last, s + stripesPerWindow - 1);
    windows.push({
      firstStripe: s,
      lastStripe,
      from: Math.max(from, s * stripeBytes),
      to: Math.min(to, (lastStripe + 1) * stripeBytes - 1),
    });
  }
  return windows;
}

class ShardUnavailable extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * The data shards holding bytes of the window, each with the shard bytes that hold them: on the
 * healthy path a node sends only those (it still reads and checks whole blocks), so a 4 KiB range
 * moves 4 KiB between node and gateway, not the 256 KiB block around it. The bytes of one shard in
 * a window are contiguous: a suffix of its block in the first stripe, whole blocks, a prefix in the last.
 */
function wantedShardRanges(layout: Layout, segmentSize: number, w: Window): Map<number, ShardRange> {
  const ranges = new Map<number, ShardRange>();
  forEachWantedBlock(layout, segmentSize, w, (_stripe, b, shardStart, shardEnd) => {
    const r = ranges.get(b);
    ranges.set(b, r ? { start: Math.min(r.start, shardStart), end: Math.max(r.end, shardEnd) } : { start: shardStart, end: shardEnd });
  });
  return new Map([...ranges].sort(([a], [b]) => a - b));
}

interface ShardRange {
  start: number;
  end: number;
}

/**
 * Calls `visit` for every data block holding bytes of the window, stripe by stripe, with its
 * block index and the shard bytes [shardStart, shardEnd] of it that are wanted.
 */
function forEachWantedBlock(layout: Layout, segmentSize: number, w: Window, visit: (stripe: number, block: number, shardStart: number, shardEnd: number) => void): void {
  const stripeBytes = layout.k * layout.blockSize;
  for (let s = w.firstStripe; s <= w.lastStripe; s++) {
    const dataLen = stripeDataLength(layout, segmentSize, s);
    const len = blockLengthFor(layout, dataLen);
    const base = s * stripeBytes;
    const lo = Math.max(w.from, base) - base;
    const hi = Math.min(w.to, base + dataLen - 1) - base;
    // Every stripe before the last is whole, so block b of stripe s starts at s * blockSize in its shard.
    for (let b = Math.floor(lo / len); b <= Math.floor(hi / len); b++) {
      const blockLo = Math.max(lo, b * len) - b * len;
      const blockHi = Math.min(hi, (b + 1) * len - 1) - b * len;
      visit(s, b, s * layout.blockSize + blockLo, s * layout.blockSize + blockHi);
    }
  }
}

/** Shard byte range covering the window's stripes: every stripe before the last is a full block. */
function shardRange(layout: Layout, segmentSize: number, w: Window): { start: number; end: number } {
  const lastLen = blockLengthFor(layout, stripeDataLength(layout, segmentSize, w.lastStripe));
  return { start: w.firstStripe * layout.blockSize, end: w.lastStripe * layout.blockSize + lastLen - 1 };
}

async function readWindow(segment: Segment, layout: Layout, w: Window, failed: Set<number>, deps: SegmentReaderDeps): Promise<Buffer[]> {
  deps.signal?.throwIfAborted();
  const exact = wantedShardRanges(layout, segment.size, w);
  const wanted = [...exact.keys()];
  const skipped = skipRefusedNodes(segment, wanted, failed, deps);
  const shards = new Map<number, ChunkedBytes>();
  if (!wanted.some((i) => failed.has(i))) {
    // The healthy path: just the wanted bytes of each data shard.
    await fetchShards(segment, wanted, (i) => exact.get(i)!, shards, failed, deps);
    if (wanted.every((i) => shards.has(i))) return assemble(layout, segment.size, w, shards, (i) => exact.get(i)!.start);
    // A shard failed: decoding needs whole blocks of k shards, so the window is read again that way.
    shards.clear();
  }
  const range = shardRange(layout, segment.size, w);
  const whole = (): ShardRange => range;
  // A data shard known to be out of reach: ask for the shards that replace it at the same time.
  await fetchShards(segment, withReplacements(layout, wanted, failed), whole, shards, failed, deps);
  if (wanted.every((i) => shards.has(i))) return assemble(layout, segment.size, w, shards, () => range.start);

  deps.onDegradedRead?.();
  const others = [...Array(layout.k + layout.m).keys()].filter((i) => !shards.has(i) && !failed.has(i));
  // Ask for just enough more shards to reach k, then more if some of those fail too.
  while (shards.size < layout.k && others.length > 0) {
    const batch = others.splice(0, layout.k - shards.size);
    await fetchShards(segment, batch, whole, shards, failed, deps);
  }
  // Last resort: a skipped node may be back (on a new port the directory has not seen yet).
  // Never more than k shards in all: the codec decodes from exactly k.
  while (shards.size < layout.k && skipped.length > 0) {
    const batch = skipped.splice(0, layout.k - shards.size);
    for (const i of batch) failed.delete(i);
    await fetchShards(segment, batch, whole, shards, failed, deps);
  }
  if (wanted.every((i) => shards.has(i))) return assemble(layout, segment.size, w, shards, () => range.start);
  if (shards.size < layout.k) {
    throw s3Error('ServiceUnavailable', `only ${shards.size} of the ${layout.k} shards needed are readable for a segment`);
  }
  const rebuilt = await reconstructWindow(layout, segment.size, w, shards, deps.codec);
  return assemble(layout, segment.size, w, shards, () => range.start, rebuilt);
}

/**
 * Marks the shards whose nodes refused connections lately as failed, without trying them, and
 * returns them: they are tried after all if the other shards are not enough. Only wanted ones
 * count as failed reads; parity on such a node is just not asked for.
 */
function skipRefusedNodes(segment: Segment, wanted: number[], failed: Set<number>, deps: SegmentReaderDeps): number[] {
  const skipped: number[] = [];
  for (const [index, placement] of segment.placements.entries()) {
    if (failed.has(index) || !deps.directory.isRefused(placement?.nodeId)) continue;
    failed.add(index);
    skipped.push(index);
    if (wanted.includes(index)) {
      deps.reportFailure({ index, nodeId: placement.nodeId ?? null, code: 'NodeUnreachable', reason: `node ${placement.nodeId} refused connections lately; not tried` });
    }
  }
  return skipped;
}

/** The wanted shards still readable, then others (data first, then parity) until there are k. */
function withReplacements(layout: Layout, wanted: number[], failed: Set<number>): number[] {
  const picks = wanted.filter((i) => !failed.has(i));
  for (let i = 0; i < layout.k + layout.m && picks.length < layout.k; i++) if (!failed.has(i) && !picks.includes(i)) picks.push(i);
  return picks;
}

async function fetchShards(
  segment: Segment,
  indices: number[],
  rangeOf: (index: number) => ShardRange,
  into: Map<number, ChunkedBytes>,
  failed: Set<number>,
  deps: SegmentReaderDeps,
): Promise<void> {
  await Promise.all(
    indices.map(async (index) => {
      if (failed.has(index)) return;
      const placement = segment.placements[index];
      const range = rangeOf(index);
      try {
        if (!placement?.nodeId) throw new ShardUnavailable('NotPlaced', 'shard was never written');
        const node = await deps.directory.lookup(placement.nodeId);
        const data = await readShardFrom(node, placement, range, deps).catch(async (err: unknown) => {
          // A node restarted on a new port is listed at its old URL until the directory refreshes.
          const refused = node !== undefined && isConnectionRefused(err);
          // Noted at once, so that reads starting meanwhile skip it; a new URL clears it.
          if (refused) deps.directory.noteRefused(placement.nodeId!, node.url);
          const moved = refused ? await deps.directory.fresh(placement.nodeId!) : undefined;
          if (!moved || moved.url === node!.url) throw err;
          return readShardFrom(moved, placement, range, deps);
        });
        if (data.length !== range.end - range.start + 1) throw new ShardUnavailable('ShortRead', `short read: ${data.length} bytes`);
        into.set(index, data);
      } catch (err) {
        // The client went away: nothing failed, and the window is abandoned (see readWindow).
        if (deps.signal?.aborted) return;
        failed.add(index);
        const reason = err instanceof Error ? err.message : String(err);
        const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : 'Unavailable';
        deps.reportFailure({ index, nodeId: placement?.nodeId ?? null, code, reason });
        deps.log.warn('shard read failed; reading parity instead', { shard: placement?.shardId, node: placement?.nodeId, code, reason });
      }
    }),
  );
  // Shards left out because the client went away: the window goes no further (no parity, no retry).
  deps.signal?.throwIfAborted();
}

async function readShardFrom(node: NodeRecord | undefined, placement: ShardPlacement, range: ShardRange, deps: SegmentReaderDeps): Promise<ChunkedBytes> {
  if (!node) throw new ShardUnavailable('NodeUnknown', `node ${placement.nodeId} is unknown`);
  if (node.state === 'down') throw new ShardUnavailable('NodeDown', `node ${placement.nodeId} is down`);
  const client = deps.nodes.get(node.url);
  return new ChunkedBytes(await withFetchSignal(deps.readTimeoutMs, deps.signal, (signal) => client.readShardChunks(placement.shardId, range, signal)));
}

/**
 * Runs a shard fetch with a signal aborted after `timeoutMs` (as AbortSignal.timeout's is) or as
 * soon as the client's is. Not AbortSignal.any: on Node 20 a signal it composes from a timeout is
 * kept for good (nodejs/node#54614), and a gateway makes one per shard fetch.
 */
async function withFetchSignal<T>(timeoutMs: number, clientGone: AbortSignal | undefined, fetch: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (!clientGone) return fetch(AbortSignal.timeout(timeoutMs));
  const either = new AbortController();
  const timer = setTimeout(() => either.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), timeoutMs);
  const onGone = (): void => either.abort(clientGone.reason);
  if (clientGone.aborted) onGone();
  else clientGone.addEventListener('abort', onGone, { once: true });
  try {
    return await fetch(either.signal);
  } finally {
    clearTimeout(timer);
    clientGone.removeEventListener('abort', onGone);
  }
}

function isConnectionRefused(err: unknown): boolean {
  return err instanceof StorageNodeError && err.code === 'Unavailable' && err.details?.cause === 'ECONNREFUSED';
}

/** The missing data blocks of the window, rebuilt: `blocks[s - firstStripe][b]` for data block b of stripe s. */
interface RebuiltWindow {
  blocks: Buffer[][];
}

/**
 * Stripe buffers (data and parity side by side) of windows being rebuilt, kept for the next window:
 * a degraded GET allocated 12 MiB per 8 MiB window, and that external memory drove the gateway's
 * scavenges. Only the rebuilt blocks leave a scratch buffer (copied); it is back here after. The
 * kept buffers are dropped once no window has been rebuilt for SCRATCH_IDLE_MS, so a gateway does
 * not hold them for good after one degraded read.
 */
const scratchBuffers: Buffer[] = [];
/** The two windows one stream rebuilds at a time (PREFETCH_WINDOWS). */
const SCRATCH_KEPT = PREFETCH_WINDOWS;
const SCRATCH_IDLE_MS = 5_000;
const scratchQuiet = new QuietTimer(SCRATCH_IDLE_MS, () => (scratchBuffers.length = 0));

function takeScratch(bytes: number): Buffer {
  const i = scratchBuffers.findIndex((b) => b.length === bytes);
  return i >= 0 ? scratchBuffers.splice(i, 1)[0]! : Buffer.allocUnsafe(bytes);
}

function giveScratch(buf: Buffer): void {
  if (scratchBuffers.length >= SCRATCH_KEPT) scratchBuffers.shift();
  scratchBuffers.push(buf);
  scratchQuiet.touch();
  scratchQuiet.arm();
}

/**
 * Rebuilds the missing data blocks of every stripe of the window. The stripes go to the codec all
 * at once (it runs on the libuv threadpool, so they decode in parallel), in one scratch buffer for
 * the whole window; the rebuilt blocks are then copied out (the blocks that were read are served
 * from the shards as they arrived).
 */
async function reconstructWindow(layout: Layout, segmentSize: number, w: Window, shards: Map<number, ChunkedBytes>, codec: StripeCodec): Promise<RebuiltWindow> {
  const { k, m } = layout;
  // Only data shards matter for the reader; the codec computes just those, from the shards present.
  const targets = [...Array(k).keys()].filter((i) => !shards.has(i));
  const sources = [...shards.keys()];
  const lengths: number[] = [];
  for (let s = w.firstStripe; s <= w.lastStripe; s++) lengths.push(blockLengthFor(layout, stripeDataLength(layout, segmentSize, s)));
  const shardBytes = lengths.reduce((sum, len) => sum + len, 0);
  // Unsafe (and reused) memory is fine: every block is either copied in from a source or recomputed; the rest is scratch.
  const scratch = takeScratch((k + m) * shardBytes);
  const decodes: Promise<void>[] = [];
  try {
    const stripes: { data: Buffer; len: number }[] = [];
    let shardOffset = 0;
    for (const len of lengths) {
      const stripeData = scratch.subarray(k * shardOffset, k * (shardOffset + len));
      const stripeParity = scratch.subarray(k * shardBytes + m * shardOffset, k * shardBytes + m * (shardOffset + len));
      for (const [i, buf] of shards) {
        const [into, at] = i < k ? [stripeData, i * len] : [stripeParity, (i - k) * len];
        buf.copy(into, at, shardOffset, shardOffset + len);
      }
      stripes.push({ data: stripeData, len });
      decodes.push(codec.recover(stripeData, stripeParity, len, targets, sources));
      shardOffset += len;
    }
    await Promise.all(decodes);
    const out = Buffer.allocUnsafe(targets.length * shardBytes);
    let at = 0;
    const blocks = stripes.map(({ data, len }) => {
      const rebuilt: Buffer[] = [];
      for (const b of targets) {
        const block = out.subarray(at, at + len);
        data.copy(block, 0, b * len, (b + 1) * len);
        rebuilt[b] = block;
        at += len;
      }
      return rebuilt;
    });
    return { blocks };
  } finally {
    // Not back before every decode has stopped writing into it, even when one of them failed.
    await Promise.allSettled(decodes);
    giveScratch(scratch);
  }
}

/**
 * Cuts the wanted bytes out of the data shards (or the rebuilt stripes), stripe by stripe, without
 * copying. `startOf(i)` is the shard offset shard i's fetched bytes begin at.
 */
function assemble(layout: Layout, segmentSize: number, w: Window, shards: Map<number, ChunkedBytes>, startOf: (index: number) => number, rebuilt?: RebuiltWindow): Buffer[] {
  const out: Buffer[] = [];
  forEachWantedBlock(layout, segmentSize, w, (s, b, shardStart, shardEnd) => {
    const fetched = shards.get(b);
    if (fetched) out.push(...fetched.views(shardStart - startOf(b), shardEnd - startOf(b) + 1));
    else {
      const at = s * layout.blockSize;
      out.push(rebuilt!.blocks[s - w.firstStripe]![b]!.subarray(shardStart - at, shardEnd - at + 1));
    }
  });
  return out;
}
