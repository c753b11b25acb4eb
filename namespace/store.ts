// The namespace store: the only commit point of Cairn. An object exists exactly when its record is
// in the objects space; every change to a record, its reverse-index entries and the GC queue is one
// atomic, fsynced batch. Check-then-write sequences (conditions, bucket emptiness, upload state)
// are serialised with in-process locks, which is sound because one process owns the database.
// Lock order, to rule out deadlock: bucket (shared, or exclusive for create/delete) → object key → upload
// → repair tasks (repairs.ts). A commit that leaves placements without a node queues their repair in
// its own batch, so no crash can separate "committed degraded" from "queued for repair".
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { checkCondition } from './conditions.js';
import { GroupCommitEngine, type GroupCommitStats } from './group-commit.js';
import { LevelEngine, scanRange, type KvEngine, type KvOp, type KvRange, type Space } from './engine.js';
import * as errors from './errors.js';
import * as k from './keys.js';
import { listObjects, listPlan, resumeAfter, type ListPlan } from './listing.js';
import { DEFAULT_READ_AHEAD, ListReadAhead, ObjectWriteCounter, type ReadAheadOptions } from './list-read-ahead.js';
import { DEFAULT_RECORD_CACHE, RecordCache, type RecordCacheOptions } from './record-cache.js';
import { KeyedLock } from './lock.js';
import { ValueLogEngine } from './value-log-engine.js';
import type { Logger } from '../common/log.js';
import { checkAssembly, forgetUpload, uploadRange } from './multipart.js';
import { NodeRegistry } from './nodes.js';
import { placeNodes, type RandomSource } from '../common/placement.js';
import { degradedReports, partOwner, RepairQueue } from './repairs.js';
import { applyReplacement, replacementOps } from './replace.js';
import { decode, encode, objectRefs, partRefs, placedShards, shardTransition, type PlacedShard } from './records.js';
import { UserDirectory } from './users.js';
import type * as T from './types.js';
import { BUCKET_NAME_HOLD_MS } from './types.js';
import * as v from './validate.js';

/** A request as received: every field still to be validated. */
export type Unchecked<R> = { [K in keyof R]?: unknown };

export interface StoreOptions {
  /** A node that has not sent a heartbeat for this long is 'suspect' (default 5 s). */
  suspectAfterMs?: number;
  /** ... and 'down' after this long (default 10 min). */
  downAfterMs?: number;
  /** fsync every mutation (default true). Turning it off is for tests and bulk loads only. */
  sync?: boolean;
  now?: () => number;
  random?: RandomSource;
  /** Listing read-ahead limits; maxRunning 0 turns it off. */
  listReadAhead?: ReadAheadOptions;
  /** Which object records are kept parsed for reads (record-cache.ts). */
  recordCache?: RecordCacheOptions;
  /** For the value log's compactions and damage (open only). */
  log?: Logger;
  /** How long a deleted bucket's name is held from other owners (default BUCKET_NAME_HOLD_MS). */
  bucketNameHoldMs?: number;
}

/** bucket-holds: who deleted a bucket and when (ms), so that nobody else takes its name too soon. */
interface BucketHold {
  owner: string;
  deletedAt: number;
}

/** Counters for tests and diagnostics. */
export interface StoreStats {
  /** Entries read by object listings; shows that a rolled-up prefix is skipped, not walked. */
  listSteps: number;
}

const MAX_PAGE = 1000;

/** A listing page and the entries read for it (counted in stats only once it is served). */
interface CountedPage {
  page: T.ListObjectsResponse;
  steps: number;
}

/**
 * Which page of which listing: the fields that decide its entries. The start is the resume point,
 * not the token, so a v1 client paging by marker finds the page read ahead for it too.
 */
function readAheadKey(bucket: string, plan: ListPlan): string {
  return JSON.stringify([bucket, plan.prefix, plan.delimiter ?? null, plan.maxKeys, resumeAfter(plan)?.toString('base64') ?? null]);
}

