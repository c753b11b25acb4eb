// The typed client other services use to reach the namespace. Every failure is a NamespaceError:
// the service's own S3-style code and status, or ServiceUnavailable (503) when it cannot be reached.
import { Pool } from 'undici';
import { Batcher, outcomeOf, type Outcome } from '../common/batcher.js';
import { errorFromResponse } from '../common/http.js';
import { BLOB_LINES_TYPE, decodeBlobLines, decodeJsonLines, encodeBlobLines, encodeJsonLines, JSON_LINES_TYPE, type BlobItem } from '../common/json-lines.js';
import { signRequest, type ClusterSecret } from '../common/internal-auth.js';
import { NamespaceError } from './errors.js';
import { joinInlineBytes, splitInlineBytes } from './inline-wire.js';
import type * as T from './types.js';
import { MAX_COMMIT_BATCH, MAX_PLACEMENT_BATCH, MAX_READ_BATCH } from './types.js';

export { NamespaceError } from './errors.js';

export interface NamespaceClientOptions {
  /** Every request is signed with it (the namespace refuses unsigned ones). */
  secret: ClusterSecret;
  /** Keep-alive connections to the namespace (default 32). */
  connections?: number;
  /** Per-request limit on waiting for headers and body (default 30 s). */
  timeoutMs?: number;
  /** Requests of each batched kind (commits, record reads, placements) out at once; further calls wait and go together (default 4). */
  batchInFlight?: number;
}

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';
type Query = Record<string, string | number | undefined>;

export class NamespaceClient {
  private readonly pool: Pool;
  /** A path the namespace is mounted under (usually empty), e.g. behind a proxy. */
  private readonly basePath: string;
  private readonly host: string;
  private readonly secret: ClusterSecret;
  /** Commits: sent alone while few are out, gathered into POST /batch/commits while many are. */
  readonly commits: Batcher<T.CommitObjectRequest, T.CommitObjectResponse>;
  /** Object record reads: the same, gathered into POST /batch/records. */
  readonly reads: Batcher<T.ObjectReadRequest, T.ObjectRecord>;
  /** Placements: the same, gathered into POST /batch/placements. */
  readonly placements: Batcher<T.PlacementRequest, T.PlacementResponse>;

