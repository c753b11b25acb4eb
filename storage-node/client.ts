// The typed client of a storage node, used by the gateway and repair. One undici Pool per node keeps
// connections alive and bounded; every failure surfaces as a StorageNodeError with a stable code,
// and anything that is not an HTTP answer (refused, reset, timeout, cut body) is 'Unavailable'.
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { Pool, buildConnector, type Dispatcher } from 'undici';
import { releaseOnWritten } from '../common/buffer-pool.js';
import { Batcher, outcomeOf, sumBatcherStats, type BatcherStats, type Outcome } from '../common/batcher.js';
import { chunksOf } from '../common/chunks.js';
import type { BatchError, BatchResponse } from '../common/http.js';
import { sha256Hex, signRequest, type ClusterSecret } from '../common/internal-auth.js';
import {
  BLOCK_SIZE_HEADER,
  DATA_LENGTH_HEADER,
  MTIME_HEADER,
  STORED_LENGTH_HEADER,
  isValidShardId,
  type PutShardResponse,
  type RebuildShardLine,
  type RebuildShardRequest,
  type ScrubRequest,
  type ScrubResponse,
  type ShardInfo,
  type ShardListPage,
  type StorageErrorCode,
  type VerifyShardResponse,
} from './types.js';
import {
  BATCHED_READ_MAX_BYTES,
  BATCHED_SHARD_MAX_BYTES,
  BATCH_MANIFEST_SHA256_HEADER,
  decodeReadResults,
  encodeShardBatch,
  MAX_READ_BATCH,
  MAX_READ_BATCH_BYTES,
  MAX_SHARD_BATCH,
  MAX_SHARD_BATCH_BYTES,
  shardBatchManifestHead,
  type BatchedRead,
  type BatchedShard,
  type ShardReadBatchRequest,
} from './shard-batch.js';

export interface StorageNodeClientOptions {
  /** Every request is signed with it (nodes refuse unsigned ones). */
  secret: ClusterSecret;
  /** Connect, response-headers and between-body-chunks timeout. Default 30 s. */
  timeoutMs?: number;
  /** Most connections open to this node at once. Default 32. */
  connections?: number;
  /** Whole-shard writes out at once; further ones wait and go together as one batch (default 2). */
  batchInFlight?: number;
}

export interface DataRange {
  start: number;
  /** Inclusive; clamped by the node to the shard's last byte, as HTTP ranges are. */
  end: number;
}

export class StorageNodeError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    /** HTTP status; 503 when no answer came back (code 'Unavailable'). */
    readonly status: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'StorageNodeError';
  }
}

const KNOWN_CODES: ReadonlySet<string> = new Set<StorageErrorCode>([
  'NoSuchShard', 'CorruptBlock', 'InvalidShardId', 'InvalidRange', 'BadFrame', 'InsufficientStorage',
  'Unavailable', 'InternalError', 'InvalidArgument', 'ShardTooLarge', 'Busy', 'Unauthorized', 'SourceFailed',
]);

/** For replies without a JSON body (HEAD) or with a code this client does not know. */
function codeForStatus(status: number): StorageErrorCode {
  switch (status) {
    case 401: case 403: return 'Unauthorized';
    case 404: return 'NoSuchShard';
    case 409: return 'CorruptBlock';
    case 413: return 'ShardTooLarge';
    case 416: return 'InvalidRange';
    case 507: return 'InsufficientStorage';
    case 502: case 503: case 504: return 'Unavailable';
    default: return status >= 500 ? 'InternalError' : 'InvalidArgument';
  }
}

const MAX_ERROR_BODY = 64 * 1024;

interface RequestSpec {
  method: Dispatcher.HttpMethod;
  path: string;
  headers?: Record<string, string>;
  /** A string or Buffer is a whole body and signed as such; a stream is sent chunked, UNSIGNED_PAYLOAD. */
  body?: Readable | AsyncIterable<Buffer> | string | Buffer;
  /** The body is framed shard bytes: signed UNSIGNED_PAYLOAD even when whole, as a streamed shard is (every frame carries its CRC32C). */
  shardBytes?: boolean;
  idempotent?: boolean;
  signal?: AbortSignal;
}

