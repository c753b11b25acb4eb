// The namespace's repair API end to end: a real server over a real LevelDB in a temp dir, driven
// through NamespaceClient. Repair queue (degraded commits and parts, damage reports, ack), the
// placement compare-and-swap of objects and of parts of uploads in progress (and completion keeping
// what repair moved), reverse-index lookups for orphan GC, and node drain mode.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { rawRequest } from './helpers/internal.js';
import { NamespaceClient, NamespaceError } from '../namespace/client.js';
import { LevelEngine, type KvCursor, type KvEngine, type KvOp, type KvRange, type Space } from '../namespace/engine.js';
import { NamespaceStore } from '../namespace/store.js';
import type { DamageReport, ObjectRecord, PartRecord, RepairTask, ReplaceShardsRequest, ShardPlacement } from '../namespace/types.js';
import { serveNamespace } from './helpers/namespace.js';


/** Records every batch, so a test can see which writes were made together. */
class SpyEngine implements KvEngine {
  readonly batches: { ops: KvOp[]; sync: boolean }[] = [];
  constructor(private readonly inner: KvEngine) {}
  get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    return this.inner.get(space, key);
  }
  getMany(space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    return this.inner.getMany(space, keys);
  }
  batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    this.batches.push({ ops, sync: opts.sync });
    return this.inner.batch(ops, opts);
  }
  cursor(space: Space, range: KvRange): KvCursor {
    return this.inner.cursor(space, range);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Service {
  dir: string;
  engine: SpyEngine;
  store: NamespaceStore;
  client: NamespaceClient;
  stop: () => Promise<void>;
}

async function startService(tt: Test, dir?: string): Promise<Service> {
  const dataDir = dir ?? (await mkdtemp(path.join(tmpdir(), 'cairn-nsr-')));
  const engine = new SpyEngine(await LevelEngine.open(path.join(dataDir, 'meta')));
  const store = new NamespaceStore(engine);
  await store.nodes.load();
  const { client, stop } = await serveNamespace(tt, store, dir ? undefined : dataDir);
  return { dir: dataDir, engine, store, client, stop };
}

const LAYOUT = { k: 2, m: 1, blockSize: 8 };
let versions = 0;

/** A record whose segment s has shards on `nodes[s]` (null = never written), ids `<version>.<s>.<i>`. */
function record(bucket: string, key: string, nodes: (string | null)[][], versionId = `v${++versions}`): ObjectRecord {
  const segments = nodes.map((row, s) => ({ size: 10, placements: row.map((nodeId, i) => ({ nodeId, shardId: `${versionId}.${s}.${i}` })) }));
  return {
    bucket,
    key,
    versionId,
    size: 10 * segments.length,
    etag: `"etag-${versionId}"`,
    lastModified: new Date().toISOString(),
    contentType: 'application/octet-stream',
    userMetadata: {},
    headers: {},
    checksums: {},
    layout: LAYOUT,
    segments,
  };
}

const HEALTHY = [['n1', 'n2', 'n3']];

async function failure(promise: Promise<unknown>): Promise<NamespaceError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof NamespaceError) return err;
    throw err;
  }
  throw new Error('expected a NamespaceError, but the call succeeded');
}

async function expectError(tt: Test, promise: Promise<unknown>, status: number, code: string, what: string): Promise<void> {
  const err = await failure(promise);
  tt.equal(`${err.status} ${err.code}`, `${status} ${code}`, what);
}

async function registerNodes(client: NamespaceClient, ids: string[]): Promise<void> {
  for (const [i, id] of ids.entries()) {
    await client.heartbeat(id, { url: `http://127.0.0.1:${7000 + i}`, capacityBytes: 1e12, usedBytes: 0, freeBytes: 1e12 });
  }
}

async function allTasks(client: NamespaceClient): Promise<Awaited<ReturnType<NamespaceClient['repairTasks']>>['tasks']> {
  return (await client.repairTasks()).tasks;
}

const farFuture = (): Date => new Date(Date.now() + 60_000);
const pair = (p: { nodeId: string | null; shardId: string }): string => `${p.nodeId}/${p.shardId}`;

async function refsOf(client: NamespaceClient, nodes: string[]): Promise<string[]> {
  const pages = await Promise.all(nodes.map((n) => client.shardsOnNode(n)));
  return pages.flatMap((p) => p.refs.map(pair)).sort();
}

const placedPairs = (r: ObjectRecord): string[] => r.segments.flatMap((s) => s.placements.filter((p) => p.nodeId !== null).map(pair)).sort();