  constructor(readonly baseUrl: string, opts: NamespaceClientOptions) {
    const timeout = opts.timeoutMs ?? 30_000;
    const base = new URL(baseUrl);
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.host = base.host;
    this.secret = opts.secret;
    this.pool = new Pool(base.origin, {
      connections: opts.connections ?? 32,
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const maxInFlight = opts.batchInFlight ?? 4;
    this.commits = new Batcher((batch) => this.sendCommits(batch), { maxInFlight, maxBatch: MAX_COMMIT_BATCH, gatherTurn: true });
    this.reads = new Batcher((batch) => this.sendReads(batch), { maxInFlight, maxBatch: MAX_READ_BATCH, gatherTurn: true });
    this.placements = new Batcher((batch) => this.sendPlacements(batch), { maxInFlight, maxBatch: MAX_PLACEMENT_BATCH, gatherTurn: true });
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  // ---- buckets ----

  createBucket(bucket: string, owner: string): Promise<T.BucketRecord> {
    const body: T.CreateBucketRequest = { owner };
    return this.call('PUT', `/buckets/${seg(bucket)}`, body);
  }

  getBucket(bucket: string): Promise<T.BucketRecord> {
    return this.call('GET', `/buckets/${seg(bucket)}`);
  }

  /** Every bucket, or only those `owner` (a user id) owns. */
  async listBuckets(owner?: string): Promise<T.BucketRecord[]> {
    return (await this.call<T.ListBucketsResponse>('GET', '/buckets', undefined, { owner })).buckets;
  }

  /** Sets the bucket's policy text (checked by the gateway) with the pins of the users it names, or removes it with null. */
  setBucketPolicy(bucket: string, policy: string | null, principals?: Record<string, string>): Promise<T.BucketRecord> {
    if (policy === null) return this.call('DELETE', `/buckets/${seg(bucket)}/policy`);
    const body: T.BucketPolicyRequest = principals === undefined ? { policy } : { policy, principals };
    return this.call('PUT', `/buckets/${seg(bucket)}/policy`, body);
  }

  /** Replaces the bucket's tags (`[]` removes them); the updated record. */
  setBucketTags(bucket: string, tags: T.Tag[]): Promise<T.BucketRecord> {
    return this.call('PUT', `/buckets/${seg(bucket)}/tags`, { tags });
  }

  // ---- users and access keys (IAM-style codes: NoSuchEntity, EntityAlreadyExists, DeleteConflict) ----

  createUser(userId: string, displayName?: string): Promise<T.UserRecord> {
    const body: T.CreateUserRequest = displayName === undefined ? {} : { displayName };
    return this.call('PUT', `/users/${seg(userId)}`, body);
  }

  getUser(userId: string): Promise<T.UserRecord> {
    return this.call('GET', `/users/${seg(userId)}`);
  }

  /** Like getUser, but null when there is no such user. */
  getUserOrNull(userId: string): Promise<T.UserRecord | null> {
    return nullWhen(['NoSuchEntity'], this.getUser(userId));
  }

  async listUsers(): Promise<T.UserRecord[]> {
    return (await this.call<T.ListUsersResponse>('GET', '/users')).users;
  }

  setUserStatus(userId: string, status: T.PrincipalStatus): Promise<T.UserRecord> {
    const body: T.StatusRequest = { status };
    return this.call('PUT', `/users/${seg(userId)}/status`, body);
  }

  /** Deletes the user and their keys; DeleteConflict (409) while they own a bucket. */
  deleteUser(userId: string): Promise<T.UserRecord> {
    return this.call('DELETE', `/users/${seg(userId)}`);
  }

  /** A new key; the answer carries its secret, which is never shown again. */
  createAccessKey(userId: string): Promise<T.CreatedAccessKey> {
    return this.call('POST', `/users/${seg(userId)}/access-keys`);
  }

  /** Keys without their secrets: every key, or one user's. */
  async listAccessKeys(userId?: string): Promise<T.AccessKeyRecord[]> {
    return (await this.call<T.ListAccessKeysResponse>('GET', '/access-keys', undefined, { user: userId })).keys;
  }

  getAccessKey(accessKeyId: string): Promise<T.AccessKeyRecord> {
    return this.call('GET', `/access-keys/${seg(accessKeyId)}`);
  }

  /** The gateway's lookup: the key with its secret and its user, or null when there is no such key. */
  accessKeyCredential(accessKeyId: string): Promise<T.AccessKeyCredential | null> {
    return nullWhen(['NoSuchEntity'], this.call<T.AccessKeyCredential>('GET', `/access-keys/${seg(accessKeyId)}/credential`));
  }

  setAccessKeyStatus(accessKeyId: string, status: T.PrincipalStatus): Promise<T.AccessKeyRecord> {
    const body: T.StatusRequest = { status };
    return this.call('PUT', `/access-keys/${seg(accessKeyId)}/status`, body);
  }

  deleteAccessKey(accessKeyId: string): Promise<T.AccessKeyRecord> {
    return this.call('DELETE', `/access-keys/${seg(accessKeyId)}`);
  }

  async deleteBucket(bucket: string): Promise<void> {
    await this.call<undefined>('DELETE', `/buckets/${seg(bucket)}`);
  }

  // ---- objects ----

  commitObject(request: T.CommitObjectRequest): Promise<T.CommitObjectResponse> {
    return this.commits.submit(request);
  }

  /**
   * Commits, one or several, go as one POST /batch/commits in blob lines, each answered on its own:
   * an inline object's bytes travel raw beside its line (namespace/inline-wire.ts).
   */
  private async sendCommits(batch: T.CommitObjectRequest[]): Promise<Outcome<T.CommitObjectResponse>[]> {
    const items = batch.map((commit): BlobItem => {
      const { record, bytes } = splitInlineBytes(commit.record);
      return { value: bytes ? { ...commit, record } : commit, blob: bytes };
    });
    return (await this.callBlobLines<T.CommitObjectResponse>('/batch/commits', items)).map((r) => batchOutcome(r.value));
  }

  /** With `select`, the record carries only the segments selected (see SegmentSelection). */
  getObject(bucket: string, key: string, select?: T.SegmentSelection): Promise<T.ObjectRecord> {
    return this.reads.submit(select ? { bucket, key, select } : { bucket, key });
  }

  /** Reads, one or several, go as one POST /batch/records in blob lines: an inline object's bytes come back raw. */
  private async sendReads(batch: T.ObjectReadRequest[]): Promise<Outcome<T.ObjectRecord>[]> {
    const results = await this.callBlobLines<T.ObjectRecord>(
      '/batch/records',
      batch.map((value) => ({ value })),
    );
    return results.map(({ value, blob }) => {
      // A copy: a view would keep the whole reply (up to 64 records' bytes) for as long as one
      // slow client's response holds its object.
      if ('ok' in value) joinInlineBytes(value.ok, blob && Buffer.from(blob), 'record');
      return batchOutcome(value);
    });
  }

  /** Like getObject, but a missing key (not a missing bucket) is null. */
  getObjectOrNull(bucket: string, key: string, select?: T.SegmentSelection): Promise<T.ObjectRecord | null> {
    return nullWhen(['NoSuchKey'], this.getObject(bucket, key, select));
  }

  deleteObject(bucket: string, key: string, condition?: T.WriteCondition): Promise<T.DeleteObjectResponse> {
    const body: T.DeleteObjectRequest = condition ? { condition } : {};
    return this.call('DELETE', objectPath(bucket, key), body);
  }

  /**
   * Swaps placements of one segment if the object is still at `req.versionId` and every `from`
   * still holds; else PlacementConflict (409). NoSuchKey when the object is gone.
   */
  replaceShards(bucket: string, key: string, req: T.ReplaceShardsRequest): Promise<T.ReplaceShardsResponse> {
    const path = key === '.' || key === '..' ? `/object-shards/${seg(bucket)}?key=${seg(key)}` : `${objectPath(bucket, key)}/shards`;
    return this.call('PUT', path, req);
  }

  /** Replaces the object's tags in place (`[]` removes them); NoSuchKey when it is gone, PreconditionFailed when `condition.ifVersionId` no longer holds. */
  setObjectTags(bucket: string, key: string, req: T.SetObjectTagsRequest): Promise<T.SetObjectTagsResponse> {
    const path = key === '.' || key === '..' ? `/object-tags/${seg(bucket)}?key=${seg(key)}` : `${objectPath(bucket, key)}/tags`;
    return this.call('PUT', path, req);
  }

  listObjects(bucket: string, query: T.ListObjectsQuery = {}): Promise<T.ListObjectsResponse> {
    return this.call('GET', `/list/${seg(bucket)}`, undefined, {
      prefix: query.prefix,
      delimiter: query.delimiter,
      'start-after': query.startAfter,
      continuation: query.continuation,
      'max-keys': query.maxKeys,
    });
  }

  // ---- nodes, placement, reverse index, GC ----

  heartbeat(nodeId: string, request: T.HeartbeatRequest): Promise<T.NodeRecord> {
    return this.call('POST', `/nodes/${seg(nodeId)}/heartbeat`, request);
  }

  async listNodes(): Promise<T.NodeRecord[]> {
    return (await this.call<T.ListNodesResponse>('GET', '/nodes')).nodes;
  }

  getNode(nodeId: string): Promise<T.NodeRecord> {
    return this.call('GET', `/nodes/${seg(nodeId)}`);
  }

  place(request: T.PlacementRequest): Promise<T.PlacementResponse> {
    return this.placements.submit(request);
  }

  /** One placement goes as a plain POST /placements; several as one POST /batch/placements. */
  private sendPlacements(batch: T.PlacementRequest[]): Promise<Outcome<T.PlacementResponse>[]> {
    return this.sendBatch(batch, (r) => this.call('POST', '/placements', r), '/batch/placements');
  }

  /**
   * A lone item goes by its plain route (`alone`), so a quiet client's calls look as they always
   * did; several go as one POST to `path`, each answered on its own.
   */
  private async sendBatch<I, R>(batch: I[], alone: (item: I) => Promise<R>, path: string): Promise<Outcome<R>[]> {
    if (batch.length === 1) return [await outcomeOf(alone(batch[0]!))];
    return (await this.callLines<R>(path, batch)).map(batchOutcome);
  }

  shardsOnNode(nodeId: string, after?: string, limit?: number): Promise<T.ShardRefPage> {
    return this.call('GET', `/nodes/${seg(nodeId)}/shards`, undefined, { after, limit });
  }

  /** GC entries queued before `before`, oldest first. */
  async garbage(before: Date, limit?: number): Promise<T.GarbageEntry[]> {
    return (await this.call<T.GarbageResponse>('GET', '/gc', undefined, { before: before.toISOString(), limit })).entries;
  }

  async ackGarbage(ids: string[]): Promise<number> {
    const body: T.GarbageAckRequest = { ids };
    return (await this.call<T.GarbageAckResponse>('POST', '/gc/ack', body)).acked;
  }

  /** The reverse-index entries that exist for these shard ids on the node (NoSuchNode if it is not registered). */
  async lookupShardRefs(nodeId: string, shardIds: string[]): Promise<T.ShardRef[]> {
    const pages = await inBatches(shardIds, async (batch) => {
      const body: T.ShardLookupRequest = { shardIds: batch };
      return (await this.call<T.ShardLookupResponse>('POST', `/nodes/${seg(nodeId)}/shards/lookup`, body)).refs;
    });
    return pages.flat();
  }

  setNodeMode(nodeId: string, mode: T.NodeMode): Promise<T.NodeRecord> {
    const body: T.NodeModeRequest = { mode };
    return this.call('PUT', `/nodes/${seg(nodeId)}/mode`, body);
  }

  // ---- repair queue ----

  /** Queues reports durably; reports of one segment merge into one task. Sent in batches of 1000 (each atomic, not the whole list). */
  async reportDamage(reports: T.DamageReport[]): Promise<void> {
    await inBatches(reports, async (batch) => {
      const body: T.DamageReportRequest = { reports: batch };
      await this.call<undefined>('POST', '/repairs', body);
    });
  }

  /** Tasks in (bucket, key, version, segment) order after the task id `after`. */
  repairTasks(after?: string, limit?: number): Promise<T.RepairTaskPage> {
    return this.call('GET', '/repairs', undefined, { after, limit });
  }

  /** Removes tasks; one updated since it was listed (its id changed) stays and is not counted. */
  async ackRepairs(ids: string[]): Promise<number> {
    const counts = await inBatches(ids, async (batch) => {
      const body: T.RepairAckRequest = { ids: batch };
      return (await this.call<T.RepairAckResponse>('POST', '/repairs/ack', body)).acked;
    });
    return counts.reduce((sum, n) => sum + n, 0);
  }

  // ---- multipart ----

  createUpload(request: T.CreateUploadRequest): Promise<T.MultipartUploadRecord> {
    return this.call('POST', '/uploads', request);
  }

  getUpload(uploadId: string): Promise<T.MultipartUploadRecord> {
    return this.call('GET', `/uploads/${seg(uploadId)}`);
  }

  putPart(part: T.PartRecord): Promise<T.PutPartResponse> {
    return this.call('PUT', `/uploads/${seg(part.uploadId)}/parts/${part.partNumber}`, part);
  }

  getPart(uploadId: string, partNumber: number): Promise<T.PartRecord> {
    return this.call('GET', `/uploads/${seg(uploadId)}/parts/${partNumber}`);
  }

  /** Like getPart, but null when the upload is gone (completed or aborted) or has no such part. */
  getPartOrNull(uploadId: string, partNumber: number): Promise<T.PartRecord | null> {
    return nullWhen(['NoSuchUpload', 'NoSuchPart'], this.getPart(uploadId, partNumber));
  }

  /**
   * replaceShards for a part of an upload in progress (`req.versionId` is the upload id):
   * PlacementConflict (409) when a `from` no longer holds, NoSuchUpload / NoSuchPart when it is gone.
   */
  replacePartShards(uploadId: string, partNumber: number, req: T.ReplaceShardsRequest): Promise<T.ReplacePartShardsResponse> {
    return this.call('PUT', `/uploads/${seg(uploadId)}/parts/${partNumber}/shards`, req);
  }

  listParts(uploadId: string, query: T.ListPartsQuery = {}): Promise<T.ListPartsResponse> {
    return this.call('GET', `/uploads/${seg(uploadId)}/parts`, undefined, { after: query.after, 'max-parts': query.maxParts });
  }

  listUploads(bucket: string, query: T.ListUploadsQuery = {}): Promise<T.ListUploadsResponse> {
    return this.call('GET', '/uploads', undefined, {
      bucket,
      prefix: query.prefix,
      'key-marker': query.keyMarker,
      'upload-id-marker': query.uploadIdMarker,
      'max-uploads': query.maxUploads,
    });
  }

  /** Aborts the upload; returns its record. Its parts' shards are queued for GC. */
  abortUpload(uploadId: string): Promise<T.MultipartUploadRecord> {
    return this.call('DELETE', `/uploads/${seg(uploadId)}`);
  }

  completeUpload(uploadId: string, request: T.CompleteUploadRequest): Promise<T.CommitObjectResponse> {
    return this.call('POST', `/uploads/${seg(uploadId)}/complete`, request);
  }

  // ---- transport ----

  private async call<R>(method: Method, path: string, body?: unknown, query?: Query): Promise<R> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const reply = await this.send(method, this.basePath + path + queryString(query), text, 'application/json');
    return (reply.length === 0 ? undefined : JSON.parse(reply.toString('utf8'))) as R;
  }

  /** POSTs `items` to a batch route as JSON lines; its results, one per item, in order. */
  private async callLines<R>(path: string, items: readonly unknown[]): Promise<T.BatchResult<R>[]> {
    const reply = await this.send('POST', this.basePath + path, encodeJsonLines(items), JSON_LINES_TYPE);
    const results = decodeJsonLines(reply) as T.BatchResult<R>[];
    if (results.length !== items.length) throw new NamespaceError(502, 'InternalError', `${path}: ${items.length} items got ${results.length} results back`);
    return results;
  }

  /** POSTs `items` to a batch route as blob lines; its results, one per item, in order, each with the bytes it carries. */
  private async callBlobLines<R>(path: string, items: readonly BlobItem[]): Promise<{ value: T.BatchResult<R>; blob?: Uint8Array }[]> {
    const reply = await this.send('POST', this.basePath + path, encodeBlobLines(items), BLOB_LINES_TYPE);
    const results = decodeBlobLines(reply) as { value: T.BatchResult<R>; blob?: Uint8Array }[];
    if (results.length !== items.length) throw new NamespaceError(502, 'InternalError', `${path}: ${items.length} items got ${results.length} results back`);
    return results;
  }

  /** The body of a 2xx answer; anything else as the NamespaceError it carries. */
  private async send(method: Method, target: string, body: string | Buffer | undefined, contentType: string): Promise<Buffer> {
    let status: number;
    let reply: Buffer;
    const headers = signRequest(this.secret, { method, host: this.host, target, headers: body === undefined ? {} : { 'content-type': contentType }, body });
    try {
      const res = await this.pool.request({ method, path: target, headers, body });
      status = res.statusCode;
      reply = Buffer.from(await res.body.arrayBuffer());
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new NamespaceError(503, 'ServiceUnavailable', `namespace at ${this.baseUrl} unreachable: ${reason}`);
    }
    if (status >= 200 && status < 300) return reply;
    const err = await errorFromResponse(status, reply.toString('utf8'));
    throw new NamespaceError(err.status, err.code, err.message, err.details);
  }
}

const seg = (part: string): string => encodeURIComponent(part);

/** The answer, or null when the call fails with one of `codes` (the thing asked for is gone). */
async function nullWhen<R>(codes: string[], answer: Promise<R>): Promise<R | null> {
  try {
    return await answer;
  } catch (err) {
    if (err instanceof NamespaceError && codes.includes(err.code)) return null;
    throw err;
  }
}

/** The namespace takes at most this many reports, ids or acks per call. */
const BATCH = 1000;

/** Sends a long list as consecutive calls of at most BATCH entries. */
async function inBatches<I, R>(items: I[], send: (batch: I[]) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let at = 0; at < items.length; at += BATCH) out.push(await send(items.slice(at, at + BATCH)));
  return out;
}

/**
 * Object keys travel as one encoded path segment, except "." and "..": URL parsing on the server
 * resolves those as dot segments (even when percent-encoded), so they go in the query instead.
 */
function objectPath(bucket: string, key: string): string {
  if (key === '.' || key === '..') return `/objects/${seg(bucket)}?key=${seg(key)}`;
  return `/objects/${seg(bucket)}/${seg(key)}`;
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** One result of a batch, as the request alone would have resolved or failed. */
function batchOutcome<R>(r: T.BatchResult<R>): Outcome<R> {
  return 'ok' in r ? { ok: true, value: r.ok } : { ok: false, error: new NamespaceError(r.error.status, r.error.code, r.error.message, r.error.details) };
}