export class NamespaceStore {
  readonly stats: StoreStats = { listSteps: 0 };
  readonly nodes: NodeRegistry;
  /** Users and access keys (access control). */
  readonly users: UserDirectory;
  private readonly repairs: RepairQueue;
  private readonly bucketLocks = new KeyedLock();
  private readonly keyLocks = new KeyedLock();
  /**
   * Per upload: shared by the writes of its parts, exclusive for completion and abort. The parts'
   * own locks serialise the writes of one part number; parts of different numbers commit
   * concurrently (one synced batch for several of them), where the upload's exclusive lock made 8
   * parts in flight commit one fsync after another.
   */
  private readonly uploadLocks = new KeyedLock();
  private readonly partLocks = new KeyedLock();
  private readonly sync: boolean;
  private readonly now: () => number;
  private readonly random: RandomSource;
  private readonly bucketNameHoldMs: number;
  private bucketHoldsSweptAt = 0;
  private readonly engine: ObjectWriteCounter;
  /** Pages of listings read before they are asked for (list-read-ahead.ts). */
  readonly listReadAhead: ListReadAhead<CountedPage>;
  /** Large object records, parsed, for reads (see record-cache.ts). */
  readonly records: RecordCache;
  /** How many writes shared each fsync, when the engine groups them (see group-commit.ts). */
  readonly groupCommit: GroupCommitStats | undefined;
  /** The value log holding small objects' bytes, when opened with one (see value-log-engine.ts). */
  valueLog: ValueLogEngine | undefined;

  constructor(engine: KvEngine, opts: StoreOptions = {}) {
    this.engine = new ObjectWriteCounter(engine);
    this.groupCommit = engine instanceof GroupCommitEngine ? engine.stats : undefined;
    this.listReadAhead = new ListReadAhead(opts.listReadAhead ?? DEFAULT_READ_AHEAD);
    this.records = new RecordCache(opts.recordCache ?? DEFAULT_RECORD_CACHE);
    this.sync = opts.sync ?? true;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.bucketNameHoldMs = opts.bucketNameHoldMs ?? BUCKET_NAME_HOLD_MS;
    this.nodes = new NodeRegistry(this.engine, {
      suspectAfterMs: opts.suspectAfterMs ?? 5_000,
      downAfterMs: opts.downAfterMs ?? 600_000,
      now: this.now,
    });
    this.repairs = new RepairQueue(this.engine, this.now);
    this.users = new UserDirectory(this.engine, { sync: this.sync, now: this.now });
  }

  /** Opens the LevelDB store at `<dataDir>/meta`, with small objects' bytes in `<dataDir>/values`. */
  static async open(dataDir: string, opts: StoreOptions = {}): Promise<NamespaceStore> {
    const level = await LevelEngine.open(path.join(dataDir, 'meta'));
    const values = await ValueLogEngine.open(level, path.join(dataDir, 'values'), { log: opts.log }).catch(async (err: unknown) => {
      await level.close();
      throw err;
    });
    // Every write goes through group commit: concurrent commits share one fsync (and one of the value log's).
    const store = new NamespaceStore(new GroupCommitEngine(values), opts);
    store.valueLog = values;
    await store.nodes.load();
    await store.dropExpiredBucketHolds();
    return store;
  }

  async close(): Promise<void> {
    await this.listReadAhead.close();
    return this.engine.close();
  }

  // ---- buckets ----

  createBucket(name: string, owner: string): Promise<T.BucketRecord> {
    const bucket = v.bucketName(name);
    const who = v.token(owner, 'owner');
    return this.bucketLocks.exclusive(bucket, async () => {
      const existing = await this.read<T.BucketRecord>('buckets', k.bucketKey(bucket));
      if (existing) {
        throw existing.owner === who
          ? errors.conflict('BucketAlreadyOwnedByYou', `you already own bucket ${JSON.stringify(bucket)}`)
          : errors.conflict('BucketAlreadyExists', `bucket ${JSON.stringify(bucket)} is taken`);
      }
      const hold = await this.read<BucketHold>('bucket-holds', k.bucketHoldKey(bucket));
      if (hold && hold.owner !== who && this.now() - hold.deletedAt < this.bucketNameHoldMs) {
        throw errors.operationAborted(`bucket name ${JSON.stringify(bucket)} was deleted by its owner a moment ago; another owner may take it ${this.bucketNameHoldMs} ms after the delete`);
      }
      const record: T.BucketRecord = { name: bucket, createdAt: this.isoNow(), owner: who };
      const releaseHold: KvOp[] = hold ? [{ type: 'del', space: 'bucket-holds', key: k.bucketHoldKey(bucket) }] : [];
      await this.write([put('buckets', k.bucketKey(bucket), record), ...releaseHold]);
      return record;
    });
  }

