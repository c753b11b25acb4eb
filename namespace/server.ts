// The namespace's HTTP API: JSON in and out (JSON lines for the batch routes), object keys as
// single URL-encoded path segments.
// Bodies are parsed by validate.ts before they reach the store; store errors are NamespaceErrors
// (HttpErrors), which the common server turns into S3-style JSON error replies.
import type http from 'node:http';
import { createServiceServer, HttpError, settleBatchItem, readBlobLines, readJson, readJsonLines, Router, sendBlobLines, sendJson, sendJsonLines, type Params } from '../common/http.js';
import { BLOB_LINES_TYPE, type BlobItem } from '../common/json-lines.js';
import type { ClusterSecret } from '../common/internal-auth.js';
import { createLogger, type Logger } from '../common/log.js';
import { Registry, type Counter } from '../common/metrics.js';
import { inlineAsBase64, joinInlineBytes, splitInlineBytes } from './inline-wire.js';
import { selectSegments } from './segment-selection.js';
import type { NamespaceStore } from './store.js';
import * as T from './types.js';
import * as v from './validate.js';

export interface NamespaceServerOptions {
  log?: Logger;
  metrics?: Registry;
  /** Every request but /health and /metrics must be signed with it. */
  secret: ClusterSecret;
}

/** Large multipart objects carry thousands of segments, so record bodies may be far above the default 1 MiB. */
const RECORD_BODY_LIMIT = 64 * 1024 * 1024;
/** Room for MAX_BATCH (1000) reports or ids of maximal length (a task id is up to ~2 KiB). */
const BATCH_BODY_LIMIT = 4 * 1024 * 1024;

interface Counters {
  commits: Counter;
  deletes: Counter;
  lists: Counter;
  heartbeats: Counter;
  damageReports: Counter;
  replacements: Counter;
  repairAcks: Counter;
  commitBatches: Counter;
  readBatches: Counter;
  placementBatches: Counter;
}

type Reply = (params: Params, url: URL, req: http.IncomingMessage) => Promise<unknown> | unknown;