async function raw(client: NamespaceClient, method: 'POST' | 'PUT', route: string, body: unknown): Promise<{ status: number; code: string }> {
  const res = await rawRequest(client.baseUrl + route, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const text = await res.body.text();
  return { status: res.statusCode, code: text ? (JSON.parse(text) as { code: string }).code : '' };
}

/** Runs both calls, sending `a` first in even rounds and `b` first in odd ones; over separate connections either may reach the lock first. */
async function race<A, B>(round: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[PromiseSettledResult<A>, PromiseSettledResult<B>]> {
  if (round % 2 === 0) return Promise.allSettled([a(), b()]);
  const [second, first] = await Promise.allSettled([b(), a()]);
  return [first, second];
}

/** The writes since batch number `before` were one fsynced batch that touched every space in `spaces`. */
function oneBatch(t: Test, engine: SpyEngine, before: number, spaces: Space[]): void {
  const batches = engine.batches.slice(before);
  t.equal(batches.length, 1, 'one batch');
  const touched = new Set(batches[0]?.ops.map((op) => op.space));
  t.ok(spaces.every((space) => touched.has(space)), `${spaces.join(', ')} written together`);
  t.equal(batches[0]?.sync, true, 'fsynced');
}

t.test('a degraded commit queues its repair in the same fsynced batch, and it survives a restart', async (t) => {
  const first = await startService(t);
  const { client, engine } = first;
  await client.createBucket('b', 'o');
  const degraded = record('b', 'k', [['n1', null, 'n3'], ['n1', 'n2', 'n3'], [null, null, 'n2']]);
  const before = engine.batches.length;
  await client.commitObject({ record: degraded });
  oneBatch(t, engine, before, ['objects', 'shards', 'repairs']);

  const tasks = await allTasks(client);
  t.same(
    tasks.map((x) => [x.segment, x.reasons, x.shardIndices]),
    [
      [0, ['degraded-write'], [1]],
      [2, ['degraded-write'], [0, 1]],
    ],
    'one task per degraded segment, with the missing indices',
  );
  t.match(tasks[0], { bucket: 'b', key: 'k', versionId: degraded.versionId });

  // Healthy commits, and commits that fail their condition, queue nothing.
  await client.commitObject({ record: record('b', 'healthy', HEALTHY) });
  await expectError(t, client.commitObject({ record: record('b', 'k', [[null, 'n2', 'n3']]), condition: { ifNoneMatch: true } }), 412, 'PreconditionFailed', 'conditional commit refused');
  t.equal((await allTasks(client)).length, 2, 'no task from a healthy or refused commit');

  await first.stop();
  const second = await startService(t, first.dir);
  t.same(await allTasks(second.client), tasks, 'tasks survive a restart unchanged');
  await rm(first.dir, { recursive: true, force: true });
});

/** Part `partNumber` of an upload whose segment s has shards on `nodes[s]`, ids `<upload>.<tag>.<s>.<i>`. */
function part(uploadId: string, partNumber: number, nodes: (string | null)[][], tag = `p${partNumber}`): PartRecord {
  const segments = nodes.map((row, s) => ({ size: 10, crc32c: 1000 + s, placements: row.map((nodeId, i) => ({ nodeId, shardId: `${uploadId}.${tag}.${s}.${i}` })) }));
  return { uploadId, partNumber, size: 10 * segments.length, etag: `"${tag}"`, lastModified: new Date().toISOString(), checksums: {}, layout: LAYOUT, segments };
}

async function startUpload(client: NamespaceClient, key = 'mp'): Promise<string> {
  return (await client.createUpload({ bucket: 'b', key, contentType: 'x', userMetadata: {}, headers: {} })).uploadId;
}

/** The object record a gateway would assemble from `parts` (as it listed them). */
function assembled(key: string, parts: PartRecord[]): ObjectRecord {
  const summaries = parts.map((p) => ({ partNumber: p.partNumber, size: p.size, etag: p.etag, segmentCount: p.segments.length }));
  const segments = parts.flatMap((p) => p.segments);
  return { ...record('b', key, []), size: 10 * segments.length, segments, parts: summaries };
}

const partPairs = (parts: PartRecord[]): string[] => placedPairs({ segments: parts.flatMap((p) => p.segments) } as ObjectRecord);
const taskView = (x: RepairTask): unknown[] => [x.key, x.versionId, x.segment, x.part ?? null, x.shardIndices];

t.test('a part with a missing placement queues a part-aware repair in its own batch; completion queues the object', async (t) => {
  const first = await startService(t);
  const { client, engine } = first;
  await client.createBucket('b', 'o');
  const uploadId = await startUpload(client);
  const p1 = part(uploadId, 1, [['n1', null, 'n3']]);
  const before = engine.batches.length;
  await client.putPart(p1);
  oneBatch(t, engine, before, ['parts', 'shards', 'repairs']);
  const tasks = await allTasks(first.client);
  t.same(tasks.map(taskView), [['mp', uploadId, 0, 1, [1]]], 'the task names the upload and the part');
  t.same(tasks[0].reasons, ['degraded-write']);

  await first.stop();
  const second = await startService(t, first.dir);
  t.same(await allTasks(second.client), tasks, 'the part task survives a restart unchanged');

  const rec = assembled('mp', [p1]);
  const mark = second.engine.batches.length;
  await second.client.completeUpload(uploadId, { record: rec, usedParts: [1] });
  const batch = second.engine.batches.slice(mark).find((b) => b.ops.some((op) => op.space === 'objects'));
  t.ok(batch?.ops.some((op) => op.space === 'repairs'), 'the object repair task is in the completion batch');
  t.same(
    (await allTasks(second.client)).map(taskView),
    [
      ['mp', uploadId, 0, 1, [1]],
      ['mp', rec.versionId, 0, null, [1]],
    ],
    'the object is queued; the part task is left for repair to find stale and ack',
  );
  await rm(first.dir, { recursive: true, force: true });
});

t.test('two parts with the same segment index are two tasks; part reports are validated', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const uploadId = await startUpload(client);
  await client.putPart(part(uploadId, 2, [[null, 'n2', 'n3']]));
  await client.putPart(part(uploadId, 10, [['n1', null, 'n3']]));
  const base = { bucket: 'b', key: 'mp', versionId: uploadId, segment: 0 };
  await client.reportDamage([{ ...base, part: 2, shardIndex: 2, reason: 'corrupt' }]);
  t.same(
    (await allTasks(client)).map(taskView),
    [
      ['mp', uploadId, 0, 2, [0, 2]],
      ['mp', uploadId, 0, 10, [1]],
    ],
    'one task per (part, segment); a report of part 2 merges into part 2 only, in part order',
  );
  await client.reportDamage([{ ...base, reason: 'corrupt' }]);
  t.equal((await allTasks(client)).length, 3, 'a report without a part is another segment (an object version)');
  const bad: [string, unknown][] = [
    ['part 0', { ...base, part: 0, reason: 'corrupt' }],
    ['part above 10000', { ...base, part: 10_001, reason: 'corrupt' }],
    ['fractional part', { ...base, part: 1.5, reason: 'corrupt' }],
    ['part as text', { ...base, part: '1', reason: 'corrupt' }],
    ['upload id with a control char', { ...base, versionId: 'u\u0001', part: 1, reason: 'corrupt' }],
  ];
  for (const [why, report] of bad) await expectError(t, client.reportDamage([report as DamageReport]), 400, 'InvalidArgument', why);
});

t.test('replacePartShards swaps a part placement, moves the reverse index and queues the old shard for GC', async (t) => {
  const { client, engine } = await startService(t);
  await client.createBucket('b', 'o');
  const uploadId = await startUpload(client);
  const p1 = part(uploadId, 1, [['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']]);
  const p2 = part(uploadId, 2, [[null, null, 'n3']]);
  await client.putPart(p1);
  await client.putPart(p2);
  const listed = await allTasks(client);

  const to = { nodeId: 'n4', shardId: `${uploadId}.p1.1.1.r1` };
  const before = engine.batches.length;
  const { part: updated } = await client.replacePartShards(uploadId, 1, { versionId: uploadId, segment: 1, changes: [{ index: 1, from: p1.segments[1].placements[1], to }] });
  oneBatch(t, engine, before, ['parts', 'shards', 'gc']);
  t.same(updated.segments[1].placements[1], to);
  t.same({ ...updated, segments: [] }, { ...p1, segments: [] }, 'nothing but the placement changed');
  t.same(updated.segments[1].crc32c, p1.segments[1].crc32c, 'the integrity chain is kept');
  t.same(await client.getPart(uploadId, 1), updated);
  t.same((await client.shardsOnNode('n4')).refs, [
    { nodeId: 'n4', shardId: to.shardId, bucket: 'b', key: 'mp', versionId: uploadId, segment: 1, index: 1, upload: { uploadId, partNumber: 1 } },
  ], 'the new ref names the upload and the part');
  t.same(await refsOf(client, ['n1', 'n2', 'n3', 'n4']), partPairs([updated, p2]), 'the reverse index is exactly the placed shards');
  t.same((await client.garbage(farFuture())).map(pair), [pair(p1.segments[1].placements[1])], 'the replaced shard is queued for GC');

  // A partial repair of a part segment missing two shards re-queues the rest, part-aware, in the same batch.
  await client.replacePartShards(uploadId, 2, { versionId: uploadId, segment: 0, changes: [{ index: 0, from: p2.segments[0].placements[0], to: { nodeId: 'n1', shardId: `${uploadId}.p2.0.0.r` } }] });
  t.ok(engine.batches.at(-1)?.ops.some((op) => op.space === 'repairs'), 're-queued in the replace batch');
  t.equal(await client.ackRepairs(listed.map((x) => x.id)), 0, 'the ack of the older view does not drop the remaining work');
  t.same((await allTasks(client)).map(taskView), [['mp', uploadId, 0, 2, [0, 1]]], 'still queued for part 2');
});

t.test('replacePartShards refuses stale or unknown targets; a re-upload racing it wins; a completed upload refuses it', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const uploadId = await startUpload(client);
  const p1 = part(uploadId, 1, [['n1', 'n2', 'n3']]);
  await client.putPart(p1);
  const p = p1.segments[0].placements;
  const swap = (over: Partial<ReplaceShardsRequest> = {}, from: ShardPlacement = p[0], target = 'n4'): ReplaceShardsRequest => ({
    versionId: uploadId,
    segment: 0,
    changes: [{ index: 0, from, to: { nodeId: target, shardId: `${uploadId}.fresh` } }],
    ...over,
  });
  const cases: [string, () => Promise<unknown>, number, string][] = [
    ['versionId is not the upload', () => client.replacePartShards(uploadId, 1, swap({ versionId: 'v-other' })), 409, 'PlacementConflict'],
    ['stale from', () => client.replacePartShards(uploadId, 1, swap({}, { ...p[0], shardId: 'x' })), 409, 'PlacementConflict'],
    ['target holds another shard of the segment', () => client.replacePartShards(uploadId, 1, swap({}, p[0], 'n2')), 409, 'PlacementConflict'],
    ['segment out of range', () => client.replacePartShards(uploadId, 1, swap({ segment: 1 })), 400, 'InvalidArgument'],
    ['unknown part', () => client.replacePartShards(uploadId, 2, swap()), 404, 'NoSuchPart'],
    ['unknown upload', () => client.replacePartShards('u-none', 1, swap({ versionId: 'u-none' })), 404, 'NoSuchUpload'],
    ['part number 0', () => client.replacePartShards(uploadId, 0, swap()), 400, 'InvalidArgument'],
    ['get: unknown part', () => client.getPart(uploadId, 2), 404, 'NoSuchPart'],
    ['get: unknown upload', () => client.getPart('u-none', 1), 404, 'NoSuchUpload'],
    ['get: part number above 10000', () => client.getPart(uploadId, 10_001), 400, 'InvalidArgument'],
  ];
  for (const [why, call, status, code] of cases) await expectError(t, call(), status, code, why);
  t.equal(await client.getPartOrNull(uploadId, 2), null, 'getPartOrNull: no such part');
  t.equal(await client.getPartOrNull('u-none', 1), null, 'getPartOrNull: no such upload');
  t.same(await client.getPart(uploadId, 1), p1, 'the part is unchanged');
  t.same(await refsOf(client, ['n1', 'n2', 'n3', 'n4']), partPairs([p1]), 'the reverse index is unchanged');
  t.same(await client.garbage(farFuture()), [], 'nothing was queued for GC');

  // A re-upload of the part racing a swap: the re-upload always lands, whichever reaches the lock first.
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const outcomes = { swappedFirst: 0, reuploadFirst: 0 };
  let current = p1;
  for (let round = 0; round < 16; round++) {
    const again = part(uploadId, 1, [['n1', 'n2', 'n3']], `p1r${round}`);
    const request = swap({}, current.segments[0].placements[0]);
    request.changes[0].to.shardId = `${uploadId}.p1.0.0.r${round}`;
    const [put, replace] = await race(round, () => client.putPart(again), () => client.replacePartShards(uploadId, 1, request));
    t.equal(put.status, 'fulfilled', 'the re-upload always succeeds');
    const replaced = put.status === 'fulfilled' ? put.value.replaced : null;
    if (replace.status === 'fulfilled') {
      outcomes.swappedFirst++;
      t.same(replaced, replace.value.part, 'the re-upload replaced the swapped part');
    } else {
      outcomes.reuploadFirst++;
      t.equal((replace.reason as NamespaceError).code, 'PlacementConflict', 'the late swap fails');
      t.same(replaced, current, 'the re-upload replaced the part as it was');
    }
    t.same(await client.getPart(uploadId, 1), again, 'the re-upload is what is stored');
    t.same(await refsOf(client, nodes), partPairs([again]), 'the reverse index holds only the re-upload');
    const gc = (await client.garbage(farFuture(), 1000)).map(pair);
    for (const s of partPairs([current])) t.ok(gc.includes(s), `old shard ${s} queued for GC`);
    if (replace.status === 'fulfilled') t.ok(gc.includes(pair(request.changes[0].to)), 'the swapped-in shard is queued for GC too');
    current = again;
  }
  t.comment(`orders seen: ${JSON.stringify(outcomes)}`);
  t.ok(outcomes.swappedFirst > 0 && outcomes.reuploadFirst > 0, 'both orders were exercised');

  await client.completeUpload(uploadId, { record: assembled('mp', [current]), usedParts: [1] });
  await expectError(t, client.replacePartShards(uploadId, 1, swap({}, current.segments[0].placements[0])), 404, 'NoSuchUpload', 'a completed upload has no parts to swap');
  t.equal(await client.getPartOrNull(uploadId, 1), null, 'getPartOrNull after completion');
});