  async getBucket(name: string): Promise<T.BucketRecord> {
    const bucket = v.bucketName(name);
    const record = await this.read<T.BucketRecord>('buckets', k.bucketKey(bucket));
    if (!record) throw errors.noSuchBucket(bucket);
    return record;
  }

  /** Every bucket, or only those `owner` owns. */
  async listBuckets(owner?: string): Promise<T.BucketRecord[]> {
    const all = (await this.scan('buckets', {})).map(([, value]) => decode<T.BucketRecord>(value));
    return owner === undefined ? all : all.filter((b) => b.owner === owner);
  }

  /**
   * Sets (or with null removes) the bucket's policy text, with the pins of the users it names
   * (BucketRecord.policyPrincipals); the gateway has parsed and checked it.
   */
  setBucketPolicy(name: string, policy: string | null, principals?: Record<string, string>): Promise<T.BucketRecord> {
    const bucket = v.bucketName(name);
    const text = v.bucketPolicy(policy);
    const pins = v.policyPrincipals(principals);
    return this.bucketLocks.exclusive(bucket, async () => {
      const { policy: _old, policyPrincipals: _oldPins, ...rest } = await this.getBucket(bucket);
      const record: T.BucketRecord = text === null ? rest : pins === undefined ? { ...rest, policy: text } : { ...rest, policy: text, policyPrincipals: pins };
      await this.write([put('buckets', k.bucketKey(bucket), record)]);
      return record;
    });
  }

  /** Replaces the bucket's tags (`[]` removes them). */
  setBucketTags(name: string, tags: T.Tag[]): Promise<T.BucketRecord> {
    const bucket = v.bucketName(name);
    const wanted = v.bucketTags(tags);
    return this.bucketLocks.exclusive(bucket, async () => {
      const { tags: _old, ...rest } = await this.getBucket(bucket);
      const record: T.BucketRecord = wanted.length > 0 ? { ...rest, tags: wanted } : rest;
      await this.write([put('buckets', k.bucketKey(bucket), record)]);
      return record;
    });
  }

  async deleteBucket(name: string): Promise<void> {
    const bucket = v.bucketName(name);
    await this.bucketLocks.exclusive(bucket, async () => {
      const existing = await this.getBucket(bucket);
      if ((await this.anyUnder('objects', k.bucketObjectsPrefix(bucket))) || (await this.anyUnder('upload-keys', k.bucketObjectsPrefix(bucket)))) {
        throw errors.conflict('BucketNotEmpty', `bucket ${JSON.stringify(bucket)} holds objects or multipart uploads`);
      }
      const hold: BucketHold = { owner: existing.owner, deletedAt: this.now() };
      await this.write([{ type: 'del', space: 'buckets', key: k.bucketKey(bucket) }, put('bucket-holds', k.bucketHoldKey(bucket), hold)]);
    });
    // At most once a hold period: the holds left are then those of the last two periods' deletes.
    if (this.now() - this.bucketHoldsSweptAt >= this.bucketNameHoldMs) await this.dropExpiredBucketHolds();
  }

  /**
   * Forgets the holds on deleted buckets' names that have run out; a name nobody takes again would
   * otherwise keep its small key for good (a pipeline making and deleting a bucket per job).
   */
  async dropExpiredBucketHolds(): Promise<number> {
    this.bucketHoldsSweptAt = this.now();
    const expired = (hold: BucketHold | undefined): boolean => hold !== undefined && this.now() - hold.deletedAt >= this.bucketNameHoldMs;
    const candidates = (await this.scan('bucket-holds', {})).filter(([, value]) => expired(decode<BucketHold>(value)));
    // Concurrently, so that group commit gives many of them one fsync (one bucket lock each).
    const dropped = await Promise.all(
      candidates.map(([key]) =>
        // Under the bucket's lock, read again: the name may have been taken and deleted since the scan.
        this.bucketLocks.exclusive(key.toString('utf8'), async () => {
          if (!expired(await this.read<BucketHold>('bucket-holds', key))) return false;
          await this.write([{ type: 'del', space: 'bucket-holds', key }]);
          return true;
        }),
      ),
    );
    return dropped.filter(Boolean).length;
  }

  // ---- objects ----