export function createNamespaceServer(store: NamespaceStore, opts: NamespaceServerOptions): http.Server {
  const metrics = opts.metrics ?? new Registry('namespace');
  const counters: Counters = {
    commits: metrics.counter('cairn_namespace_commits_total', 'Object records committed (PUT, repair and multipart completion)'),
    deletes: metrics.counter('cairn_namespace_deletes_total', 'Object records deleted'),
    lists: metrics.counter('cairn_namespace_list_calls_total', 'Object listings served'),
    heartbeats: metrics.counter('cairn_namespace_heartbeats_total', 'Storage node heartbeats received'),
    damageReports: metrics.counter('cairn_namespace_damage_reports_total', 'Damage reports queued for repair'),
    replacements: metrics.counter('cairn_namespace_shard_replacements_total', 'Shard placements swapped by repair'),
    repairAcks: metrics.counter('cairn_namespace_repair_acks_total', 'Repair tasks acknowledged and removed'),
    commitBatches: metrics.counter('cairn_namespace_commit_batches_total', 'Requests that carried several commits (POST /batch/commits)'),
    readBatches: metrics.counter('cairn_namespace_read_batches_total', 'Requests that read several object records (POST /batch/records)'),
    placementBatches: metrics.counter('cairn_namespace_placement_batches_total', 'Requests that asked for several placements (POST /batch/placements)'),
  };
  const ahead = store.listReadAhead.stats;
  const readAhead = metrics.gauge('cairn_namespace_list_read_ahead_total', 'Listing pages read ahead (started), served from read-ahead (hit), dropped because a write came first or nobody asked (stale), or not read ahead because the bucket was being written (skipped)');
  readAhead.set(() => ahead.started, { result: 'started' });
  readAhead.set(() => ahead.hits, { result: 'hit' });
  readAhead.set(() => ahead.stale, { result: 'stale' });
  readAhead.set(() => ahead.skipped, { result: 'skipped' });
  const records = store.records;
  const cacheReads = metrics.gauge('cairn_namespace_record_cache_reads_total', 'Object record reads answered from the cache of large parsed records (hit) or from the store (miss; small records are never cached)');
  cacheReads.set(() => records.stats.hits, { result: 'hit' });
  cacheReads.set(() => records.stats.misses, { result: 'miss' });
  const groups = store.groupCommit;
  if (groups) {
    const grouped = metrics.gauge('cairn_namespace_group_commit_total', 'Write batches submitted to the store (each commit is one), and the LevelDB writes that carried them, one fsync each: batches per write is how many commits shared an fsync');
    grouped.set(() => groups.batches, { kind: 'batches' });
    grouped.set(() => groups.writes, { kind: 'writes' });
    metrics.gauge('cairn_namespace_group_commit_write_seconds_total', 'Time spent in those LevelDB writes, fsync included; per write, what every batch of its group waited for').set(() => groups.writeSeconds);
    metrics.gauge('cairn_namespace_group_commit_prepare_seconds_total', "Time groups spent in their first phase, the value log's synced append of their small objects' bytes (it overlaps the write of the group before)").set(() => groups.prepareSeconds);
    metrics.gauge('cairn_namespace_group_commit_wait_seconds_total', 'Summed over write batches, from submit to written: per batch, how long a commit waited for the store (queue, append and write)').set(() => groups.waitSeconds);
  }
  const valueLog = store.valueLog;
  if (valueLog) {
    const usage = metrics.gauge('cairn_namespace_value_log_bytes', "Bytes of the value log's segments (small objects' bytes), all and live (still pointed to): the difference is what compaction reclaims");
    usage.set(() => valueLog.usage().bytes, { kind: 'all' });
    usage.set(() => valueLog.usage().liveBytes, { kind: 'live' });
    metrics.gauge('cairn_namespace_value_log_segments', "Segment files of the value log").set(() => valueLog.usage().segments);
    const work = metrics.gauge('cairn_namespace_value_log_total', 'Values appended to the value log by writes (appended) and by compactions (moved), compactions run, segments removed, and values found damaged (left in place)');
    for (const kind of ['appended', 'moved', 'compactions', 'damaged'] as const) work.set(() => valueLog.stats[kind], { kind });
    work.set(() => valueLog.stats.segmentsRemoved, { kind: 'segments_removed' });
  }
  metrics.gauge('cairn_namespace_record_cache_bytes', 'Stored bytes of the object records held parsed in the cache').set(() => records.heldBytes);
  const router = new Router();
  const log = opts.log ?? createLogger('namespace');
  bucketRoutes(router, store);
  objectRoutes(router, store, counters, log);
  nodeRoutes(router, store, counters, log);
  uploadRoutes(router, store, counters);
  repairRoutes(router, store, counters);
  userRoutes(router, store);
  return createServiceServer({
    service: 'namespace',
    router,
    log,
    metrics,
    secret: opts.secret,
    maxSignedBodyBytes: RECORD_BODY_LIMIT,
    health: () => ({ nodes: store.nodes.counts() }),
  });
}

/** Adapts a function returning the reply body (undefined → 204) to a route handler. */
function route(router: Router, method: string, path: string, reply: Reply): void {
  router.on(method, path, async (req, res, params, url) => {
    const out = await reply(params, url, req);
    if (out === undefined) {
      res.writeHead(204).end();
      return;
    }
    sendJson(res, 200, out);
  });
}

/** Raw bytes on a batch route: whether its items may bring them, and how its results send theirs. */
interface BatchBytes<R> {
  /** Items may carry a blob (handed to `handle`); elsewhere an item with one fails alone. */
  takes: boolean;
  /** A result for blob lines: its raw bytes beside its line. */
  blob: (result: R) => { value: R; blob?: Buffer };
  /** A result for JSON lines: its bytes, if any, inside it. */
  json: (result: R) => R;
}