t.test('completion takes placements from the stored parts: a repair between ListParts and Complete is kept', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const uploadId = await startUpload(client);
  await client.putPart(part(uploadId, 1, [['n1', 'n2', 'n3'], ['n2', 'n3', 'n1']]));
  await client.putPart(part(uploadId, 2, [['n3', 'n1', 'n2']]));
  const listed = (await client.listParts(uploadId)).parts;
  const rec = assembled('mp', listed);

  // Repair moves shard 2 of part 2's segment after the gateway listed the parts.
  const old = listed[1].segments[0].placements[2];
  const moved = { nodeId: 'n4', shardId: `${uploadId}.p2.0.2.r1` };
  await client.replacePartShards(uploadId, 2, { versionId: uploadId, segment: 0, changes: [{ index: 2, from: old, to: moved }] });

  // What repair never changes is still checked against the stored parts.
  const refused: [string, ObjectRecord][] = [
    ['a segment size differs', { ...rec, segments: rec.segments.map((s, i) => (i === 2 ? { ...s, size: 9 } : s)), size: rec.size - 1, parts: [rec.parts![0], { ...rec.parts![1], size: 9 }] }],
    ['a segment crc32c differs', { ...rec, segments: rec.segments.map((s, i) => (i === 1 ? { ...s, crc32c: 7 } : s)) }],
    ['a part etag differs (re-uploaded since listed)', { ...rec, parts: [rec.parts![0], { ...rec.parts![1], etag: '"other"' }] }],
  ];
  for (const [why, bad] of refused) await expectError(t, client.completeUpload(uploadId, { record: bad, usedParts: [1, 2] }), 400, 'InvalidPart', why);

  const done = await client.completeUpload(uploadId, { record: rec, usedParts: [1, 2] });
  t.same(done.record.segments[2].placements[2], moved, 'the response holds the repaired placement');
  t.same({ ...done.record, segments: [] }, { ...rec, segments: [] }, 'everything else is the request record');
  t.same(await client.getObject('b', 'mp'), done.record, 'and so does the stored object');
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  t.same(await refsOf(client, nodes), placedPairs(done.record), 'the reverse index is exactly the object');
  const n4 = (await client.shardsOnNode('n4')).refs;
  t.same(n4, [{ nodeId: 'n4', shardId: moved.shardId, bucket: 'b', key: 'mp', versionId: rec.versionId, segment: 2, index: 2 }], 'the repaired shard belongs to the object now');
  t.same((await client.garbage(farFuture())).map(pair), [pair(old)], 'only the shard repair replaced is garbage');
});