export class StorageNodeClient {
  readonly baseUrl: string;
  private readonly pool: Pool;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly host: string;
  private readonly secret: ClusterSecret;
  /** Small whole shards: sent alone while few are out, gathered into POST /batch/shards while many are. */
  private readonly wholePuts: Batcher<BatchedShard, PutShardResponse>;
  /** Small ranged reads: the same, gathered into POST /batch/reads. */
  private readonly smallReads: Batcher<BatchedRead, Buffer[]>;

  constructor(baseUrl: string, opts: StorageNodeClientOptions) {
    const url = new URL(baseUrl);
    this.baseUrl = baseUrl;
    this.host = url.host;
    this.secret = opts.secret;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.pool = new Pool(url.origin, {
      connections: opts.connections ?? 32,
      connect: connectorReleasingPooledWrites(Math.min(this.timeoutMs, 10_000)),
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
    });
    this.wholePuts = new Batcher((batch) => this.sendWholeShards(batch), {
      maxInFlight: opts.batchInFlight ?? 2,
      maxBatch: MAX_SHARD_BATCH,
      maxBatchWeight: MAX_SHARD_BATCH_BYTES,
      weigh: (shard) => shard.framed.length,
    });
    this.smallReads = new Batcher((batch) => this.sendSmallReads(batch), {
      maxInFlight: opts.batchInFlight ?? 2,
      maxBatch: MAX_READ_BATCH,
      maxBatchWeight: MAX_READ_BATCH_BYTES,
      weigh: (read) => read.end - read.start + 1,
    });
  }

  /** Requests that carried small reads, the reads they carried, and those waiting to go. */
  get smallReadStats(): { requests: number; items: number; queued: number } {
    return { ...this.smallReads.stats, queued: this.smallReads.queued };
  }

  /** Requests that carried whole-shard writes, the shards they carried, and those waiting to go. */
  get wholePutStats(): { requests: number; items: number; queued: number } {
    return { ...this.wholePuts.stats, queued: this.wholePuts.queued };
  }

  /**
   * Writes a shard whose framed bytes (block ‖ CRC32C, every block) are all in hand: one signed
   * request with its content-length, no stream. A small one (≤ BATCHED_SHARD_MAX_BYTES) may share a
   * POST /batch/shards with others written meanwhile; it is stored and answered as if sent alone.
   */
  putWholeShard(id: string, blockSize: number, framed: Buffer, signal?: AbortSignal): Promise<PutShardResponse> {
    if (!isValidShardId(id)) return Promise.reject(invalidShardId(id));
    if (framed.length > BATCHED_SHARD_MAX_BYTES) return this.putOneWholeShard({ id, blockSize, framed }, signal);
    // A write given up while it waits for its batch is dropped, so a hung node cannot pile them up.
    return this.wholePuts.submit({ id, blockSize, framed }, signal);
  }

  /**
   * `framedLength`, when the sender knows it, goes out as content-length: the node can refuse a
   * shard that does not fit before any byte moves, and neither side frames the body in chunks.
   */
  async putShard(
    id: string,
    blockSize: number,
    body: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
    signal?: AbortSignal,
    framedLength?: number,
  ): Promise<PutShardResponse> {
    const headers: Record<string, string> = { [BLOCK_SIZE_HEADER]: String(blockSize), 'content-type': 'application/octet-stream' };
    if (framedLength !== undefined) headers['content-length'] = String(framedLength);
    const res = await this.send({
      method: 'PUT',
      path: this.shardPath(id),
      headers,
      // An iterable goes to undici as one: it pulls a chunk only once it has written the one before
      // to its socket, which is when a pooled frame's sender may let go of it (common/buffer-pool.ts).
      body: body instanceof Readable ? body : asBuffers(body),
      signal,
    });
    return this.json<PutShardResponse>(res, [201]);
  }