const NO_BYTES: BatchBytes<unknown> = { takes: false, blob: (value) => ({ value }), json: (value) => value };

/**
 * A batch route: the body holds 1 to `max` items as JSON lines, or as blob lines whose items may
 * carry raw bytes (`field` names them in errors), each handled (and failing) alone; the reply holds
 * one result per item, in order, in the body's format. Busy clients gather calls into these (see
 * common/batcher.ts).
 */
function batchRoute<R>(
  router: Router,
  path: string,
  field: string,
  max: number,
  counter: Counter,
  log: Logger,
  handle: (raw: unknown, what: string, blob: BlobItem['blob']) => Promise<R> | R,
  bytes: BatchBytes<R> = NO_BYTES as BatchBytes<R>,
): void {
  router.on('POST', path, async (req, res) => {
    const withBlobs = req.headers['content-type'] === BLOB_LINES_TYPE;
    const items = withBlobs ? await parsed(readBlobLines(req, RECORD_BODY_LIMIT)) : (await lines(req, RECORD_BODY_LIMIT)).map((value): BlobItem => ({ value }));
    v.batchItems(items, field, max);
    counter.inc();
    const results = await Promise.all(
      items.map((item, i) =>
        settleBatchItem(log, async () => {
          if (item.blob && !bytes.takes) v.fail(`${field}[${i}] carries bytes, which ${path} does not take`);
          return handle(item.value, `${field}[${i}]`, item.blob);
        }),
      ),
    );
    if (!withBlobs) {
      sendJsonLines(res, 200, results.map((r) => ('ok' in r ? { ok: bytes.json(r.ok) } : r)));
      return;
    }
    sendBlobLines(
      res,
      200,
      results.map((r): BlobItem => {
        if (!('ok' in r)) return { value: r };
        const out = bytes.blob(r.ok);
        return { value: { ok: out.value }, blob: out.blob };
      }),
    );
  });
}

/** The JSON body. */
function body(req: http.IncomingMessage, limit?: number): Promise<unknown> {
  return parsed(readJson<unknown>(req, limit));
}

/** A JSON lines body (the batch routes). */
function lines(req: http.IncomingMessage, limit: number): Promise<unknown[]> {
  return parsed(readJsonLines(req, limit));
}

/** Unparsable JSON is InvalidArgument like every other bad input. */
async function parsed<R>(reading: Promise<R>): Promise<R> {
  try {
    return await reading;
  } catch (err) {
    if (err instanceof HttpError && err.code === 'MalformedJSON') v.fail(err.message);
    throw err;
  }
}

function bucketRoutes(router: Router, store: NamespaceStore): void {
  route(router, 'PUT', '/buckets/:bucket', async (p, _u, req) => {
    const input = v.fields(await body(req), 'body');
    return store.createBucket(p.bucket, v.token(input.owner, 'owner'));
  });
  route(router, 'GET', '/buckets', async (_p, url): Promise<T.ListBucketsResponse> => {
    const owner = url.searchParams.get('owner');
    return { buckets: await store.listBuckets(owner === null ? undefined : v.userId(owner)) };
  });
  route(router, 'PUT', '/buckets/:bucket/policy', async (p, _u, req) => {
    const input = v.fields(await body(req), 'body');
    return store.setBucketPolicy(p.bucket, v.bucketPolicy(input.policy), v.policyPrincipals(input.principals));
  });
  route(router, 'DELETE', '/buckets/:bucket/policy', (p) => store.setBucketPolicy(p.bucket, null));
  route(router, 'PUT', '/buckets/:bucket/tags', async (p, _u, req) => store.setBucketTags(p.bucket, v.bucketTags(v.fields(await body(req), 'body').tags)));
  route(router, 'GET', '/buckets/:bucket', (p) => store.getBucket(p.bucket));
  route(router, 'DELETE', '/buckets/:bucket', async (p) => {
    await store.deleteBucket(p.bucket);
    return undefined;
  });
}