  /**
   * Validates the request itself, so that the HTTP route hands over what it received unchecked:
   * checking it there too cost an inline 4 KiB object a second base64 scan, decode and CRC32C.
   */
  commitObject(request: Unchecked<T.CommitObjectRequest>): Promise<T.CommitObjectResponse> {
    const record = v.objectRecord(request.record);
    const condition = v.condition(request.condition);
    return this.withObject(record.bucket, record.key, async (current) => {
      checkCondition(condition, current);
      const { stored, inlineOps } = splitInline(record, current);
      const ops: KvOp[] = [
        put('objects', k.objectKey(record.bucket, record.key), stored),
        ...inlineOps,
        ...shardTransition(shardsOf(current), placedShards(record.segments), objectRefs(record), this.now()),
      ];
      await this.writeWithRepairs(ops, degradedReports(record));
      return { record: stored, replaced: current ?? null };
    });
  }

  /** The current record; large ones may come from the record cache, frozen (callers never change what they read). */
  async getObject(bucket: string, key: string): Promise<T.ObjectRecord> {
    const b = v.bucketName(bucket);
    const name = v.objectKey(key);
    const id = k.objectKey(b, name);
    const stamp = this.engine.keyWrites(id);
    const cached = this.records.get(id, stamp);
    if (cached) return cached;
    const raw = await this.engine.get('objects', id);
    if (raw === undefined) {
      await this.getBucket(b);
      throw errors.noSuchKey(b, name);
    }
    const record = decode<T.ObjectRecord>(raw);
    return record.inline ? this.withInlineData(record) : this.records.offer(id, stamp, record, raw.length);
  }

  /**
   * Joins an inline object's bytes to its record. Reads take no lock, so the object may be
   * overwritten or deleted between reading the record and reading its bytes: the bytes are kept
   * per version, so that shows as "this version's bytes are gone", and the record is read again.
   * A record whose own bytes are missing while it is still current is corruption, never an empty object.
   */
  private async withInlineData(first: T.ObjectRecord): Promise<T.ObjectRecord> {
    let record = first;
    for (let attempt = 0; ; attempt++) {
      const bytes = await this.engine.get('inline', inlineKey(record));
      if (bytes !== undefined) return { ...record, inline: { crc32c: record.inline!.crc32c, bytes } };
      const now = await this.read<T.ObjectRecord>('objects', k.objectKey(record.bucket, record.key));
      if (!now) throw errors.noSuchKey(record.bucket, record.key);
      if (now.versionId === record.versionId || attempt >= 8) throw errors.internal(`the inline bytes of ${record.bucket}/${record.key} are missing`);
      if (!now.inline) return now;
      record = now;
    }
  }

  /** Deleting a key that does not exist is not an error (as in S3): `deleted` is then null. */
  deleteObject(bucket: string, key: string, condition?: T.WriteCondition): Promise<T.DeleteObjectResponse> {
    const cond = v.condition(condition);
    return this.withObject(v.bucketName(bucket), v.objectKey(key), async (current) => {
      checkCondition(cond, current);
      if (!current) return { deleted: null };
      await this.write([
        { type: 'del', space: 'objects', key: k.objectKey(current.bucket, current.key) },
        ...dropInline(current),
        ...shardTransition(shardsOf(current), [], undefined, this.now()),
      ]);
      return { deleted: current };
    });
  }

  async listObjects(bucket: string, query: T.ListObjectsQuery = {}): Promise<T.ListObjectsResponse> {
    const b = v.bucketName(bucket);
    const plan = listPlan(query);
    await this.getBucket(b);
    const writes = this.engine.writes(b);
    const ahead = await this.listReadAhead.take(readAheadKey(b, plan), writes);
    const { page, steps } = ahead ?? (await this.countedList(b, plan));
    this.stats.listSteps += steps;
    // A bucket written to while this page was read would most likely make the next page stale too.
    if (page.isTruncated && page.nextContinuation !== undefined && this.engine.writes(b) === writes) {
      const next: ListPlan = { ...plan, continuation: page.nextContinuation };
      // Started before this page is answered, so that the client's next request always finds it;
      // the scan's first read runs on the engine's thread while this answer is sent. The counter is
      // read right before the scan's cursor opens (synchronously, inside countedList).
      this.listReadAhead.start(readAheadKey(b, next), writes, () => this.countedList(b, next));
    } else if (page.isTruncated) {
      this.listReadAhead.stats.skipped++;
    }
    return page;
  }

  private async countedList(bucket: string, plan: ListPlan): Promise<CountedPage> {
    let steps = 0;
    const page = await listObjects(this.engine, bucket, plan, () => steps++);
    return { page, steps };
  }