  /** Buffers the whole answer: meant for gateway windows (≤ 8 MiB), which the node verifies before replying. */
  async readShard(id: string, range?: DataRange, signal?: AbortSignal): Promise<Buffer> {
    return Buffer.concat(await this.readShardChunks(id, range, signal));
  }

  /**
   * readShard without gathering: the answer's chunks as they arrived (the gateway serves views of
   * them). A small range (≤ BATCHED_READ_MAX_BYTES) may share a POST /batch/reads with other reads
   * asked for meanwhile; it is verified and answered as if asked alone.
   */
  async readShardChunks(id: string, range?: DataRange, signal?: AbortSignal): Promise<Buffer[]> {
    if (range && range.end - range.start + 1 <= BATCHED_READ_MAX_BYTES && range.start >= 0 && range.end >= range.start) {
      if (!isValidShardId(id)) throw invalidShardId(id);
      return this.smallReads.submit({ id, start: range.start, end: range.end }, signal);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of await this.streamShard(id, range, signal)) chunks.push(chunk);
    return chunks;
  }

  /**
   * Streams data bytes. Iterate to the end or break out (either frees the connection). A node that
   * finds a corrupt block past the first 8 MiB cuts the response: that surfaces here as 'Unavailable'
   * with details.cut = true; verifyShard tells corruption from a network failure.
   */
  async streamShard(id: string, range?: DataRange, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const headers: Record<string, string> = {};
    if (range) headers.range = `bytes=${range.start}-${range.end}`;
    const res = await this.send({ method: 'GET', path: this.shardPath(id), headers, signal });
    if (res.statusCode !== 200 && res.statusCode !== 206) throw await this.errorFrom(res);
    const expected = Number(res.headers['content-length']);
    return this.guardBody(res.body, Number.isSafeInteger(expected) ? expected : undefined, signal);
  }

  async headShard(id: string): Promise<ShardInfo | null> {
    const res = await this.send({ method: 'HEAD', path: this.shardPath(id) });
    await res.body.dump().catch(() => undefined);
    if (res.statusCode === 404) return null;
    if (res.statusCode !== 200) {
      throw new StorageNodeError(codeForStatus(res.statusCode), res.statusCode, `HEAD ${id} answered ${res.statusCode}`);
    }
    const header = (name: string): string => String(res.headers[name] ?? '');
    return {
      id,
      blockSize: Number(header(BLOCK_SIZE_HEADER)),
      dataLength: Number(header(DATA_LENGTH_HEADER)),
      storedLength: Number(header(STORED_LENGTH_HEADER)),
      mtime: header(MTIME_HEADER),
    };
  }

  /** Idempotent: an absent shard is not an error. */
  async deleteShard(id: string): Promise<void> {
    const res = await this.send({ method: 'DELETE', path: this.shardPath(id), idempotent: true });
    if (res.statusCode !== 204 && res.statusCode !== 404) throw await this.errorFrom(res);
    await res.body.dump().catch(() => undefined);
  }

  async listShards(after?: string, limit?: number): Promise<ShardListPage> {
    const query = new URLSearchParams();
    if (after !== undefined) query.set('after', after);
    if (limit !== undefined) query.set('limit', String(limit));
    const qs = query.toString();
    const res = await this.send({ method: 'GET', path: `${this.prefix}/shards${qs ? `?${qs}` : ''}` });
    return this.json<ShardListPage>(res, [200]);
  }