function objectRoutes(router: Router, store: NamespaceStore, c: Counters, log: Logger): void {
  batchRoute(
    router,
    '/batch/commits',
    'commits',
    T.MAX_COMMIT_BATCH,
    c.commitBatches,
    log,
    async (raw, what, blob) => {
      const input = v.fields(raw, what);
      joinInlineBytes(input.record, blob, what);
      const result = await store.commitObject({ record: input.record, condition: input.condition });
      c.commits.inc();
      return result;
    },
    { ...(NO_BYTES as BatchBytes<T.CommitObjectResponse>), takes: true },
  );
  const recordBytes: BatchBytes<T.ObjectRecord> = {
    takes: false,
    blob: (record) => {
      const { record: value, bytes } = splitInlineBytes(record);
      return { value, blob: bytes };
    },
    json: inlineAsBase64,
  };
  batchRoute(
    router,
    '/batch/records',
    'objects',
    T.MAX_READ_BATCH,
    c.readBatches,
    log,
    async (raw, what) => {
      const input = v.fields(raw, what);
      const select = v.segmentSelection(input.select, `${what}.select`);
      return selectSegments(await store.getObject(v.bucketName(input.bucket), v.objectKey(input.key)), select);
    },
    recordBytes,
  );
  for (const path of ['/objects/:bucket/:key', '/objects/:bucket']) {
    route(router, 'PUT', path, async (p, url, req) => {
      const key = keyOf(p, url);
      const input = v.fields(await body(req, RECORD_BODY_LIMIT), 'body');
      const claimed = v.fields(input.record, 'record');
      if (claimed.bucket !== p.bucket || claimed.key !== key) v.fail('record bucket/key differ from the URL');
      const result = await store.commitObject({ record: input.record, condition: input.condition });
      c.commits.inc();
      return result;
    });
    route(router, 'GET', path, async (p, url) => inlineAsBase64(await store.getObject(p.bucket, keyOf(p, url))));
    route(router, 'DELETE', path, async (p, url, req) => {
      const key = keyOf(p, url);
      const input = v.fields(await body(req), 'body');
      const result = await store.deleteObject(p.bucket, key, v.condition(input.condition));
      if (result.deleted) c.deletes.inc();
      return result;
    });
  }
  // A key that cannot be a path segment ("." or "..") uses the query form, as above.
  for (const path of ['/objects/:bucket/:key/shards', '/object-shards/:bucket']) {
    route(router, 'PUT', path, async (p, url, req) => {
      const result = await store.replaceShards(p.bucket, keyOf(p, url), v.replaceShardsRequest(await body(req)));
      c.replacements.inc();
      return result;
    });
  }
  for (const path of ['/objects/:bucket/:key/tags', '/object-tags/:bucket']) {
    route(router, 'PUT', path, async (p, url, req) => store.setObjectTags(p.bucket, keyOf(p, url), v.setObjectTagsRequest(await body(req))));
  }
  route(router, 'GET', '/list/:bucket', async (p, url) => {
    const q = url.searchParams;
    const query: T.ListObjectsQuery = {
      prefix: q.get('prefix') ?? undefined,
      delimiter: q.get('delimiter') ?? undefined,
      startAfter: q.get('start-after') ?? undefined,
      continuation: q.get('continuation') ?? undefined,
      maxKeys: v.countParam(q.get('max-keys'), 'max-keys', 1000, 1000),
    };
    const result = await store.listObjects(p.bucket, query);
    c.lists.inc();
    return result;
  });
}

function keyOf(params: Params, url: URL): string {
  return params.key ?? url.searchParams.get('key') ?? v.fail('object key is required');
}

function partNumberOf(params: Params): number {
  const raw = params.partNumber ?? '';
  return v.partNumber(/^[0-9]{1,5}$/.test(raw) ? Number(raw) : raw);
}