  /**
   * Replaces the object's tags in place: the record keeps its version, ETag, date and shards (as S3
   * keeps them when tags change), so nothing is queued for GC. `[]` removes them.
   */
  setObjectTags(bucket: string, key: string, request: T.SetObjectTagsRequest): Promise<T.SetObjectTagsResponse> {
    const req = v.setObjectTagsRequest(request);
    return this.withObject(v.bucketName(bucket), v.objectKey(key), async (current) => {
      if (!current) throw errors.noSuchKey(bucket, key);
      checkCondition(req.condition, current);
      const { tags: _old, ...rest } = current;
      const record: T.ObjectRecord = req.tags.length > 0 ? { ...rest, tags: req.tags } : rest;
      await this.write([put('objects', k.objectKey(record.bucket, record.key), record)]);
      return { versionId: record.versionId };
    });
  }

  /**
   * Compare-and-swap of shard placements in one segment (see replace.ts): the object must still be
   * at `versionId` and every `from` must still hold. A segment left with placements without a node
   * is re-queued for repair in the same batch.
   */
  replaceShards(bucket: string, key: string, request: T.ReplaceShardsRequest): Promise<T.ReplaceShardsResponse> {
    const req = v.replaceShardsRequest(request);
    return this.withObject(v.bucketName(bucket), v.objectKey(key), async (current) => {
      if (!current) throw errors.noSuchKey(bucket, key);
      const record = applyReplacement(current, current.versionId, req);
      const ops = [put('objects', k.objectKey(record.bucket, record.key), record), ...replacementOps(objectRefs(record), req, this.now())];
      await this.writeWithRepairs(ops, degradedReports(record, [req.segment]));
      return { record };
    });
  }

  // ---- repair queue ----

  /** Queues damage reports (fsynced); reports of one segment merge into one task. */
  async reportDamage(reports: T.DamageReport[]): Promise<void> {
    await this.writeWithRepairs([], v.damageReports(reports));
  }

  repairTasks(after?: string, limit = MAX_PAGE): Promise<T.RepairTaskPage> {
    return this.repairs.list(after, limit);
  }

  ackRepairs(ids: string[]): Promise<number> {
    return this.repairs.ack(ids);
  }

  // ---- nodes, placement, reverse index, GC ----

  heartbeat(nodeId: string, request: T.HeartbeatRequest): Promise<T.NodeRecord> {
    return this.nodes.heartbeat(v.nodeId(nodeId), v.heartbeat(request));
  }

  listNodes(): T.NodeRecord[] {
    return this.nodes.list();
  }

  /** 'draining' takes a node out of placement; it stays readable and keeps its shards until repair moves them. */
  setNodeMode(nodeId: string, mode: T.NodeMode): Promise<T.NodeRecord> {
    const id = v.nodeId(nodeId);
    const wanted = v.nodeMode(mode);
    this.getNode(id);
    return this.nodes.setMode(id, wanted);
  }

  getNode(nodeId: string): T.NodeRecord {
    const node = this.nodes.get(v.nodeId(nodeId));
    if (!node) throw errors.noSuchNode(nodeId);
    return node;
  }

  place(request: T.PlacementRequest): T.PlacementResponse {
    const { count, exclude = [] } = v.placementRequest(request);
    return { nodes: placeNodes(this.nodes.list(), count, new Set(exclude), this.random).map((n) => ({ id: n.id, url: n.url })) };
  }

  async shardsOnNode(nodeId: string, after?: string, limit = MAX_PAGE): Promise<T.ShardRefPage> {
    const id = v.nodeId(nodeId);
    const max = v.integer(limit, 'limit', 1, MAX_PAGE);
    const prefix = k.nodeRefsPrefix(id);
    const start = after === undefined ? { gte: prefix } : { gt: k.refKey(id, v.shardId(after)) };
    const rows = await this.scan('shards', { ...start, lt: k.pastPrefix(prefix), limit: max + 1 });
    const refs = rows.slice(0, max).map(([, value]) => decode<T.ShardRef>(value));
    return rows.length > max ? { refs, next: refs[refs.length - 1].shardId } : { refs };
  }

  /** The reverse-index entries of `shardIds` on a registered node; ids no object or part references are left out. */
  async lookupShardRefs(nodeId: string, shardIds: string[]): Promise<T.ShardRef[]> {
    const id = this.getNode(nodeId).id;
    const ids = v.idList(shardIds, 'shardIds', v.shardId);
    const found = await this.engine.getMany('shards', ids.map((s) => k.refKey(id, s)));
    return found.flatMap((raw) => (raw === undefined ? [] : [decode<T.ShardRef>(raw)]));
  }