t.test('damage reports collapse per segment; ack removes only what was listed', async (t) => {
  const { client } = await startService(t);
  const base = { bucket: 'b', key: 'photos/a.jpg', versionId: 'v-1' };
  const reports: DamageReport[] = [
    { ...base, segment: 3, shardIndex: 4, reason: 'corrupt', nodeId: 'n1' },
    { ...base, segment: 3, shardIndex: 1, reason: 'unreadable', nodeId: null },
    { ...base, segment: 3, shardIndex: 4, reason: 'corrupt' },
    { ...base, segment: 12, shardIndex: 0, reason: 'node-down' },
  ];
  await client.reportDamage(reports);
  let tasks = await allTasks(client);
  t.same(
    tasks.map((x) => [x.segment, x.reasons, x.shardIndices]),
    [
      [3, ['corrupt', 'unreadable'], [1, 4]],
      [12, ['node-down'], [0]],
    ],
    'segment 3 < 12 in key order (zero-padded); reports merged',
  );
  const firstQueuedAt = tasks[0].queuedAt;
  await new Promise((r) => setTimeout(r, 5));
  await client.reportDamage([{ ...base, segment: 3, shardIndex: 0, reason: 'drain' }]);
  tasks = await allTasks(client);
  t.equal(tasks.length, 2, 'still one task per segment');
  t.same(tasks[0].reasons, ['corrupt', 'unreadable', 'drain']);
  t.same(tasks[0].shardIndices, [0, 1, 4]);
  t.equal(tasks[0].queuedAt, firstQueuedAt, 'the first queuedAt is kept');

  // A report of the whole segment widens the task to "check all", and narrower reports keep it so.
  await client.reportDamage([{ ...base, segment: 12, reason: 'corrupt' }]);
  await client.reportDamage([{ ...base, segment: 12, shardIndex: 2, reason: 'corrupt' }]);
  tasks = await allTasks(client);
  t.same(tasks[1].shardIndices, [], 'empty = check every shard');

  // Ack: a task updated after it was listed keeps living; the listed view of an untouched one goes.
  const listed = await allTasks(client);
  await client.reportDamage([{ ...base, segment: 3, shardIndex: 2, reason: 'corrupt' }]);
  t.equal(await client.ackRepairs(listed.map((x) => x.id)), 1, 'only the untouched task is acked');
  tasks = await allTasks(client);
  t.same(tasks.map((x) => x.segment), [3], 'the updated task is still queued');
  t.not(tasks[0].id, listed[0].id, 'its id changed with the update');
  t.equal(await client.ackRepairs(tasks.map((x) => x.id)), 1);
  t.equal(await client.ackRepairs(tasks.map((x) => x.id)), 0, 'acking twice is harmless');
  t.same(await allTasks(client), []);

  await expectError(t, client.ackRepairs(['not-an-id']), 400, 'InvalidArgument', 'malformed task id');
  await expectError(t, client.repairTasks('garbage!'), 400, 'InvalidArgument', 'malformed cursor');
  const bad: [string, unknown][] = [
    ['unknown reason', { ...base, segment: 0, reason: 'bored' }],
    ['negative segment', { ...base, segment: -1, reason: 'corrupt' }],
    ['fractional index', { ...base, segment: 0, shardIndex: 1.5, reason: 'corrupt' }],
    ['no version', { bucket: 'b', key: 'k', segment: 0, reason: 'corrupt' }],
    ['control char in bucket', { ...base, bucket: 'a\u0001', segment: 0, reason: 'corrupt' }],
  ];
  for (const [why, report] of bad) await expectError(t, client.reportDamage([report as DamageReport]), 400, 'InvalidArgument', why);
  const tooMany = Array.from({ length: 1001 }, (_, i): DamageReport => ({ ...base, segment: i, reason: 'corrupt' }));
  t.same(await raw(client, 'POST', '/repairs', { reports: tooMany }), { status: 400, code: 'InvalidArgument' }, '1001 reports in one call are refused');
  t.same(await raw(client, 'POST', '/repairs/ack', { ids: Array.from({ length: 1001 }, () => 'x.000000000000') }), { status: 400, code: 'InvalidArgument' }, '1001 acks refused');
  t.same(await allTasks(client), [], 'nothing was queued by refused calls');
  await client.reportDamage(tooMany);
  t.equal((await client.repairTasks(undefined, 1000)).tasks.length, 1000, 'the client splits long lists');
});