function nodeRoutes(router: Router, store: NamespaceStore, c: Counters, log: Logger): void {
  route(router, 'POST', '/nodes/:id/heartbeat', async (p, _u, req) => {
    const node = await store.heartbeat(p.id, v.heartbeat(await body(req)));
    c.heartbeats.inc();
    return node;
  });
  route(router, 'GET', '/nodes', (): T.ListNodesResponse => ({ nodes: store.listNodes() }));
  route(router, 'GET', '/nodes/:id', (p) => store.getNode(p.id));
  route(router, 'GET', '/nodes/:id/shards', (p, url) =>
    store.shardsOnNode(p.id, url.searchParams.get('after') ?? undefined, v.countParam(url.searchParams.get('limit'), 'limit', 1000, 1000, 1)),
  );
  route(router, 'POST', '/nodes/:id/shards/lookup', async (p, _u, req): Promise<T.ShardLookupResponse> => {
    const input = v.fields(await body(req, BATCH_BODY_LIMIT), 'body');
    return { refs: await store.lookupShardRefs(p.id, v.idList(input.shardIds, 'shardIds', v.shardId)) };
  });
  route(router, 'PUT', '/nodes/:id/mode', async (p, _u, req) => {
    const input = v.fields(await body(req), 'body');
    return store.setNodeMode(p.id, v.nodeMode(input.mode));
  });
  route(router, 'POST', '/placements', async (_p, _u, req) => store.place(v.placementRequest(await body(req))));
  batchRoute(router, '/batch/placements', 'requests', T.MAX_PLACEMENT_BATCH, c.placementBatches, log, (raw) => store.place(v.placementRequest(raw)));
  route(router, 'GET', '/gc', async (_p, url): Promise<T.GarbageResponse> => {
    const raw = url.searchParams.get('before');
    const before = raw === null ? new Date() : new Date(/^\d+$/.test(raw) ? Number(raw) : raw);
    return { entries: await store.garbage(before, v.countParam(url.searchParams.get('limit'), 'limit', 1000, 1000, 1)) };
  });
  route(router, 'POST', '/gc/ack', async (_p, _u, req): Promise<T.GarbageAckResponse> => {
    const input = v.fields(await body(req, 16 * 1024 * 1024), 'body');
    if (!Array.isArray(input.ids)) v.fail('ids must be an array');
    return { acked: await store.ackGarbage(input.ids.map((id) => v.text(id, 'garbage id'))) };
  });
}

function repairRoutes(router: Router, store: NamespaceStore, c: Counters): void {
  route(router, 'POST', '/repairs', async (_p, _u, req) => {
    const reports = v.damageReports(v.fields(await body(req, BATCH_BODY_LIMIT), 'body').reports);
    await store.reportDamage(reports);
    c.damageReports.inc(undefined, reports.length);
    return undefined;
  });
  route(router, 'GET', '/repairs', (_p, url) =>
    store.repairTasks(url.searchParams.get('after') || undefined, v.countParam(url.searchParams.get('limit'), 'limit', v.MAX_BATCH, v.MAX_BATCH, 1)),
  );
  route(router, 'POST', '/repairs/ack', async (_p, _u, req): Promise<T.RepairAckResponse> => {
    const input = v.fields(await body(req, BATCH_BODY_LIMIT), 'body');
    const acked = await store.ackRepairs(v.idList(input.ids, 'ids', (id) => v.text(id, 'repair task id', 12_000)));
    c.repairAcks.inc(undefined, acked);
    return { acked };
  });
}