  /**
   * GC entries queued strictly before `before`, oldest first. An entry whose shard is referenced
   * again (the same shard id re-placed on the same node) is dropped instead of returned: deleting
   * it would destroy live data. So a page may be shorter than `limit` while more entries wait.
   */
  async garbage(before: Date, limit = MAX_PAGE): Promise<T.GarbageEntry[]> {
    if (Number.isNaN(before.getTime())) v.fail('before must be a valid date');
    const max = v.integer(limit, 'limit', 1, MAX_PAGE);
    const rows = await this.scan('gc', { lt: k.utf8(k.gcTime(Math.max(0, before.getTime()))), limit: max });
    const entries = rows.map(([, value]) => decode<T.GarbageEntry>(value));
    const live = await Promise.all(entries.map((e) => (e.nodeId === null ? undefined : this.engine.get('shards', k.refKey(e.nodeId, e.shardId)))));
    const stale = entries.filter((_, i) => live[i] !== undefined);
    if (stale.length > 0) await this.ackGarbage(stale.map((e) => e.id));
    return entries.filter((_, i) => live[i] === undefined);
  }

  /** Forgets GC entries whose shards were deleted. Not fsynced: a lost ack only repeats an idempotent delete. */
  async ackGarbage(ids: string[]): Promise<number> {
    const keys = ids.map((id) => k.utf8(v.text(id, 'garbage id')));
    await this.engine.batch(keys.map((key) => ({ type: 'del', space: 'gc', key })), { sync: false });
    return keys.length;
  }

  // ---- multipart ----

  createUpload(request: T.CreateUploadRequest): Promise<T.MultipartUploadRecord> {
    const req = v.createUploadRequest(request);
    return this.bucketLocks.shared(req.bucket, async () => {
      await this.getBucket(req.bucket);
      const upload: T.MultipartUploadRecord = { ...req, uploadId: this.newUploadId(), initiated: req.initiated ?? this.isoNow() };
      await this.write([
        put('uploads', k.uploadKey(upload.uploadId), upload),
        put('upload-keys', k.uploadIndexKey(upload.bucket, upload.key, upload.uploadId), upload),
      ]);
      return upload;
    });
  }

  async getUpload(uploadId: string): Promise<T.MultipartUploadRecord> {
    const id = v.uploadId(uploadId);
    const upload = await this.read<T.MultipartUploadRecord>('uploads', k.uploadKey(id));
    if (!upload) throw errors.noSuchUpload(id);
    return upload;
  }

  /** Stores a part; an earlier upload of the same part number is replaced and its shards queued for GC. */
  putPart(request: T.PartRecord): Promise<T.PutPartResponse> {
    const part = v.partRecord(request);
    return this.withPart(part.uploadId, part.partNumber, async () => {
      const upload = await this.getUpload(part.uploadId);
      const old = await this.read<T.PartRecord>('parts', k.partKey(part.uploadId, part.partNumber));
      const ops = [
        put('parts', k.partKey(part.uploadId, part.partNumber), part),
        ...shardTransition(old ? placedShards(old.segments) : [], placedShards(part.segments), partRefs(upload, part), this.now()),
      ];
      await this.writeWithRepairs(ops, degradedReports(partOwner(upload, part)));
      return { part, replaced: old ?? null };
    });
  }

  /** Runs `fn` with the upload held shared and the part exclusively (see uploadLocks). */
  private withPart<T>(uploadId: string, partNumber: number, fn: () => Promise<T>): Promise<T> {
    return this.uploadLocks.shared(uploadId, () => this.partLocks.exclusive(`${uploadId}\n${partNumber}`, fn));
  }

  /** NoSuchUpload when the upload is gone (completed or aborted), NoSuchPart when it has no such part. */
  getPart(uploadId: string, partNumber: number): Promise<T.PartRecord> {
    const id = v.uploadId(uploadId);
    const n = v.partNumber(partNumber);
    return this.readOr404('parts', k.partKey(id, n), () => this.getUpload(id), () => errors.noSuchPart(id, n));
  }