  /**
   * Has the node rebuild shard `id` from other nodes' shards (RebuildShardRequest) and store it;
   * resolves once it is stored. A source that failed rejects with code 'SourceFailed' and details
   * {sourceIndex, sourceCode}, so the caller can retry without it. `onProgress` gets the data bytes
   * written so far; with no line for the client's timeout, the rebuild counts as stalled.
   */
  async rebuildShard(id: string, request: RebuildShardRequest, signal?: AbortSignal, onProgress?: (bytes: number) => void): Promise<PutShardResponse> {
    const body = JSON.stringify(request);
    const res = await this.send({ method: 'POST', path: `${this.shardPath(id)}/rebuild`, headers: { 'content-type': 'application/json' }, body, signal });
    if (res.statusCode !== 200) throw await this.errorFrom(res);
    let outcome: Exclude<RebuildShardLine, { progress: unknown }> | undefined;
    try {
      for await (const text of lines(res.body)) {
        const line = JSON.parse(text) as RebuildShardLine;
        if ('progress' in line) onProgress?.(line.progress.bytes);
        else outcome = line;
      }
    } catch (err) {
      throw this.networkError(err, signal);
    }
    if (!outcome) throw new StorageNodeError('Unavailable', 503, `the rebuild of ${id} on ${this.baseUrl} ended without an outcome`, { cut: true });
    if ('done' in outcome) return outcome.done;
    const { code, status, message, sourceIndex, sourceCode } = outcome.failed;
    const known = KNOWN_CODES.has(code) ? code : codeForStatus(status);
    throw new StorageNodeError(known, status, message, sourceIndex === undefined ? undefined : { sourceIndex, sourceCode });
  }

  async verifyShard(id: string): Promise<VerifyShardResponse> {
    const res = await this.send({ method: 'POST', path: `${this.shardPath(id)}/verify` });
    return this.json<VerifyShardResponse>(res, [200]);
  }

  /**
   * Verifies the node's shards after `req.after`, paced by the node's scrub rate; follow `next`
   * until it is absent to cover every shard once. Busy (503) while another scrub runs on the node.
   */
  async scrub(req: ScrubRequest = {}): Promise<ScrubResponse> {
    const res = await this.send({
      method: 'POST',
      path: `${this.prefix}/scrub`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(req),
    });
    return this.json<ScrubResponse>(res, [200]);
  }

  async health(): Promise<Record<string, unknown>> {
    const res = await this.send({ method: 'GET', path: `${this.prefix}/health` });
    return this.json<Record<string, unknown>>(res, [200]);
  }

