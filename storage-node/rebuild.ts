// Rebuilding a shard where it is to live (POST /shards/:id/rebuild, asked by repair): the node reads
// k shards of the segment from the nodes holding them, recomputes the wanted shard stripe by stripe
// and stores it like any uploaded shard. The rebuilt bytes cross no network (repair used to decode
// and send them on: one hop more per byte rebuilt), and rebuilds spread over the nodes that receive
// shards instead of all passing through the one repair process. Sources on the other disks of this
// same process (a machine's disks share one) are read from their stores directly: the same CRC-checked
// reads, without sending every byte through loopback TCP twice.
import { withDeadline } from '../common/deadline.js';
import { sharedCodec } from '../erasure/codec.js';
import { shardFramedLength, validateLayout, type Layout } from '../erasure/layout.js';
import { rebuildFramed } from '../erasure/rebuild.js';
import type { StorageNodePool } from './client.js';
import { TokenBucket } from './scrub.js';
import { StoreError, type ShardStore } from './store.js';
import { isValidShardId, type PutShardResponse, type RebuildShardRequest } from './types.js';

/** The request, checked: a layout the codec takes, exactly k distinct sources, none of them the wanted shard. */
export function parseRebuildRequest(body: unknown): RebuildShardRequest {
  const fail = (message: string): never => {
    throw new StoreError('InvalidArgument', `rebuild request: ${message}`);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return fail('must be a JSON object');
  const r = body as Record<string, unknown>;
  const layout = { k: r.k, m: r.m, blockSize: r.blockSize } as Layout;
  try {
    validateLayout(layout);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const total = layout.k + layout.m;
  const isIndex = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < total;
  if (!Number.isSafeInteger(r.segmentSize) || (r.segmentSize as number) < 1) fail('segmentSize must be a positive integer');
  if (!isIndex(r.index)) fail(`index must be in 0..${total - 1}`);
  if (!Array.isArray(r.sources) || r.sources.length !== layout.k) fail(`exactly k = ${layout.k} sources are needed`);
  const sources = (r.sources as unknown[]).map((s, i) => {
    const { index, url, shardId } = (s ?? {}) as Record<string, unknown>;
    if (!isIndex(index) || index === r.index) fail(`sources[${i}].index must be another shard's index`);
    if (typeof url !== 'string' || !isHttpUrl(url)) fail(`sources[${i}].url must be a node's http(s) base URL`);
    if (typeof shardId !== 'string' || !isValidShardId(shardId)) fail(`sources[${i}].shardId is not a shard id`);
    return { index: index as number, url: url as string, shardId: shardId as string };
  });
  if (new Set(sources.map((s) => s.index)).size !== sources.length) fail('a source index is listed twice');
  const rate = r.bytesPerSecond;
  if (rate !== undefined && !(typeof rate === 'number' && Number.isFinite(rate) && rate > 0)) fail('bytesPerSecond must be a positive number');
  const paced = rate === undefined ? {} : { bytesPerSecond: rate as number };
  return { k: layout.k, m: layout.m, blockSize: layout.blockSize, segmentSize: r.segmentSize as number, index: r.index as number, sources, ...paced };
}

function isHttpUrl(text: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

/** The store of a disk this process serves, by the URL it is reached at; undefined for other nodes. */
export type LocalStores = (url: string) => ShardStore | undefined;

/** The form of a node URL that `LocalStores` keys on, so "http://h:1" and "http://h:1/" are one node. */
export function nodeUrlKey(url: string): string {
  return new URL(url).href;
}

/** Where a rebuild reads from, and what it tells as it goes. */
export interface RebuildIo {
  /** Clients of the other nodes. */
  peers: StorageNodePool;
  /** Disks of this process, read from their stores instead (default: none). */
  localStores?: LocalStores;
  /**
   * A local source that yields nothing for this long fails, as a remote one does through its
   * client's timeout: the answer's keepalive lines would otherwise hide a hung disk from repair.
   */
  localIdleMs: number;
  signal: AbortSignal;
  /** The data bytes written so far, after each stripe. */
  onProgress(bytes: number): void;
  /** Source bytes as they are read, by where they came from. */
  onSourceBytes?(where: 'local' | 'remote', bytes: number): void;
}

/**
 * Rebuilds and stores shard `id`. A source that fails surfaces as erasure's ShardSourceError naming
 * it (its node's or its local store's error as the cause); nothing is stored then.
 */
export async function rebuildShard(store: ShardStore, id: string, req: RebuildShardRequest, io: RebuildIo): Promise<PutShardResponse> {
  const { signal, onProgress } = io;
  const layout: Layout = { k: req.k, m: req.m, blockSize: req.blockSize };
  const byIndex = new Map(req.sources.map((s) => [s.index, s]));
  const open = async (index: number): Promise<AsyncIterable<Buffer>> => {
    const source = byIndex.get(index)!;
    const here = io.localStores?.(source.url);
    const where = here ? 'local' : 'remote';
    const bytes = here ? await readLocal(here, source.shardId, signal, io.localIdleMs) : await io.peers.get(source.url).streamShard(source.shardId, undefined, signal);
    return io.onSourceBytes ? counted(bytes, (n) => io.onSourceBytes!(where, n)) : bytes;
  };
  const stripes = rebuildFramed(open, [...byIndex.keys()], [req.index], layout, req.segmentSize, sharedCodec(layout));
  // Bytes read and written per stripe: k blocks in, one out.
  const pace = req.bytesPerSecond === undefined ? undefined : new TokenBucket(req.bytesPerSecond, 4 * layout.blockSize);
  let bytes = 0;
  async function* frames(): AsyncGenerator<Buffer> {
    for await (const stripe of stripes) {
      await pace?.take(stripe.length * (layout.k + 1), signal);
      yield stripe.frames[0]!;
      bytes += stripe.length;
      onProgress(bytes);
    }
  }
  return store.put(id, layout.blockSize, frames(), shardFramedLength(layout, req.segmentSize));
}

/**
 * A whole shard of a disk in this process, as its GET would send it (every block CRC-checked). A
 * chunk goes back to the store's pool when the next one is asked for: the rebuild copies each
 * chunk into its stripe before it asks again (ExactReader.readInto). A read that hangs longer than
 * `idleMs` fails with Unavailable; the reader is then closed in the background (closing waits for
 * the read under way).
 */
async function readLocal(store: ShardStore, id: string, signal: AbortSignal, idleMs: number): Promise<AsyncIterable<Buffer>> {
  const opening = store.openRead(id);
  const reader = await within(opening, idleMs, `opening local shard ${id}`).catch((err: unknown) => {
    void opening.then((r) => r.close(), () => undefined);
    throw err;
  });
  const chunks = reader[Symbol.asyncIterator]();
  return (async function* () {
    let hung = false;
    try {
      for (;;) {
        const step = await within(chunks.next(), idleMs, `reading local shard ${id}`).catch((err: unknown) => {
          hung = err instanceof StoreError && err.code === 'Unavailable';
          throw err;
        });
        if (step.done) return;
        signal.throwIfAborted();
        try {
          yield step.value.data;
        } finally {
          step.value.release();
        }
      }
    } finally {
      if (hung) void reader.close().catch(() => undefined);
      else await reader.close();
    }
  })();
}

/** `promise`, or an Unavailable StoreError once `ms` pass first. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withDeadline(promise, ms, () => new StoreError('Unavailable', `${what}: nothing for ${ms} ms`));
}

async function* counted(source: AsyncIterable<Buffer>, count: (bytes: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    count(chunk.length);
    yield chunk;
  }
}