  /**
   * replaceShards for a part of an upload in progress (`request.versionId` is the upload id), with
   * the upload locked: completion, abort and a re-upload of the part are serialised with it, so
   * whichever comes first wins and the other sees the outcome.
   */
  replacePartShards(uploadId: string, partNumber: number, request: T.ReplaceShardsRequest): Promise<T.ReplacePartShardsResponse> {
    const id = v.uploadId(uploadId);
    const n = v.partNumber(partNumber);
    const req = v.replaceShardsRequest(request);
    return this.withPart(id, n, async () => {
      const upload = await this.getUpload(id);
      const current = await this.read<T.PartRecord>('parts', k.partKey(id, n));
      if (!current) throw errors.noSuchPart(id, n);
      const part = applyReplacement(current, id, req);
      const ops = [put('parts', k.partKey(id, n), part), ...replacementOps(partRefs(upload, part), req, this.now())];
      await this.writeWithRepairs(ops, degradedReports(partOwner(upload, part), [req.segment]));
      return { part };
    });
  }

  async listParts(uploadId: string, query: T.ListPartsQuery = {}): Promise<T.ListPartsResponse> {
    const id = v.uploadId(uploadId);
    const after = query.after === undefined ? 0 : v.integer(query.after, 'after', 0, v.MAX_PART_NUMBER);
    const max = query.maxParts === undefined ? MAX_PAGE : v.integer(query.maxParts, 'maxParts', 1, MAX_PAGE);
    await this.getUpload(id);
    const prefix = k.uploadPartsPrefix(id);
    const rows = await this.scan('parts', { gt: k.partKey(id, after), lt: k.pastPrefix(prefix), limit: max + 1 });
    const parts = rows.slice(0, max).map(([, value]) => decode<T.PartRecord>(value));
    return rows.length > max ? { parts, isTruncated: true, nextPartNumberMarker: parts[parts.length - 1].partNumber } : { parts, isTruncated: false };
  }

  async listUploads(bucket: string, query: T.ListUploadsQuery = {}): Promise<T.ListUploadsResponse> {
    const b = v.bucketName(bucket);
    const max = query.maxUploads === undefined ? MAX_PAGE : v.integer(query.maxUploads, 'maxUploads', 0, MAX_PAGE);
    const range = uploadRange(b, query);
    await this.getBucket(b);
    if (max === 0) return { uploads: [], isTruncated: false };
    const rows = await this.scan('upload-keys', { ...range, limit: max + 1 });
    const uploads = rows.slice(0, max).map(([, value]) => decode<T.MultipartUploadRecord>(value));
    if (rows.length <= max) return { uploads, isTruncated: false };
    const last = uploads[uploads.length - 1];
    return { uploads, isTruncated: true, nextKeyMarker: last.key, nextUploadIdMarker: last.uploadId };
  }

  /** Aborts an upload: its parts' shards all go to the GC queue. */
  abortUpload(uploadId: string): Promise<T.MultipartUploadRecord> {
    const id = v.uploadId(uploadId);
    return this.uploadLocks.exclusive(id, async () => {
      const upload = await this.getUpload(id);
      const parts = await this.partsOf(id);
      await this.write([...forgetUpload(upload, parts), ...shardTransition(parts.flatMap(shardsOfPart), [], undefined, this.now())]);
      return upload;
    });
  }

  /**
   * Commits the object assembled from `usedParts` (with the same conditions as a commit), removes
   * the upload, queues the shards of unused parts and of any replaced object for GC, and re-points
   * the used parts' reverse-index entries at the object's key, version and segment. The placements
   * committed (and returned) are the stored parts', whatever the request's record says.
   */
  async completeUpload(uploadId: string, request: T.CompleteUploadRequest): Promise<T.CommitObjectResponse> {
    const id = v.uploadId(uploadId);
    const { record, usedParts, condition } = v.completeUploadRequest(request);
    if (record.inline) v.fail('a multipart object is never inline');
    const first = await this.getUpload(id);
    if (first.bucket !== record.bucket || first.key !== record.key) v.fail('record bucket/key differ from the upload');
    return this.withObject(record.bucket, record.key, (current) =>
      this.uploadLocks.exclusive(id, async () => {
        const upload = await this.getUpload(id);
        const parts = await this.partsOf(id);
        const final: T.ObjectRecord = { ...record, segments: checkAssembly(record, usedParts, parts) };
        checkCondition(condition, current);
        const before = [...shardsOf(current), ...parts.flatMap(shardsOfPart)];
        const ops = [
          put('objects', k.objectKey(final.bucket, final.key), final),
          ...dropInline(current),
          ...forgetUpload(upload, parts),
          ...shardTransition(before, placedShards(final.segments), objectRefs(final), this.now()),
        ];
        await this.writeWithRepairs(ops, degradedReports(final));
        return { record: final, replaced: current ?? null };
      }),
    );
  }