  /** What the whole-shard writes and small reads to this node have sent, batched or alone. */
  get batchStats(): NodeBatchStats {
    return { shardWrites: this.wholePuts.stats, smallReads: this.smallReads.stats };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  // ---- internals ----

  private async putOneWholeShard(shard: BatchedShard, signal?: AbortSignal): Promise<PutShardResponse> {
    const headers = { [BLOCK_SIZE_HEADER]: String(shard.blockSize), 'content-type': 'application/octet-stream' };
    const res = await this.send({ method: 'PUT', path: this.shardPath(shard.id), headers, body: shard.framed, shardBytes: true, signal });
    return this.json<PutShardResponse>(res, [201]);
  }

  private async sendWholeShards(batch: BatchedShard[]): Promise<Outcome<PutShardResponse>[]> {
    if (batch.length === 1) return [await outcomeOf(this.putOneWholeShard(batch[0]!))];
    const body = encodeShardBatch(batch);
    const headers = { 'content-type': 'application/octet-stream', [BATCH_MANIFEST_SHA256_HEADER]: sha256Hex(shardBatchManifestHead(body)) };
    const res = await this.send({ method: 'POST', path: `${this.prefix}/batch/shards`, headers, body, shardBytes: true });
    const { results } = await this.json<BatchResponse<PutShardResponse>>(res, [200]);
    return results.map((r) => ('ok' in r ? { ok: true, value: r.ok } : { ok: false, error: this.itemError(r.error) }));
  }

  private async sendSmallReads(batch: BatchedRead[]): Promise<Outcome<Buffer[]>[]> {
    if (batch.length === 1) {
      const { id, start, end } = batch[0]!;
      return [await outcomeOf(this.readAlone(id, { start, end }))];
    }
    const request: ShardReadBatchRequest = { reads: batch };
    const res = await this.send({ method: 'POST', path: `${this.prefix}/batch/reads`, headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    if (res.statusCode !== 200) throw await this.errorFrom(res);
    const expected = Number(res.headers['content-length']);
    const chunks: Buffer[] = [];
    for await (const chunk of this.guardBody(res.body, Number.isSafeInteger(expected) ? expected : undefined, undefined)) chunks.push(chunk);
    return decodeReadResults(Buffer.concat(chunks), batch.length).map((r) => ('ok' in r ? { ok: true, value: [r.ok] } : { ok: false, error: this.itemError(r.error) }));
  }

  private async readAlone(id: string, range: DataRange): Promise<Buffer[]> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.streamShard(id, range)) chunks.push(chunk);
    return chunks;
  }

  /** A batch item's error, as the error the same request alone would have thrown. */
  private itemError(error: BatchError): StorageNodeError {
    const code = KNOWN_CODES.has(error.code) ? (error.code as StorageErrorCode) : codeForStatus(error.status);
    return new StorageNodeError(code, error.status, error.message, error.details);
  }

  /** Invalid ids are refused here too: "..", "%2e%2e" and friends would be rewritten by URL normalisation on the way. */
  private shardPath(id: string): string {
    if (!isValidShardId(id)) throw invalidShardId(id);
    return `${this.prefix}/shards/${encodeURIComponent(id)}`;
  }

  private async send(opts: RequestSpec): Promise<Dispatcher.ResponseData> {
    const { method, path, body } = opts;
    const signedWhole = !opts.shardBytes && (typeof body === 'string' || Buffer.isBuffer(body) || body === undefined);
    const headers = signedWhole
      ? signRequest(this.secret, { method, host: this.host, target: path, headers: opts.headers, body })
      : signRequest(this.secret, { method, host: this.host, target: path, headers: opts.headers, streamed: true });
    try {
      // Undici sends an async iterable body like a stream (its types leave iterables out).
      const body = opts.body as Readable | string | Buffer | undefined;
      return await this.pool.request({ ...opts, body, headers, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    } catch (err) {
      throw this.networkError(err, opts.signal);
    }
  }

  private async json<T>(res: Dispatcher.ResponseData, ok: number[]): Promise<T> {
    if (!ok.includes(res.statusCode)) throw await this.errorFrom(res);
    try {
      return (await res.body.json()) as T;
    } catch (err) {
      throw this.networkError(err, undefined);
    }
  }

  private async errorFrom(res: Dispatcher.ResponseData): Promise<StorageNodeError> {
    let text = '';
    try {
      text = await readBounded(res.body, MAX_ERROR_BODY);
    } catch {
      // The status alone still says what went wrong.
    }
    let body: { code?: unknown; message?: unknown; details?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Not one of ours (a proxy, or a HEAD with no body): fall back to the status.
    }
    const serverCode = typeof body.code === 'string' ? body.code : undefined;
    const code = serverCode && KNOWN_CODES.has(serverCode) ? (serverCode as StorageErrorCode) : codeForStatus(res.statusCode);
    const details = isRecord(body.details) ? { ...body.details } : {};
    if (serverCode && serverCode !== code) details.serverCode = serverCode;
    const message = typeof body.message === 'string' ? body.message : `${this.baseUrl} answered ${res.statusCode} ${text.slice(0, 200)}`;
    return new StorageNodeError(code, res.statusCode, message, Object.keys(details).length ? details : undefined);
  }

  private networkError(err: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted) return err;
    if (err instanceof StorageNodeError) return err;
    const cause = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
    const message = err instanceof Error ? err.message : String(err);
    return new StorageNodeError('Unavailable', 503, `storage node ${this.baseUrl} unavailable: ${message}`, cause ? { cause } : undefined);
  }

  private async *guardBody(body: Readable, expected: number | undefined, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
    let got = 0;
    try {
      for await (const chunk of chunksOf(body)) {
        got += chunk.length;
        yield chunk;
      }
    } catch (err) {
      const mapped = this.networkError(err, signal);
      if (mapped instanceof StorageNodeError && mapped.code === 'Unavailable') {
        throw new StorageNodeError('Unavailable', 503, mapped.message, { ...mapped.details, cut: true, bytes: got });
      }
      throw mapped;
    }
    if (expected !== undefined && got !== expected) {
      throw new StorageNodeError('Unavailable', 503, `response from ${this.baseUrl} cut after ${got} of ${expected} bytes`, { cut: true });
    }
  }
}

/** A rebuild's answer lines are small JSON objects; a longer one is not from a storage node. */
const MAX_LINE_CHARS = 64 * 1024;

/** The lines of a body (UTF-8, each ended by a newline). */
async function* lines(body: Readable): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let tail = '';
  for await (const chunk of chunksOf(body)) {
    tail += decoder.write(chunk);
    for (let end = tail.indexOf('\n'); end >= 0; end = tail.indexOf('\n')) {
      yield tail.slice(0, end);
      tail = tail.slice(end + 1);
    }
    if (tail.length > MAX_LINE_CHARS) throw new Error(`a line of more than ${MAX_LINE_CHARS} characters`);
  }
  tail += decoder.end();
  if (tail !== '') yield tail;
}

/** Undici's TCP connector, with sockets that hold pooled buffers until they are written (common/buffer-pool.ts). */
function connectorReleasingPooledWrites(timeout: number): buildConnector.connector {
  const connect = buildConnector({ timeout });
  return (options, callback) =>
    connect(options, (...args) => {
      if (args[1]) releaseOnWritten(args[1]);
      callback(...args);
    });
}

/** Whole-shard writes and small reads, as their batchers count them. */
export interface NodeBatchStats {
  shardWrites: BatcherStats;
  smallReads: BatcherStats;
}

/** One client per node base URL, so the gateway reuses connections across requests. */
export class StorageNodePool {
  private readonly clients = new Map<string, StorageNodeClient>();
  /** The stats of clients forgotten, so that the pool's totals never go down. */
  private retired: NodeBatchStats = { shardWrites: sumBatcherStats([]), smallReads: sumBatcherStats([]) };