t.test('task listing pages through the queue in key order', async (t) => {
  const { client } = await startService(t);
  const reports: DamageReport[] = [];
  for (const key of ['a', 'a/b', 'b', 'ü']) for (const segment of [0, 2, 10]) reports.push({ bucket: 'bk', key, versionId: 'v', segment, reason: 'corrupt' });
  await client.reportDamage([...reports].reverse());
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = await client.repairTasks(after, 5);
    seen.push(...page.tasks.map((x) => `${x.key}#${x.segment}`));
    after = page.next;
    pages++;
  } while (after !== undefined && pages < 10);
  t.equal(pages, 3);
  t.same(seen, reports.map((r) => `${r.key}#${r.segment}`), 'every task once, in (key, segment) order');
});

t.test('replaceShards swaps placements, moves the reverse index and queues the old shard for GC', async (t) => {
  const { client, engine } = await startService(t);
  await client.createBucket('b', 'o');
  const original = record('b', 'obj', [['n1', 'n2', 'n3'], ['n1', null, 'n3']]);
  await client.commitObject({ record: original });
  const degradedTask = (await allTasks(client))[0];

  const req: ReplaceShardsRequest = {
    versionId: original.versionId,
    segment: 0,
    changes: [{ index: 1, from: original.segments[0].placements[1], to: { nodeId: 'n4', shardId: `${original.versionId}.0.1.r1` } }],
  };
  const before = engine.batches.length;
  const { record: updated } = await client.replaceShards('b', 'obj', req);
  oneBatch(t, engine, before, ['objects', 'shards', 'gc']);
  t.same(updated.segments[0].placements[1], { nodeId: 'n4', shardId: `${original.versionId}.0.1.r1` });
  t.same({ ...updated, segments: [] }, { ...original, segments: [] }, 'nothing but the placement changed (same version, etag, date)');
  t.same(await client.getObject('b', 'obj'), updated);
  const n4 = (await client.shardsOnNode('n4')).refs;
  t.same(n4, [{ nodeId: 'n4', shardId: `${original.versionId}.0.1.r1`, bucket: 'b', key: 'obj', versionId: original.versionId, segment: 0, index: 1 }], 'ref with segment and index');
  t.same(await refsOf(client, ['n1', 'n2', 'n3', 'n4']), placedPairs(updated), 'the reverse index is exactly the placed shards');
  t.same((await client.garbage(farFuture())).map(pair), [pair(original.segments[0].placements[1])], 'the replaced shard is queued for GC');

  // Filling the null placement: nothing to GC, and the segment is whole so nothing is re-queued.
  const fill = await client.replaceShards('b', 'obj', {
    versionId: original.versionId,
    segment: 1,
    changes: [{ index: 1, from: { nodeId: null, shardId: `${original.versionId}.1.1` }, to: { nodeId: 'n2', shardId: `${original.versionId}.1.1.r1` } }],
  });
  t.equal((await client.garbage(farFuture())).length, 1, 'a null placement has nothing to collect');
  t.same(await refsOf(client, ['n1', 'n2', 'n3', 'n4']), placedPairs(fill.record));
  t.same(await allTasks(client), [degradedTask], 'the repaired task is untouched: repair acks it');
  t.equal(await client.ackRepairs([degradedTask.id]), 1);

  // A partial repair of a segment missing two shards re-queues the rest in the same batch.
  const two = record('b', 'two', [[null, null, 'n3']]);
  await client.commitObject({ record: two });
  const listed = await allTasks(client);
  await client.replaceShards('b', 'two', {
    versionId: two.versionId,
    segment: 0,
    changes: [{ index: 0, from: two.segments[0].placements[0], to: { nodeId: 'n1', shardId: `${two.versionId}.0.0.r` } }],
  });
  t.ok(engine.batches.at(-1)?.ops.some((op) => op.space === 'repairs'), 're-queued in the replace batch');
  t.equal(await client.ackRepairs(listed.map((x) => x.id)), 0, 'the ack of the older view does not drop the remaining work');
  t.same((await allTasks(client)).map((x) => x.shardIndices), [[0, 1]], 'still queued (indices merged)');

  // Keys that cannot be path segments use the query form.
  const dot = record('b', '.', HEALTHY);
  await client.commitObject({ record: dot });
  const moved = await client.replaceShards('b', '.', {
    versionId: dot.versionId,
    segment: 0,
    changes: [{ index: 2, from: dot.segments[0].placements[2], to: { nodeId: 'n4', shardId: `${dot.versionId}.x` } }],
  });
  t.equal(moved.record.segments[0].placements[2].nodeId, 'n4', 'key "." works');
});