  // ---- plumbing ----

  /** Runs `fn` with the bucket held against deletion and the key held exclusively. */
  private withObject<R>(bucket: string, key: string, fn: (current: T.ObjectRecord | undefined) => Promise<R>): Promise<R> {
    return this.bucketLocks.shared(bucket, () =>
      this.keyLocks.exclusive(`${bucket}\x00${key}`, async () => {
        await this.getBucket(bucket);
        return fn(await this.read<T.ObjectRecord>('objects', k.objectKey(bucket, key)));
      }),
    );
  }

  private async partsOf(uploadId: string): Promise<T.PartRecord[]> {
    const prefix = k.uploadPartsPrefix(uploadId);
    return (await this.scan('parts', { gte: prefix, lt: k.pastPrefix(prefix) })).map(([, value]) => decode<T.PartRecord>(value));
  }

  private async read<R>(space: Space, key: Buffer): Promise<R | undefined> {
    const raw = await this.engine.get(space, key);
    return raw === undefined ? undefined : decode<R>(raw);
  }

  /** The record under `key`; when there is none, a missing parent (bucket, upload) is the error before `missing`. */
  private async readOr404<R>(space: Space, key: Buffer, parent: () => Promise<unknown>, missing: () => errors.NamespaceError): Promise<R> {
    const record = await this.read<R>(space, key);
    if (record) return record;
    await parent();
    throw missing();
  }

  private scan(space: Space, range: KvRange): Promise<[Buffer, Buffer][]> {
    return scanRange(this.engine, space, range);
  }

  private async anyUnder(space: Space, prefix: Buffer): Promise<boolean> {
    return (await this.scan(space, { gte: prefix, lt: k.pastPrefix(prefix), limit: 1 })).length > 0;
  }

  private write(ops: KvOp[]): Promise<void> {
    return this.engine.batch(ops, { sync: this.sync });
  }

  /** Writes `ops` and the repair tasks `reports` imply as one batch. */
  private writeWithRepairs(ops: KvOp[], reports: T.DamageReport[]): Promise<void> {
    return this.repairs.withReports(reports, (repairOps) => this.write([...ops, ...repairOps]));
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString();
  }

  /** Time-ordered, so one key's uploads list in the order they were started, as S3 lists them. */
  private newUploadId(): string {
    return this.now().toString(16).padStart(12, '0') + randomBytes(12).toString('hex');
  }
}

/**
 * An inline record is stored without its bytes (listings never read them); the bytes go to the
 * `inline` space under the same key in the same batch. A record that replaces an inline one drops
 * the old bytes in that batch too, so record and bytes can never disagree after a crash.
 */
function splitInline(record: T.ObjectRecord, current: T.ObjectRecord | undefined): { stored: T.ObjectRecord; inlineOps: KvOp[] } {
  if (!record.inline) return { stored: record, inlineOps: dropInline(current) };
  const put: KvOp = { type: 'put', space: 'inline', key: inlineKey(record), value: v.inlineBytes(record.inline) };
  return { stored: { ...record, inline: { crc32c: record.inline.crc32c } }, inlineOps: [...dropInline(current), put] };
}

function dropInline(current: T.ObjectRecord | undefined): KvOp[] {
  return current?.inline ? [{ type: 'del', space: 'inline', key: inlineKey(current) }] : [];
}

/** inline: bucket 0x00 key 0x00 versionId → bytes. Per version, so a lock-free read never pairs one version's record with another's bytes. */
function inlineKey(record: Pick<T.ObjectRecord, 'bucket' | 'key' | 'versionId'>): Buffer {
  return Buffer.concat([k.objectKey(record.bucket, record.key), Buffer.from([0]), k.utf8(record.versionId)]);
}

function put(space: Space, key: Buffer, value: unknown): KvOp {
  return { type: 'put', space, key, value: encode(value) };
}

const shardsOf = (record: T.ObjectRecord | undefined): PlacedShard[] => (record ? placedShards(record.segments) : []);
const shardsOfPart = (part: T.PartRecord): PlacedShard[] => placedShards(part.segments);