  constructor(private readonly opts: StorageNodeClientOptions) {}

  get(baseUrl: string): StorageNodeClient {
    const key = baseUrl.replace(/\/+$/, '');
    let client = this.clients.get(key);
    if (!client) {
      client = new StorageNodeClient(key, this.opts);
      this.clients.set(key, client);
    }
    return client;
  }

  /** Drops the client of a node that left (its connections are closed). */
  async forget(baseUrl: string): Promise<void> {
    const key = baseUrl.replace(/\/+$/, '');
    const client = this.clients.get(key);
    this.clients.delete(key);
    if (client) this.retired = sumNodeBatchStats([this.retired, client.batchStats]);
    await client?.close();
  }

  /** Every node's batch stats added up, those of nodes forgotten included. */
  batchStats(): NodeBatchStats {
    return sumNodeBatchStats([this.retired, ...[...this.clients.values()].map((c) => c.batchStats)]);
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}

function sumNodeBatchStats(all: NodeBatchStats[]): NodeBatchStats {
  return { shardWrites: sumBatcherStats(all.map((s) => s.shardWrites)), smallReads: sumBatcherStats(all.map((s) => s.smallReads)) };
}

async function* asBuffers(body: AsyncIterable<Uint8Array | string | Buffer> | NodeJS.ReadableStream): AsyncGenerator<Buffer> {
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    yield typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(): void }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit);
}

/** Refused before sending: such an id could be rewritten by URL normalisation on the way. */
function invalidShardId(id: string): StorageNodeError {
  return new StorageNodeError('InvalidShardId', 400, `invalid shard id ${JSON.stringify(id.slice(0, 64))}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
