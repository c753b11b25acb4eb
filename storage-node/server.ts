// The storage node's HTTP API over a ShardStore. Errors are JSON {code, message, details} with the
// statuses in STATUS_BY_CODE; a read that fails after its headers went out is cut (socket destroyed)
// so the client can never mistake a partial body for a whole one.
import type http from 'node:http';
import { once } from 'node:events';
import { createServiceServer, HttpError, readBody, readJson, Router, sendJson, settleBatchItem, verifiedBody, type BatchResponse } from '../common/http.js';
import {
  BATCH_MANIFEST_SHA256_HEADER,
  decodeShardBatch,
  encodeReadResults,
  MAX_SHARD_BATCH_BYTES,
  readBatchItems,
  ShardBatchError,
  shardBatchManifestHead,
  type BatchedRead,
  type BatchedShard,
} from './shard-batch.js';
import { checkBodyDigest, CONTENT_SHA256_HEADER, InternalAuthError, UNSIGNED_PAYLOAD, type ClusterSecret } from '../common/internal-auth.js';
import type { Logger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { DEFAULT_SCRUB_RATE, SCRUB_LIMITS, Scrubber, type ScrubPlan } from './scrub.js';
import { StoreError, type ByteRange, type ShardReader, type ShardStore } from './store.js';
import {
  BLOCK_SIZE_HEADER,
  DATA_LENGTH_HEADER,
  MTIME_HEADER,
  STORED_LENGTH_HEADER,
  isValidShardId,
  type PutShardResponse,
  type RebuildShardLine,
  type ShardInfo,
  type StorageErrorCode,
} from './types.js';
import { StorageNodeError, StorageNodePool } from './client.js';
import { parseRebuildRequest, rebuildShard, type LocalStores } from './rebuild.js';
import { ShardSourceError } from '../erasure/stream.js';

export interface StorageNodeServerOptions {
  log: Logger;
  /** Every request but /health and /metrics must be signed with it. */
  secret: ClusterSecret;
  /** The Host clients address this node by (its advertised URL's), once known: requests signed for another node are refused. */
  host?: () => string | undefined;
  /** Defaults to a fresh registry for service "storage-node". */
  metrics?: Registry;
  /** Bytes per second the scrubber may read (default 50 MB/s). */
  scrubRate?: number;
  /** The other disks this process serves: a rebuild reads its sources on them from disk, not over HTTP. */
  localStores?: LocalStores;
}

/** A rebuild source that sends nothing for this long (over HTTP, or from a local disk) fails (repair then tries another), like repair's own --shard-timeout. */
const REBUILD_SOURCE_TIMEOUT_MS = 10_000;
/** A rebuild's answer carries a progress line at least this often (callers time out after ~10 s of silence). */
const REBUILD_KEEPALIVE_MS = 2_000;

export const STATUS_BY_CODE: Record<StorageErrorCode, number> = {
  NoSuchShard: 404,
  CorruptBlock: 409,
  InvalidShardId: 400,
  BadFrame: 400,
  InvalidArgument: 400,
  InvalidRange: 416,
  ShardTooLarge: 413,
  InsufficientStorage: 507,
  Busy: 503,
  Unavailable: 503,
  SourceFailed: 502,
  InternalError: 500,
  // Never thrown by a handler: the client's name for a 401/403 from internal authentication.
  Unauthorized: 403,
};

const MAX_LIST_LIMIT = 10_000;
const DEFAULT_LIST_LIMIT = 1000;

interface NodeMetrics {
  bytesWritten: { inc(labels?: Record<string, string>, by?: number): void };
  bytesRead: { inc(labels?: Record<string, string>, by?: number): void };
  corruptBlocks: { inc(labels?: Record<string, string>, by?: number): void };
  scrubbedBytes: { inc(labels?: Record<string, string>, by?: number): void };
  scrubCorruptShards: { inc(labels?: Record<string, string>, by?: number): void };
  putBatches: { inc(labels?: Record<string, string>, by?: number): void };
  readBatches: { inc(labels?: Record<string, string>, by?: number): void };
  rebuilds: { inc(labels?: Record<string, string>, by?: number): void };
  rebuildFailures: { inc(labels?: Record<string, string>, by?: number): void };
  rebuildSourceBytes: { inc(labels?: Record<string, string>, by?: number): void };
}

export function createStorageNodeServer(store: ShardStore, opts: StorageNodeServerOptions): http.Server {
  const metrics = opts.metrics ?? new Registry('storage-node');
  const m = registerMetrics(metrics, store);
  const router = new Router();
  const route = (method: string, pattern: string, handler: Parameters<Router['on']>[2]): void => {
    router.on(method, pattern, async (req, res, params, url) => {
      try {
        await handler(req, res, params, url);
      } catch (err) {
        if (err instanceof StoreError && err.code === 'CorruptBlock') m.corruptBlocks.inc();
        throw toHttpError(err);
      }
    });
  };

  route('GET', '/shards', async (_req, res, _params, url) => {
    const after = url.searchParams.get('after') ?? undefined;
    const limit = parseLimit(url.searchParams.get('limit'));
    sendJson(res, 200, await store.list(after || undefined, limit));
  });

  route('PUT', '/shards/:id', async (req, res, params) => {
    const blockSize = parseBlockSize(req.headers[BLOCK_SIZE_HEADER]);
    const expected = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    try {
      const result = await store.put(params.id, blockSize, requestBody(req), expected);
      m.bytesWritten.inc(undefined, result.storedLength);
      sendJson(res, 201, result);
    } catch (err) {
      // Stop the rest of an unread body from being drained through a refused upload.
      if (!req.complete) res.setHeader('connection', 'close');
      if (req.destroyed && !(err instanceof StoreError)) {
        opts.log.debug('upload abandoned by client', { id: params.id });
        res.destroy();
        return;
      }
      throw err;
    }
  });

  // Whole small shards, several per request (see shard-batch.ts): each is stored and answered as if
  // it came alone, and together they share the pack log's group sync.
  route('POST', '/batch/shards', async (req, res) => {
    const body = verifiedBody(req) ?? (await readBody(req, MAX_BATCH_BODY_BYTES));
    if (req.headers[CONTENT_SHA256_HEADER] === UNSIGNED_PAYLOAD) checkManifestDigest(req, body);
    const shards = parseBatch(() => decodeShardBatch(body));
    m.putBatches.inc();
    const put = async (shard: BatchedShard): Promise<PutShardResponse> => {
      const result = await store.put(shard.id, shard.blockSize, only(shard.framed), shard.framed.length);
      m.bytesWritten.inc(undefined, result.storedLength);
      return result;
    };
    const results: BatchResponse<PutShardResponse>['results'] = await Promise.all(shards.map((shard) => settleBatchItem(opts.log, () => put(shard), toHttpError)));
    sendJson(res, 200, { results });
  });

  // Small ranges of several shards in one request (see shard-batch.ts): each read is verified and
  // answered as if it came alone.
  route('POST', '/batch/reads', async (req, res) => {
    const request = await readJson<unknown>(req).catch(badJson);
    const reads = parseBatch(() => readBatchItems(request));
    m.readBatches.inc();
    const read = async ({ id, start, end }: BatchedRead): Promise<Buffer[]> => {
      const bytes = await readWhole(store, id, { start, end }).catch((err: unknown) => {
        if (err instanceof StoreError && err.code === 'CorruptBlock') m.corruptBlocks.inc();
        throw err;
      });
      m.bytesRead.inc(undefined, bytes.length);
      return [bytes];
    };
    const results = await Promise.all(reads.map((r) => settleBatchItem(opts.log, () => read(r), toHttpError)));
    const parts = encodeReadResults(results);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': parts.reduce((sum, p) => sum + p.length, 0) });
    res.cork();
    for (const part of parts) res.write(part);
    res.end();
    res.uncork();
  });

  route('GET', '/shards/:id', async (req, res, params) => {
    const range = parseRange(req.headers.range);
    const reader = await store.openRead(params.id, range).catch((err: unknown) => {
      if (err instanceof StoreError && err.code === 'InvalidRange' && typeof err.details?.dataLength === 'number') {
        res.setHeader('content-range', `bytes */${err.details.dataLength}`);
      }
      throw err;
    });
    try {
      await sendShard(res, reader, range !== undefined, m, opts.log);
    } finally {
      await reader.close();
    }
  });

  route('HEAD', '/shards/:id', async (_req, res, params) => {
    const info = await store.stat(params.id);
    if (!info) throw new StoreError('NoSuchShard', `no shard ${params.id}`);
    res.writeHead(200, { ...infoHeaders(info), 'content-length': info.dataLength, 'accept-ranges': 'bytes' });
    res.end();
  });

  route('DELETE', '/shards/:id', async (_req, res, params) => {
    await store.delete(params.id);
    res.writeHead(204);
    res.end();
  });

  // Clients of the other nodes, made on the first rebuild and closed with the server.
  let peerPool: StorageNodePool | undefined;
  const peers = (): StorageNodePool => (peerPool ??= new StorageNodePool({ secret: opts.secret, timeoutMs: REBUILD_SOURCE_TIMEOUT_MS }));

  // Rebuilds a shard here from k others (see rebuild.ts); the answer streams progress, then the outcome.
  route('POST', '/shards/:id/rebuild', async (req, res, params) => {
    const request = parseRebuildRequest(await readJson<unknown>(req, 64 * 1024).catch(badJson));
    if (!isValidShardId(params.id)) throw new StoreError('InvalidShardId', `invalid shard id: ${JSON.stringify(params.id)}`);
    const stop = new AbortController();
    res.on('close', () => stop.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.flushHeaders();
    const line = (entry: RebuildShardLine): void => void res.write(`${JSON.stringify(entry)}\n`);
    // A paced rebuild may spend longer than the caller's idle timeout on one stripe: say it is alive.
    let written = 0;
    const alive = setInterval(() => line({ progress: { bytes: written } }), REBUILD_KEEPALIVE_MS);
    try {
      const result = await rebuildShard(store, params.id, request, {
        peers: peers(),
        localStores: opts.localStores,
        localIdleMs: REBUILD_SOURCE_TIMEOUT_MS,
        signal: stop.signal,
        onProgress: (bytes) => line({ progress: { bytes: (written = bytes) } }),
        onSourceBytes: (where, bytes) => m.rebuildSourceBytes.inc({ source: where }, bytes),
      });
      m.bytesWritten.inc(undefined, result.storedLength);
      m.rebuilds.inc();
      line({ done: result });
    } catch (err) {
      m.rebuildFailures.inc();
      line({ failed: rebuildFailure(err, opts.log) });
    } finally {
      clearInterval(alive);
    }
    res.end();
  });

  route('POST', '/shards/:id/verify', async (_req, res, params) => {
    const result = await store.verify(params.id);
    m.corruptBlocks.inc(undefined, result.corruptBlocks.length);
    sendJson(res, 200, result);
  });

  const scrubber = new Scrubber(
    store,
    opts.scrubRate ?? DEFAULT_SCRUB_RATE,
    {
      onBytes: (bytes) => m.scrubbedBytes.inc(undefined, bytes),
      onCorrupt: (shard) => {
        m.scrubCorruptShards.inc();
        m.corruptBlocks.inc(undefined, shard.blocks.length);
        opts.log.warn('scrub found a corrupt shard', shard);
      },
    },
    opts.log,
  );
  route('POST', '/scrub', async (req, res) => {
    // A caller that gives up (timeout) frees the scrubber for the next one instead of leaving it busy.
    // Listening before the body is read, so an early hang-up is not missed.
    const stop = new AbortController();
    res.on('close', () => stop.abort());
    const plan = scrubPlan(await readJson<unknown>(req, 64 * 1024).catch(badJson));
    try {
      sendJson(res, 200, await scrubber.run(plan, stop.signal));
    } catch (err) {
      if (!stop.signal.aborted) throw err;
      res.destroy();
    }
  });

  const server = createServiceServer({
    service: 'storage-node',
    router,
    log: opts.log,
    metrics,
    secret: opts.secret,
    host: opts.host,
    health: async () => ({ nodeId: store.nodeId, ...(await store.usage()), writesInFlight: store.writesInFlight, shardWrites: store.writeMode, largeShardReads: store.largeReadMode, packMaxBytes: store.packMaxBytes, packedShards: store.packedCount, openFilesMax: store.openFileMax, scrubbing: scrubber.busy }),
  });
  server.on('close', () => void peerPool?.close());
  return server;
}

/** What a failed rebuild reports in its last line: a failed source by its index (repair retries without it). */
function rebuildFailure(err: unknown, log: Logger): Extract<RebuildShardLine, { failed: unknown }>['failed'] {
  if (err instanceof ShardSourceError) {
    // A source on another node failed with its node's code; one on a disk of this process, with its store's.
    const cause = err.cause;
    const sourceCode = cause instanceof StorageNodeError || cause instanceof StoreError ? cause.code : 'Unavailable';
    return { code: 'SourceFailed', status: STATUS_BY_CODE.SourceFailed, message: err.message, sourceIndex: err.shardIndex, sourceCode };
  }
  if (err instanceof StoreError) return { code: err.code, status: STATUS_BY_CODE[err.code], message: err.message };
  log.error('rebuild failed', { err });
  return { code: 'InternalError', status: 500, message: err instanceof Error ? err.message : String(err) };
}

function registerMetrics(metrics: Registry, store: ShardStore): NodeMetrics {
  metrics.gauge('cairn_storage_shards', 'Shards stored on this node').set(() => store.shardCount);
  metrics.gauge('cairn_storage_used_bytes', 'Bytes of shard files on this node').set(() => store.usedBytes);
  metrics.gauge('cairn_storage_writes_in_flight', 'Shard uploads being written').set(() => store.writesInFlight);
  metrics.gauge('cairn_storage_packed_shards', 'Small shards held as records of pack logs').set(() => store.packedCount);
  metrics.gauge('cairn_storage_pack_appends_total', 'Shards appended to pack logs since start').set(() => store.packStats.appends);
  metrics.gauge('cairn_storage_pack_syncs_total', 'Batches (one write and one fdatasync each) the pack appends went out in').set(() => store.packStats.batches);
  metrics.gauge('cairn_storage_pack_compactions_total', 'Pack logs compacted away since start').set(() => store.packStats.compactions);
  metrics.gauge('cairn_storage_open_shard_files', 'Shard files kept open between reads').set(() => store.openFileCount);
  metrics.gauge('cairn_storage_shard_file_reuses_total', 'Reads that found their shard file kept open (no open or header read; one fstat checks the file is unchanged)').set(() => store.openFileStats.reused);
  metrics.gauge('cairn_storage_shard_files_kept_total', 'Shard files opened by a read and kept open for the next').set(() => store.openFileStats.kept);
  metrics.gauge('cairn_storage_shard_files_changed_total', 'Kept shard files found renamed over, removed or changed from outside the node when a read came back for them (closed, the shard opened afresh): someone else writes in the data dir').set(() => store.openFileStats.stale);
  return {
    bytesWritten: metrics.counter('cairn_storage_bytes_written_total', 'Bytes of shard files written'),
    bytesRead: metrics.counter('cairn_storage_bytes_read_total', 'Data bytes sent by shard reads'),
    corruptBlocks: metrics.counter('cairn_storage_corrupt_blocks_total', 'Blocks found failing their CRC32C (reads and verifies)'),
    scrubbedBytes: metrics.counter('cairn_storage_scrubbed_bytes_total', 'Bytes of shard files read and checked by the scrubber'),
    scrubCorruptShards: metrics.counter('cairn_storage_scrub_corrupt_shards_total', 'Shards the scrubber found corrupt (counted once per scrub that finds them)'),
    putBatches: metrics.counter('cairn_storage_put_batches_total', 'POST /batch/shards requests (several whole small shards each)'),
    readBatches: metrics.counter('cairn_storage_read_batches_total', 'POST /batch/reads requests (several small shard reads each)'),
    rebuilds: metrics.counter('cairn_storage_rebuilds_total', 'Shards rebuilt here from other nodes (POST /shards/:id/rebuild)'),
    rebuildFailures: metrics.counter('cairn_storage_rebuild_failures_total', 'Rebuilds that stored nothing (a source or this node failed)'),
    rebuildSourceBytes: metrics.counter('cairn_storage_rebuild_source_bytes_total', 'Bytes rebuilds here read from their sources, by source: "local" (a disk of this process, read from its store) or "remote" (another node, over HTTP)'),
  };
}

/** A batch body holds at most MAX_SHARD_BATCH_BYTES of shards and a small manifest. */
const MAX_BATCH_BODY_BYTES = MAX_SHARD_BATCH_BYTES + 128 * 1024;

/** A small verified read, gathered in one buffer (the reader's chunks may be pooled: each goes back once copied). */
async function readWhole(store: ShardStore, id: string, range: ByteRange): Promise<Buffer> {
  const reader = await store.openRead(id, range);
  try {
    const out = Buffer.allocUnsafe(reader.length);
    let at = 0;
    for await (const chunk of reader) {
      at += chunk.data.copy(out, at);
      chunk.release();
    }
    if (at !== reader.length) throw new StoreError('InternalError', `read ${at} of ${reader.length} bytes of ${id}`);
    return out;
  } finally {
    await reader.close();
  }
}

/** A batch request that does not parse is the client's mistake: InvalidArgument, like any bad input. */
function parseBatch<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ShardBatchError) throw new StoreError('InvalidArgument', err.message);
    throw err;
  }
}