t.test('replaceShards refuses every stale or malformed swap and changes nothing', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const rec = record('b', 'k', [['n1', 'n2', 'n3'], ['n1', 'n2', null]]);
  await client.commitObject({ record: rec });
  const p = rec.segments[0].placements;
  const to = (nodeId: string | null, shardId = 'fresh.1'): ShardPlacement => ({ nodeId, shardId });
  const change = (index: number, from: ShardPlacement, target: ShardPlacement): ReplaceShardsRequest['changes'][number] => ({ index, from, to: target });
  const req = (changes: ReplaceShardsRequest['changes'], over: Partial<ReplaceShardsRequest> = {}): ReplaceShardsRequest => ({ versionId: rec.versionId, segment: 0, changes, ...over });

  // Thunks, run one by one: a case that wrongly succeeded must not change what the next one sees.
  const cases: [string, () => Promise<unknown>, number, string][] = [
    ['wrong version', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4'))], { versionId: 'v-other' })), 409, 'PlacementConflict'],
    ['from node differs', () => client.replaceShards('b', 'k', req([change(0, { ...p[0], nodeId: 'n9' }, to('n4'))])), 409, 'PlacementConflict'],
    ['from shard differs', () => client.replaceShards('b', 'k', req([change(0, { ...p[0], shardId: 'x' }, to('n4'))])), 409, 'PlacementConflict'],
    ['from null but placed', () => client.replaceShards('b', 'k', req([change(0, { ...p[0], nodeId: null }, to('n4'))])), 409, 'PlacementConflict'],
    ['target holds another shard of the segment', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n2'))])), 409, 'PlacementConflict'],
    ['one stale change spoils the batch', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4')), change(1, { ...p[1], nodeId: 'n7' }, to('n5', 'fresh.2'))])), 409, 'PlacementConflict'],
    ['to.nodeId null', () => client.replaceShards('b', 'k', req([change(0, p[0], to(null))])), 400, 'InvalidArgument'],
    ['to.shardId already in the record', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4', rec.segments[1].placements[0].shardId))])), 400, 'InvalidArgument'],
    ['to.shardId equal to from', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4', p[0].shardId))])), 400, 'InvalidArgument'],
    ['duplicate index', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4')), change(0, p[0], to('n5', 'fresh.2'))])), 400, 'InvalidArgument'],
    ['two changes to one node', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4')), change(1, p[1], to('n4', 'fresh.2'))])), 400, 'InvalidArgument'],
    ['duplicate new shard id', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4')), change(1, p[1], to('n5'))])), 400, 'InvalidArgument'],
    ['segment out of range', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4'))], { segment: 2 })), 400, 'InvalidArgument'],
    ['index out of range', () => client.replaceShards('b', 'k', req([change(3, p[0], to('n4'))])), 400, 'InvalidArgument'],
    ['no changes', () => client.replaceShards('b', 'k', req([])), 400, 'InvalidArgument'],
    ['bad shard id', () => client.replaceShards('b', 'k', req([change(0, p[0], to('n4', 'a\u0000b'))])), 400, 'InvalidArgument'],
    ['missing object', () => client.replaceShards('b', 'nope', req([change(0, p[0], to('n4'))])), 404, 'NoSuchKey'],
    ['missing bucket', () => client.replaceShards('nob', 'k', req([change(0, p[0], to('n4'))])), 404, 'NoSuchBucket'],
  ];
  for (const [why, call, status, code] of cases) await expectError(t, call(), status, code, why);
  t.same(await client.getObject('b', 'k'), rec, 'the record is unchanged');
  t.same(await refsOf(client, ['n1', 'n2', 'n3', 'n4', 'n5']), placedPairs(rec), 'the reverse index is unchanged');
  t.same(await client.garbage(farFuture()), [], 'nothing was queued for GC');

  // A retry of an applied swap (its answer lost) is a conflict: the caller re-reads and sees it landed.
  const ok = req([change(0, p[0], to('n4'))]);
  await client.replaceShards('b', 'k', ok);
  await expectError(t, client.replaceShards('b', 'k', ok), 409, 'PlacementConflict', 'retry after success');

  // Two repairs racing for the same shard: exactly one wins.
  const cur = (await client.getObject('b', 'k')).segments[0].placements[1];
  const racers = await Promise.allSettled(['n5', 'n6', 'n7', 'n8'].map((n, i) => client.replaceShards('b', 'k', req([change(1, cur, to(n, `race.${i}`))]))));
  t.equal(racers.filter((r) => r.status === 'fulfilled').length, 1, 'one racer wins');
  t.ok(racers.every((r) => r.status === 'fulfilled' || (r.reason as NamespaceError).code === 'PlacementConflict'), 'the others get PlacementConflict');
  const final = await client.getObject('b', 'k');
  t.same(await refsOf(client, ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8']), placedPairs(final), 'the reverse index holds only the winner');
});

t.test('an overwrite or delete racing replaceShards always wins, and the state stays consistent', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const outcomes = { replacedFirst: 0, overwriteFirst: 0 };
  for (let round = 0; round < 24; round++) {
    const key = `race-${round}`;
    const v1 = record('b', key, HEALTHY);
    await client.commitObject({ record: v1 });
    const swap: ReplaceShardsRequest = {
      versionId: v1.versionId,
      segment: 0,
      changes: [{ index: 0, from: v1.segments[0].placements[0], to: { nodeId: 'n4', shardId: `${v1.versionId}.0.0.r` } }],
    };
    const deleting = round % 3 === 2;
    const v2 = record('b', key, HEALTHY);
    const overwriteCall = (): Promise<{ deleted: ObjectRecord | null } | { replaced: ObjectRecord | null }> =>
      deleting ? client.deleteObject('b', key) : client.commitObject({ record: v2 });
    const [overwrite, replace] = await race(round, overwriteCall, () => client.replaceShards('b', key, swap));
    t.equal(overwrite.status, 'fulfilled', 'the overwrite/delete always succeeds');
    const old = overwrite.status === 'fulfilled' ? ('deleted' in overwrite.value ? overwrite.value.deleted : overwrite.value.replaced) : null;
    if (replace.status === 'fulfilled') {
      outcomes.replacedFirst++;
      t.same(old, replace.value.record, 'the overwrite replaced the swapped record');
    } else {
      outcomes.overwriteFirst++;
      t.equal((replace.reason as NamespaceError).code, deleting ? 'NoSuchKey' : 'PlacementConflict', 'the late swap fails');
      t.same(old, v1, 'the overwrite replaced the original');
    }
    const final = deleting ? null : await client.getObject('b', key);
    t.same(final, deleting ? null : v2, 'the overwrite is what is stored');
    const live = (await refsOf(client, nodes)).filter((s) => s.includes(v1.versionId));
    t.same(live, [], 'no shard of the old version is left in the reverse index');
    const gc = (await client.garbage(farFuture(), 1000)).map(pair);
    for (const s of placedPairs(v1)) t.ok(gc.includes(s), `old shard ${s} queued for GC`);
    if (replace.status === 'fulfilled') t.ok(gc.includes(pair(swap.changes[0].to)), 'the swapped-in shard is queued for GC too');
  }
  t.comment(`orders seen: ${JSON.stringify(outcomes)}`);
  t.ok(outcomes.replacedFirst > 0 && outcomes.overwriteFirst > 0, 'both orders were exercised');
});

t.test('lookupShardRefs returns the refs that exist, for orphan GC', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  await registerNodes(client, ['n1', 'n2', 'n3']);
  const rec = record('b', 'k', [['n1', 'n2', 'n3'], ['n2', 'n1', 'n3']]);
  await client.commitObject({ record: rec });
  const upload = await client.createUpload({ bucket: 'b', key: 'mp', contentType: 'x', userMetadata: {}, headers: {} });
  await client.putPart({
    uploadId: upload.uploadId,
    partNumber: 7,
    size: 10,
    etag: '"p"',
    lastModified: new Date().toISOString(),
    checksums: {},
    layout: LAYOUT,
    segments: [{ size: 10, placements: [{ nodeId: 'n1', shardId: 'part.0.0' }, { nodeId: 'n2', shardId: 'part.0.1' }, { nodeId: 'n3', shardId: 'part.0.2' }] }],
  });

  const asked = ['orphan-1', `${rec.versionId}.1.1`, 'part.0.0', `${rec.versionId}.0.0`, `${rec.versionId}.0.1`, 'orphan-2'];
  const refs = await client.lookupShardRefs('n1', asked);
  t.same(refs.map((r) => r.shardId), [`${rec.versionId}.1.1`, 'part.0.0', `${rec.versionId}.0.0`], 'found refs in request order; other nodes\' shards and orphans left out');
  t.match(refs[0], { nodeId: 'n1', bucket: 'b', key: 'k', versionId: rec.versionId, segment: 1, index: 1 });
  t.match(refs[1], { upload: { uploadId: upload.uploadId, partNumber: 7 } }, 'parts of open uploads are referenced too');
  t.same(await client.lookupShardRefs('n1', []), []);
  await expectError(t, client.lookupShardRefs('n-unknown', ['x']), 404, 'NoSuchNode', 'unknown node (never "everything is orphaned")');
  await expectError(t, client.lookupShardRefs('n1', ['bad\u0001id']), 400, 'InvalidArgument', 'bad shard id');
  const many = Array.from({ length: 1001 }, (_, i) => `orphan-${i}`);
  t.same(await raw(client, 'POST', '/nodes/n1/shards/lookup', { shardIds: many }), { status: 400, code: 'InvalidArgument' }, '1001 ids in one call are refused');
  const refsOfMany = await client.lookupShardRefs('n1', [...many, ...many, `${rec.versionId}.0.0`]);
  t.same(refsOfMany.map((r) => r.shardId), [`${rec.versionId}.0.0`], 'the client splits long lists');
});

t.test('a draining node gets no placements, stays readable, and the mode persists across a restart', async (t) => {
  const first = await startService(t);
  const { client } = first;
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  await registerNodes(client, nodes);
  t.same((await client.listNodes()).map((n) => n.mode), ['normal', 'normal', 'normal', 'normal'], 'mode shown, normal by default');
  const drained = await client.setNodeMode('n2', 'draining');
  t.match(drained, { id: 'n2', mode: 'draining', state: 'up' });
  const placed = async (c: NamespaceClient): Promise<string[]> => (await c.place({ count: 4 })).nodes.map((n) => n.id).sort();
  for (let i = 0; i < 5; i++) t.same(await placed(client), ['n1', 'n3', 'n4'], 'n2 is never placed on');
  await registerNodes(client, nodes);
  t.equal((await client.getNode('n2')).mode, 'draining', 'a heartbeat keeps the mode');
  t.equal((await client.getNode('n2')).state, 'up', 'still up (readable)');

  await first.stop();
  const second = await startService(t, first.dir);
  t.equal((await second.client.getNode('n2')).mode, 'draining', 'persisted across a restart');
  t.same(await placed(second.client), ['n1', 'n3', 'n4']);
  await second.client.setNodeMode('n2', 'normal');
  t.same(await placed(second.client), nodes, 'back in placement');
  await expectError(t, second.client.setNodeMode('n9', 'draining'), 404, 'NoSuchNode', 'unknown node');
  await expectError(t, second.client.setNodeMode('n1', 'sleepy' as 'normal'), 400, 'InvalidArgument', 'unknown mode');
  await rm(first.dir, { recursive: true, force: true });
});