function uploadRoutes(router: Router, store: NamespaceStore, c: Counters): void {
  route(router, 'POST', '/uploads', async (_p, _u, req) => store.createUpload(v.createUploadRequest(await body(req))));
  route(router, 'GET', '/uploads', (_p, url) => {
    const q = url.searchParams;
    const bucket = q.get('bucket') ?? v.fail('bucket is required');
    return store.listUploads(bucket, {
      prefix: q.get('prefix') ?? undefined,
      keyMarker: q.get('key-marker') ?? undefined,
      uploadIdMarker: q.get('upload-id-marker') ?? undefined,
      maxUploads: v.countParam(q.get('max-uploads'), 'max-uploads', 1000, 1000),
    });
  });
  route(router, 'GET', '/uploads/:uploadId', (p) => store.getUpload(p.uploadId));
  route(router, 'DELETE', '/uploads/:uploadId', (p) => store.abortUpload(p.uploadId));
  route(router, 'PUT', '/uploads/:uploadId/parts/:partNumber', async (p, _u, req) => {
    const part = v.partRecord(await body(req, RECORD_BODY_LIMIT));
    if (part.uploadId !== p.uploadId || String(part.partNumber) !== p.partNumber) v.fail('part uploadId/partNumber differ from the URL');
    return store.putPart(part);
  });
  route(router, 'GET', '/uploads/:uploadId/parts/:partNumber', (p) => store.getPart(p.uploadId, partNumberOf(p)));
  route(router, 'PUT', '/uploads/:uploadId/parts/:partNumber/shards', async (p, _u, req) => {
    const result = await store.replacePartShards(p.uploadId, partNumberOf(p), v.replaceShardsRequest(await body(req)));
    c.replacements.inc();
    return result;
  });
  route(router, 'GET', '/uploads/:uploadId/parts', (p, url) =>
    store.listParts(p.uploadId, {
      after: v.countParam(url.searchParams.get('after'), 'after', 0, v.MAX_PART_NUMBER),
      maxParts: v.countParam(url.searchParams.get('max-parts'), 'max-parts', 1000, 1000, 1),
    }),
  );
  route(router, 'POST', '/uploads/:uploadId/complete', async (p, _u, req) => {
    const result = await store.completeUpload(p.uploadId, v.completeUploadRequest(await body(req, RECORD_BODY_LIMIT)));
    c.commits.inc();
    return result;
  });
}

/**
 * Users and access keys. Only POST /users/:id/access-keys (the new key) and
 * GET /access-keys/:id/credential (the gateway's lookup) answer with a secret.
 */
function userRoutes(router: Router, store: NamespaceStore): void {
  const users = store.users;
  route(router, 'GET', '/users', async (): Promise<T.ListUsersResponse> => ({ users: await users.listUsers() }));
  route(router, 'PUT', '/users/:id', async (p, _u, req) => {
    const input = v.fields(await body(req), 'body');
    return users.createUser(p.id, input.displayName === undefined ? undefined : v.displayName(input.displayName));
  });
  route(router, 'GET', '/users/:id', (p) => users.getUser(p.id));
  route(router, 'PUT', '/users/:id/status', async (p, _u, req) => users.setUserStatus(p.id, v.principalStatus(v.fields(await body(req), 'body').status)));
  route(router, 'DELETE', '/users/:id', (p) => users.deleteUser(p.id));
  route(router, 'POST', '/users/:id/access-keys', (p) => users.createAccessKey(p.id));
  route(router, 'GET', '/access-keys', async (_p, url): Promise<T.ListAccessKeysResponse> => ({
    keys: await users.listAccessKeys(url.searchParams.get('user') ?? undefined),
  }));
  route(router, 'GET', '/access-keys/:id', (p) => users.getAccessKey(p.id));
  route(router, 'GET', '/access-keys/:id/credential', (p) => users.credential(p.id));
  route(router, 'PUT', '/access-keys/:id/status', async (p, _u, req) =>
    users.setAccessKeyStatus(p.id, v.principalStatus(v.fields(await body(req), 'body').status)),
  );
  route(router, 'DELETE', '/access-keys/:id', (p) => users.deleteAccessKey(p.id));
}