/** An unsigned batch body (as clients send them) is stored only if its manifest is the one the signature covers. */
function checkManifestDigest(req: http.IncomingMessage, body: Buffer): void {
  const claimed = req.headers[BATCH_MANIFEST_SHA256_HEADER];
  if (typeof claimed !== 'string' || !/^[0-9a-f]{64}$/.test(claimed)) {
    throw new InternalAuthError(401, 'ClusterAuthMissing', `an unsigned shard batch needs ${BATCH_MANIFEST_SHA256_HEADER} (hex SHA-256 of its manifest)`);
  }
  checkBodyDigest(claimed, parseBatch(() => shardBatchManifestHead(body)));
}

async function* only(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** The request body, failing if the client went away: a cut at a frame boundary must not pass for a complete shard. */
async function* requestBody(req: http.IncomingMessage): AsyncGenerator<Buffer> {
  // A body whose digest was signed was read whole to check it (clients stream shards unsigned).
  const checked = verifiedBody(req);
  if (checked) {
    yield checked;
    return;
  }
  for await (const chunk of req as AsyncIterable<Buffer>) yield chunk;
  if (!req.complete) throw new Error('client disconnected before the body was complete');
}

async function sendShard(res: http.ServerResponse, reader: ShardReader, ranged: boolean, m: NodeMetrics, log: Logger): Promise<void> {
  const { info, start, end, length } = reader;
  const headers: http.OutgoingHttpHeaders = { ...infoHeaders(info), 'content-type': 'application/octet-stream', 'content-length': length, 'accept-ranges': 'bytes' };
  if (ranged) headers['content-range'] = `bytes ${start}-${end}/${info.dataLength}`;
  res.writeHead(ranged ? 206 : 200, headers);
  try {
    await writeChunks(res, reader, m);
  } catch (err) {
    if (err instanceof StoreError && err.code === 'CorruptBlock') {
      m.corruptBlocks.inc();
      log.warn('corrupt block found mid-stream; response cut', { id: info.id, ...err.details });
    }
    res.destroy();
  }
}

/**
 * Writes the reader's chunks straight to the response, waiting only when the socket is full. A
 * batch that the reader verified together goes out corked, as one writev, and no stream adapter
 * or generator sits between the file and the socket (they cost more CPU than the copy itself).
 */
async function writeChunks(res: http.ServerResponse, reader: ShardReader, m: NodeMetrics): Promise<void> {
  const closed = once(res, 'close').then(() => 'closed' as const);
  for await (const chunk of reader) {
    m.bytesRead.inc(undefined, chunk.data.length);
    if (res.destroyed) throw new Error('client went away');
    res.cork();
    // The chunk's buffer may be pooled: it goes back only once the socket is done with it.
    const room = res.write(chunk.data, (err) => {
      if (!err) chunk.release();
    });
    process.nextTick(() => res.uncork());
    if (!room && (await Promise.race([once(res, 'drain').then(() => 'drained' as const), closed])) === 'closed') throw new Error('client went away');
  }
  res.end();
}

function infoHeaders(info: ShardInfo): http.OutgoingHttpHeaders {
  return {
    [DATA_LENGTH_HEADER]: info.dataLength,
    [BLOCK_SIZE_HEADER]: info.blockSize,
    [STORED_LENGTH_HEADER]: info.storedLength,
    [MTIME_HEADER]: info.mtime,
  };
}

function toHttpError(err: unknown): unknown {
  if (!(err instanceof StoreError)) return err;
  return new HttpError(STATUS_BY_CODE[err.code], err.code, err.message, err.details);
}

function badJson(err: unknown): never {
  if (err instanceof HttpError) throw new StoreError('InvalidArgument', err.message);
  throw err;
}

function scrubPlan(body: unknown): ScrubPlan {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new StoreError('InvalidArgument', 'scrub request must be a JSON object');
  const f = body as Record<string, unknown>;
  const count = (value: unknown, what: string, fallback: number, max: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new StoreError('InvalidArgument', `${what} must be an integer in 1..${max}`);
    }
    return value;
  };
  const plan: ScrubPlan = {
    limit: count(f.limit, 'limit', SCRUB_LIMITS.defaultShards, SCRUB_LIMITS.maxShards),
    maxBytes: count(f.maxBytes, 'maxBytes', SCRUB_LIMITS.defaultBytes, SCRUB_LIMITS.maxBytes),
  };
  if (f.after !== undefined && f.after !== '') {
    if (typeof f.after !== 'string' || !isValidShardId(f.after)) throw new StoreError('InvalidArgument', 'after must be a shard id');
    plan.after = f.after;
  }
  return plan;
}

function parseBlockSize(value: string | string[] | undefined): number {
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value)) {
    throw new StoreError('InvalidArgument', `header ${BLOCK_SIZE_HEADER} must be a positive integer`);
  }
  return Number(value);
}

function parseLimit(value: string | null): number {
  if (value === null || value === '') return DEFAULT_LIST_LIMIT;
  const n = /^\d{1,6}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= MAX_LIST_LIMIT)) throw new StoreError('InvalidArgument', `limit must be an integer in 1..${MAX_LIST_LIMIT}`);
  return n;
}

/** One range over the data bytes: bytes=a-b, bytes=a- or bytes=-n. Several ranges are refused, not merged. */
export function parseRange(header: string | undefined): ByteRange | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) throw new StoreError('InvalidRange', `unsupported Range header "${header.slice(0, 100)}"`);
  if (match[1] === '') return { suffix: Number(match[2]) };
  return match[2] === '' ? { start: Number(match[1]) } : { start: Number(match[1]), end: Number(match[2]) };
}
