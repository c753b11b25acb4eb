// The namespace service end to end: a real server over a real LevelDB in a temp dir, driven
// through NamespaceClient, plus the pure placement function and one real child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { crc32c } from '@node-rs/crc32';
import { rawRequest, SECRET_ENV, TEST_SECRET } from './helpers/internal.js';
import { BLOB_LINES_TYPE, decodeBlobLines, decodeJsonLines, encodeBlobLines, encodeJsonLines, JSON_LINES_TYPE } from '../common/json-lines.js';
import { NamespaceClient, NamespaceError } from '../namespace/client.js';
import { KeyedLock } from '../namespace/lock.js';
import { choosePlacement, seededRandom, type Candidate } from '../common/placement.js';
import { NamespaceStore, type StoreOptions } from '../namespace/store.js';
import type { ListObjectsQuery, ObjectRecord, PartRecord, Segment } from '../namespace/types.js';
import { serveNamespace } from './helpers/namespace.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Service {
  dir: string;
  store: NamespaceStore;
  client: NamespaceClient;
  url: string;
  /** Closes server and store (idempotent); teardown calls it too. */
  stop: () => Promise<void>;
}

async function startService(tt: Tap, opts: StoreOptions = {}, dir?: string): Promise<Service> {
  const dataDir = dir ?? (await mkdtemp(path.join(tmpdir(), 'cairn-ns-')));
  const store = await NamespaceStore.open(dataDir, opts);
  const { client, url, stop } = await serveNamespace(tt, store, dir ? undefined : dataDir);
  return { dir: dataDir, store, client, url, stop };
}

type Tap = Test;

const LAYOUT = { k: 2, m: 1, blockSize: 8 };

function segments(tag: string, sizes: number[], nodes: (string | null)[]): Segment[] {
  return sizes.map((size, s) => ({
    size,
    placements: [0, 1, 2].map((i) => ({ nodeId: nodes[(s + i) % nodes.length], shardId: `${tag}.${s}.${i}` })),
  }));
}

let versionCounter = 0;
function record(bucket: string, key: string, over: Partial<ObjectRecord> = {}, nodes: (string | null)[] = ['n1', 'n2', 'n3']): ObjectRecord {
  const versionId = over.versionId ?? `v${++versionCounter}`;
  const segs = over.segments ?? segments(versionId, [10, 5], nodes);
  return {
    bucket,
    key,
    versionId,
    size: segs.reduce((sum, s) => sum + s.size, 0),
    etag: `"etag-${versionId}"`,
    lastModified: new Date().toISOString(),
    contentType: 'application/octet-stream',
    userMetadata: {},
    headers: {},
    checksums: {},
    layout: LAYOUT,
    segments: segs,
    ...over,
  };
}

/** Resolves to the NamespaceError a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<NamespaceError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof NamespaceError) return err;
    throw err;
  }
  throw new Error('expected a NamespaceError, but the call succeeded');
}

async function expectError(tt: Tap, promise: Promise<unknown>, status: number, code: string): Promise<void> {
  const err = await failure(promise);
  tt.equal(err.code, code, `code ${code}`);
  tt.equal(err.status, status, `status ${status}`);
}

const shardIds = (refs: { shardId: string }[]): string[] => refs.map((r) => r.shardId).sort();
const farFuture = (): Date => new Date(Date.now() + 60_000);

t.test('buckets: lifecycle and errors', async (t) => {
  const { client } = await startService(t);
  const made = await client.createBucket('beta', 'alice');
  t.match(made, { name: 'beta', owner: 'alice' });
  await client.createBucket('alpha', 'alice');
  t.same((await client.listBuckets()).map((b) => b.name), ['alpha', 'beta']);
  t.same(await client.getBucket('beta'), made);
  await expectError(t, client.createBucket('beta', 'alice'), 409, 'BucketAlreadyOwnedByYou');
  await expectError(t, client.createBucket('beta', 'bob'), 409, 'BucketAlreadyExists');
  await expectError(t, client.getBucket('nope'), 404, 'NoSuchBucket');
  await expectError(t, client.deleteBucket('nope'), 404, 'NoSuchBucket');
  await expectError(t, client.createBucket('bad\u0001name', 'alice'), 400, 'InvalidArgument');

  await client.commitObject({ record: record('beta', 'k') });
  await expectError(t, client.deleteBucket('beta'), 409, 'BucketNotEmpty');
  await client.deleteObject('beta', 'k');
  const upload = await client.createUpload({ bucket: 'beta', key: 'mp', contentType: 'text/plain', userMetadata: {}, headers: {} });
  await expectError(t, client.deleteBucket('beta'), 409, 'BucketNotEmpty');
  await client.abortUpload(upload.uploadId);
  await client.deleteBucket('beta');
  await expectError(t, client.getBucket('beta'), 404, 'NoSuchBucket');
  t.same((await client.listBuckets()).map((b) => b.name), ['alpha']);
});

t.test("buckets: a deleted bucket's name is held from other owners for a while, across a restart, then freed", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-ns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let clock = Date.parse('2030-01-01T00:00:00Z');
  const opts: StoreOptions = { now: () => clock, bucketNameHoldMs: 10_000 };
  const first = await startService(t, opts, dir);
  const { client } = first;
  await client.createBucket('held', 'alice');
  await client.deleteBucket('held');
  await expectError(t, client.createBucket('held', 'bob'), 409, 'OperationAborted');
  const again = await client.createBucket('held', 'alice');
  t.match(again, { name: 'held', owner: 'alice' }, 'its owner takes it back at once');
  await client.deleteBucket('held');
  clock += 9_999;
  await expectError(t, client.createBucket('held', 'bob'), 409, 'OperationAborted');
  await first.stop();

  const second = await startService(t, opts, dir);
  await expectError(t, second.client.createBucket('held', 'bob'), 409, 'OperationAborted');
  t.equal(await second.store.dropExpiredBucketHolds(), 0, 'a hold still running is kept');
  clock += 1;
  t.match(await second.client.createBucket('held', 'bob'), { name: 'held', owner: 'bob' }, 'another owner takes it once the hold has run out');
  t.equal(await second.store.dropExpiredBucketHolds(), 0, 'creating the bucket released its hold');

  await second.client.createBucket('gone', 'carol');
  await second.client.deleteBucket('gone');
  clock += 10_000;
  await second.client.createBucket('other', 'erin');
  await second.client.deleteBucket('other');
  t.equal(await second.store.dropExpiredBucketHolds(), 0, "a delete a hold period after the last sweep dropped the run-out holds (gone's)");
  await expectError(t, second.client.createBucket('other', 'bob'), 409, 'OperationAborted');
  clock += 10_000;
  await second.stop();
  const third = await startService(t, opts, dir);
  t.equal(await third.store.dropExpiredBucketHolds(), 0, 'a hold that ran out while the namespace was down is dropped at open');
  t.match(await third.client.createBucket('other', 'dave'), { owner: 'dave' });
  t.match(await third.client.createBucket('gone', 'dave'), { owner: 'dave' });
});

t.test('users: each gets a unique id that a user made again under the name does not get back', async (t) => {
  const { client } = await startService(t);
  const first = await client.createUser('erin');
  t.match(first.uniqueId, /^AIDA[A-Z2-7]{17}$/, "AWS's shape of a unique user id");
  t.same(await client.getUser('erin'), first, 'read back as made');
  await client.deleteUser('erin');
  const second = await client.createUser('erin');
  t.not(second.uniqueId, first.uniqueId);
});

t.test('buckets: a policy is kept with the pins of the users it names; removing it removes them', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('pinned', 'alice');
  const text = '{"Statement":[]}';
  const set = await client.setBucketPolicy('pinned', text, { bob: 'AIDABOB00000000000000' });
  t.match(set, { policy: text, policyPrincipals: { bob: 'AIDABOB00000000000000' } });
  t.same((await client.getBucket('pinned')).policyPrincipals, { bob: 'AIDABOB00000000000000' }, 'read back');
  const unpinned = await client.setBucketPolicy('pinned', text);
  t.equal(unpinned.policyPrincipals, undefined, 'a policy put without pins drops the old ones');
  await client.setBucketPolicy('pinned', text, { bob: 'AIDABOB00000000000000' });
  const removed = await client.setBucketPolicy('pinned', null);
  t.same([removed.policy, removed.policyPrincipals], [undefined, undefined], 'no policy, no pins');
  await expectError(t, client.setBucketPolicy('pinned', text, { 'not a user id': 'x' }), 400, 'InvalidArgument');
  await expectError(t, client.setBucketPolicy('pinned', text, { bob: 'x'.repeat(65) }), 400, 'InvalidArgument');
  await expectError(t, client.setBucketPolicy('pinned', text, { bob: 7 } as unknown as Record<string, string>), 400, 'InvalidArgument');
  t.equal((await client.getBucket('pinned')).policy, undefined, 'a refused put changed nothing');
  const odd = JSON.parse('{"__proto__":"AIDAPROTO000000000000"}') as Record<string, string>;
  const kept = await client.setBucketPolicy('pinned', text, odd);
  t.ok(Object.hasOwn(kept.policyPrincipals!, '__proto__'), 'a user called "__proto__" keeps their pin');
  t.equal(kept.policyPrincipals!['__proto__'], 'AIDAPROTO000000000000');
});

t.test('objects: user metadata named like Object\'s own properties is kept', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('meta', 'o');
  const odd = JSON.parse('{"__proto__":"kept","constructor":"too"}') as Record<string, string>;
  await client.commitObject({ record: record('meta', 'k', { userMetadata: odd }) });
  t.same(Object.entries((await client.getObject('meta', 'k')).userMetadata), [['__proto__', 'kept'], ['constructor', 'too']]);
});

t.test('objects: commit, overwrite, delete keep the reverse index and GC queue right', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const first = record('b', 'photos/cat.jpg');
  const committed = await client.commitObject({ record: first });
  t.same(committed, { record: first, replaced: null });
  t.same(await client.getObject('b', 'photos/cat.jpg'), first);
  const firstShards = shardIds(first.segments.flatMap((s) => s.placements));
  const onAll = async (): Promise<string[]> =>
    shardIds((await Promise.all(['n1', 'n2', 'n3'].map((n) => client.shardsOnNode(n)))).flatMap((p) => p.refs));
  t.same(await onAll(), firstShards, 'every placed shard is in the reverse index');
  const ref = (await client.shardsOnNode('n1')).refs[0];
  t.match(ref, { nodeId: 'n1', bucket: 'b', key: 'photos/cat.jpg', versionId: first.versionId });
  t.equal(ref.upload, undefined);
  t.same(await client.garbage(farFuture()), [], 'nothing queued yet');

  const second = record('b', 'photos/cat.jpg');
  const over = await client.commitObject({ record: second });
  t.same(over.replaced, first, 'overwrite reports the replaced record');
  t.same(await onAll(), shardIds(second.segments.flatMap((s) => s.placements)), 'old shards left the reverse index');
  const queued = await client.garbage(farFuture());
  t.same(shardIds(queued), firstShards, 'old shards are queued for GC');
  t.same(await client.garbage(new Date(Date.now() - 60_000)), [], 'nothing queued before the overwrite');

  // A repair-style commit: same version, one shard moved to n4. Only the moved-away shard is garbage.
  const repaired = structuredClone(second);
  const moved = repaired.segments[0].placements[0];
  const oldNode = moved.nodeId;
  moved.nodeId = 'n4';
  await client.commitObject({ record: repaired, condition: { ifVersionId: second.versionId } });
  const afterRepair = await client.garbage(farFuture());
  t.equal(afterRepair.length, queued.length + 1, 'one more GC entry');
  t.ok(afterRepair.some((g) => g.shardId === moved.shardId && g.nodeId === oldNode));
  t.same((await client.shardsOnNode('n4')).refs.map((r) => r.shardId), [moved.shardId]);

  t.equal(await client.ackGarbage(queued.map((g) => g.id)), queued.length);
  t.equal((await client.garbage(farFuture())).length, 1, 'acknowledged entries are gone');

  // Moving the shard back to its old node makes the queued (oldNode, shard) entry live again:
  // the queue must not hand it out for deletion, and the n4 copy becomes the garbage.
  const back = structuredClone(repaired);
  back.segments[0].placements[0].nodeId = oldNode;
  await client.commitObject({ record: back });
  const afterMoveBack = await client.garbage(farFuture());
  t.same(afterMoveBack.map((g) => [g.nodeId, g.shardId]), [['n4', moved.shardId]], 'a re-referenced shard is never offered to GC');
  await client.ackGarbage(afterMoveBack.map((g) => g.id));
  await client.commitObject({ record: repaired });
  t.equal((await client.garbage(farFuture())).length, 1);

  const del = await client.deleteObject('b', 'photos/cat.jpg');
  t.same(del.deleted, repaired);
  t.same(await onAll(), [], 'reverse index empty after delete');
  t.same((await client.shardsOnNode('n4')).refs, []);
  t.equal((await client.garbage(farFuture())).length, 1 + repaired.segments.length * 3);
  t.same(await client.deleteObject('b', 'photos/cat.jpg'), { deleted: null }, 'deleting a missing key is not an error');
  await expectError(t, client.getObject('b', 'photos/cat.jpg'), 404, 'NoSuchKey');
  t.equal(await client.getObjectOrNull('b', 'photos/cat.jpg'), null);
  await expectError(t, client.getObjectOrNull('nobucket', 'x'), 404, 'NoSuchBucket');
  await expectError(t, client.commitObject({ record: record('nobucket', 'x') }), 404, 'NoSuchBucket');

  // Keys that are awkward in URLs round-trip, and a null placement (degraded write) is allowed.
  for (const key of ['.', '..', 'a b+c%20d', '//lead', 'ünï/😀', 'q?x=1#f', '../up', 'k'.repeat(1024)]) {
    const r = record('b', key, {}, ['n1', null, 'n2']);
    await client.commitObject({ record: r });
    t.same(await client.getObject('b', key), r, `round trip ${JSON.stringify(key.slice(0, 20))}`);
  }
  t.ok((await client.garbage(farFuture())).length > 0);
});

t.test('objects: tags are replaced in place; the version, shards and inline bytes stay, nothing goes to GC', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('tags', 'o');
  const tags = [{ key: 'team', value: 'blue' }, { key: '1', value: '' }, { key: '__proto__', value: 'x' }];
  const tagged = record('tags', 'a', { tags });
  await client.commitObject({ record: tagged });
  t.same((await client.getObject('tags', 'a')).tags, tags, 'a commit keeps tags in the order given');

  const now = [{ key: 'team', value: 'red' }];
  t.same(await client.setObjectTags('tags', 'a', { tags: now, condition: { ifVersionId: tagged.versionId } }), { versionId: tagged.versionId });
  const after = await client.getObject('tags', 'a');
  t.same(after, { ...tagged, tags: now }, 'only the tags changed');
  t.same(await client.garbage(farFuture()), [], 'no shard was queued for GC');
  t.same(shardIds((await client.shardsOnNode('n1')).refs), shardIds(tagged.segments.flatMap((s) => s.placements).filter((p) => p.nodeId === 'n1')));

  await client.setObjectTags('tags', 'a', { tags: [] });
  t.equal((await client.getObject('tags', 'a')).tags, undefined, '[] removes the tags');

  const bytes = Buffer.from('small object');
  const inline = record('tags', '.', { segments: [], size: bytes.length, inline: { crc32c: crc32c(bytes) >>> 0, data: bytes.toString('base64') } });
  await client.commitObject({ record: inline });
  await client.setObjectTags('tags', '.', { tags: now });
  const read = await client.getObject('tags', '.');
  t.same(read.tags, now, 'a key that is not a path segment takes the query form');
  t.same(read.inline?.bytes, bytes, "an inline object's bytes stay with its version");

  await expectError(t, client.setObjectTags('tags', 'a', { tags: now, condition: { ifVersionId: 'v-other' } }), 412, 'PreconditionFailed');
  await expectError(t, client.setObjectTags('tags', 'missing', { tags: now }), 404, 'NoSuchKey');
  await expectError(t, client.setObjectTags('nobucket', 'a', { tags: now }), 404, 'NoSuchBucket');
  const refused: unknown[] = [
    Array.from({ length: 11 }, (_, i) => ({ key: `k${i}`, value: '' })),
    [{ key: 'k', value: '1' }, { key: 'k', value: '2' }],
    [{ key: '', value: 'v' }],
    [{ key: 'k'.repeat(129), value: '' }],
    [{ key: 'k', value: 'v'.repeat(257) }],
    [{ key: 'k' }],
    'k=v',
  ];
  for (const bad of refused) {
    await expectError(t, client.setObjectTags('tags', 'a', { tags: bad as [] }), 400, 'InvalidArgument');
    await expectError(t, client.commitObject({ record: { ...record('tags', 'b'), tags: bad as [] } }), 400, 'InvalidArgument');
  }
  await expectError(t, client.setObjectTags('tags', 'a', { tags: now, condition: { ifNoneMatch: true } }), 400, 'InvalidArgument');
  t.equal((await client.getObject('tags', 'a')).tags, undefined, 'nothing refused was stored');
  await expectError(t, client.getObject('tags', 'b'), 404, 'NoSuchKey');
});

t.test('objects: malformed records are refused and never stored', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const good = record('b', 'k');
  const bad: [string, unknown][] = [
    ['size mismatch', { ...good, size: good.size + 1 }],
    ['too few placements', { ...good, segments: [{ size: good.size, placements: good.segments[0].placements.slice(1) }] }],
    ['missing etag', { ...good, etag: undefined }],
    ['bad layout', { ...good, layout: { k: 0, m: 1, blockSize: 8 } }],
    ['bad date', { ...good, lastModified: 'yesterday' }],
    ['duplicate shard id', { ...good, segments: [good.segments[0], good.segments[0]], size: 20 }],
    ['key too long', { ...good, key: 'k'.repeat(1025) }],
    ['metadata not strings', { ...good, userMetadata: { a: 1 } }],
    ['negative size', { ...good, size: -1 }],
    ['parts not covering segments', { ...good, parts: [{ partNumber: 1, size: good.size, etag: '"x"', segmentCount: 1 }] }],
  ];
  for (const [why, rec] of bad) {
    const r = rec as ObjectRecord;
    await expectError(t, client.commitObject({ record: r }), 400, 'InvalidArgument');
    t.comment(`refused: ${why}`);
  }
  await expectError(t, client.commitObject({ record: good, condition: { ifNoneMatch: 'yes' as unknown as boolean } }), 400, 'InvalidArgument');
  await expectError(t, client.getObject('b', 'k'), 404, 'NoSuchKey');
  t.same((await client.listObjects('b')).entries, [], 'nothing was stored');
  const malformed = await rawRequest(`${client.baseUrl}/objects/b/k`, { method: 'PUT', body: '{"record": ' });
  t.equal(malformed.statusCode, 400);
  t.equal(((await malformed.body.json()) as { code: string }).code, 'InvalidArgument', 'unparsable JSON');
  // The URL names a different key than the record.
  const res = await rawRequest(`${client.baseUrl}/objects/b/other`, {
    method: 'PUT',
    body: JSON.stringify({ record: good }),
  });
  t.equal(res.statusCode, 400);
  t.equal(((await res.body.json()) as { code: string }).code, 'InvalidArgument');
});

t.test('commits in batches: many at once go in few requests, each answered on its own', async (t) => {
  const { client, url } = await startService(t);
  await client.createBucket('b', 'o');
  const before = { ...client.commits.stats };
  const records = Array.from({ length: 120 }, (_, i) => record('b', `batch/${i}`));
  const taken = record('b', 'taken');
  await client.commitObject({ record: taken });
  const answers = await Promise.allSettled([
    ...records.map((r) => client.commitObject({ record: r })),
    client.commitObject({ record: record('b', 'taken'), condition: { ifNoneMatch: true } }),
    client.commitObject({ record: record('nowhere', 'k') }),
  ]);
  const requests = client.commits.stats.requests - before.requests;
  t.equal(client.commits.stats.items - before.items, 123);
  t.ok(requests < 40, `123 commits went in ${requests} requests`);
  t.ok(answers.slice(0, 120).every((a) => a.status === 'fulfilled'), 'every good commit is acknowledged');
  const refused = answers.slice(120).map((a) => (a.status === 'rejected' && a.reason instanceof NamespaceError ? `${a.reason.status} ${a.reason.code}` : 'accepted'));
  t.same(refused, ['412 PreconditionFailed', '404 NoSuchBucket'], 'the failures are their own, with status and code');
  for (const r of records) t.equal((await client.getObject('b', r.key)).versionId, r.versionId);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /cairn_namespace_commit_batches_total [1-9]/, 'the batches are counted');

  // The route itself (JSON lines in and out): a bad commit fails alone; a bad batch fails whole.
  const post = async (body: string): Promise<{ status: number; type: string; text: string }> => {
    const res = await rawRequest(`${url}/batch/commits`, { method: 'POST', headers: { 'content-type': JSON_LINES_TYPE }, body });
    return { status: res.statusCode, type: String(res.headers['content-type']), text: await res.body.text() };
  };
  // The route hands items to the store unchecked and the store validates them: inline bytes too.
  const inline = (key: string, data: string, crc32c: number): unknown => ({ record: { ...record('b', key), size: 3, segments: [], inline: { crc32c, data } } });
  const mixed = await post(
    encodeJsonLines([{ record: record('b', 'raw-1') }, { record: { ...record('b', 'raw-2'), size: -1 } }, 'not a commit', inline('raw-3', 'ab!c', 0), inline('raw-4', 'YWJj', 1),
      // Texts Node's lenient decoder would turn into the right 3 bytes, with the right CRC32C: not canonical base64, so refused.
      inline('raw-5', 'YWJj==', crc32c('abc') >>> 0), inline('raw-6', 'YW Jj', crc32c('abc') >>> 0)]).toString(),
  );
  t.same([mixed.status, mixed.type], [200, JSON_LINES_TYPE]);
  t.equal(mixed.text.split('\n').length, 8, 'a line per result, each ended by a newline');
  const results = decodeJsonLines(Buffer.from(mixed.text)) as { ok?: unknown; error?: { status: number; code: string; message: string } }[];
  t.ok(results[0]!.ok, 'the good one is committed');
  t.same([results[1]!.error?.code, results[1]!.error?.status, results[2]!.error?.code], ['InvalidArgument', 400, 'InvalidArgument'], 'bad ones fail alone');
  t.match(results[3]!.error, { code: 'InvalidArgument', message: /inline.data must be base64/ }, 'inline bytes that are not base64');
  t.match(results[4]!.error, { code: 'InvalidArgument', message: /does not match its CRC32C/ }, 'inline bytes that fail their CRC32C');
  for (const i of [5, 6]) t.match(results[i]!.error, { code: 'InvalidArgument', message: /inline.data must be base64/ }, `non-canonical base64 (line ${i + 1})`);
  await expectError(t, client.getObject('b', 'raw-3'), 404, 'NoSuchKey');
  for (const key of ['raw-4', 'raw-5', 'raw-6']) await expectError(t, client.getObject('b', key), 404, 'NoSuchKey');
  t.equal((await client.getObject('b', 'raw-1')).key, 'raw-1');
  const good = JSON.stringify({ record: record('b', 'many-0') });
  for (const [why, body, message] of [
    ['empty', '', /must not be empty/],
    ['too many', encodeJsonLines(Array.from({ length: 65 }, (_, i) => ({ record: record('b', `many-${i}`) }))).toString(), /more than 64/],
    ['a line not JSON', `${good}\n{"record": \n`, /line 2 is not a JSON text/],
    ['an empty line', `${good}\n\n${good}\n`, /line 2 is not a JSON text/],
  ] as const) {
    const bad = await post(body);
    const error = JSON.parse(bad.text) as { code: string; message: string };
    t.match([bad.status, error.code, error.message], [400, 'InvalidArgument', message], why);
  }
  const oneDocument = await post(JSON.stringify({ commits: [{ record: record('b', 'many-0') }] }));
  const [result] = decodeJsonLines(Buffer.from(oneDocument.text)) as { error?: { code: string; message: string } }[];
  t.same([oneDocument.status, result!.error?.code, result!.error?.message], [200, 'InvalidArgument', 'record must be a JSON object'], 'one JSON document is one item, and not a commit');
  await expectError(t, client.getObject('b', 'many-0'), 404, 'NoSuchKey');
});

t.test('inline bytes travel raw in blob lines, as base64 in JSON, and are checked either way', async (t) => {
  const { client, url } = await startService(t);
  await client.createBucket('b', 'o');
  const abc = Buffer.from('abc');
  const inlineRecord = (key: string, crc = crc32c(abc) >>> 0): ObjectRecord => ({ ...record('b', key), size: 3, segments: [], inline: { crc32c: crc } });
  const post = async (path: string, type: string, body: Buffer): Promise<{ status: number; type: string; bytes: Buffer }> => {
    const res = await rawRequest(`${url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
    return { status: res.statusCode, type: String(res.headers['content-type']), bytes: Buffer.from(await res.body.arrayBuffer()) };
  };
  type Result = { ok?: ObjectRecord; error?: { code: string; message: string } };

  // Commits: the blob is the record's inline bytes, checked like base64 ones.
  const commits = await post('/batch/commits', BLOB_LINES_TYPE, encodeBlobLines([
    { value: { record: inlineRecord('blob-1') }, blob: abc },
    { value: { record: record('b', 'blob-2') }, blob: abc },
    { value: { record: inlineRecord('blob-3', 1) }, blob: abc },
    { value: { record: { ...inlineRecord('blob-4'), inline: { crc32c: crc32c(abc) >>> 0, data: 'YWJj' } } }, blob: abc },
    { value: { record: inlineRecord('blob-5') } },
  ]));
  t.same([commits.status, commits.type], [200, BLOB_LINES_TYPE], 'a blob lines body is answered in blob lines');
  const committed = decodeBlobLines(commits.bytes).map((item) => item.value as Result);
  t.ok(committed[0]!.ok, 'a record with its bytes as a blob is committed');
  t.match(committed[1]!.error, { code: 'InvalidArgument', message: /no inline field/ }, 'a blob for a record that is not inline');
  t.match(committed[2]!.error, { code: 'InvalidArgument', message: /does not match its CRC32C/ }, 'a blob that fails its CRC32C');
  t.match(committed[3]!.error, { code: 'InvalidArgument', message: /both raw and as inline.data/ }, 'bytes twice');
  t.match(committed[4]!.error, { code: 'InvalidArgument', message: /inline.data must be base64/ }, 'no bytes at all');
  for (const key of ['blob-2', 'blob-3', 'blob-4', 'blob-5']) await expectError(t, client.getObject('b', key), 404, 'NoSuchKey');

  // Reads: raw beside the line in blob lines, base64 inside JSON lines and the record's own route.
  const reads = await post('/batch/records', BLOB_LINES_TYPE, encodeBlobLines([{ value: { bucket: 'b', key: 'blob-1' } }, { value: { bucket: 'b', key: 'gone' } }]));
  const [found, missing] = decodeBlobLines(reads.bytes);
  t.same(found!.blob && Buffer.from(found.blob), abc, 'the bytes come raw');
  t.same((found!.value as Result).ok!.inline, { crc32c: crc32c(abc) >>> 0 }, 'and not inside the line');
  t.equal(missing!.blob, undefined);
  t.match((missing!.value as Result).error, { code: 'NoSuchKey' });
  const asLines = await post('/batch/records', JSON_LINES_TYPE, encodeJsonLines([{ bucket: 'b', key: 'blob-1' }]));
  t.same((decodeJsonLines(asLines.bytes)[0] as Result).ok!.inline, { crc32c: crc32c(abc) >>> 0, data: 'YWJj' }, 'JSON lines carry them as base64');
  const own = (await (await rawRequest(`${url}/objects/b/blob-1`, { method: 'GET' })).body.json()) as ObjectRecord;
  t.same(own.inline, { crc32c: crc32c(abc) >>> 0, data: 'YWJj' }, 'so does the record route');
  const viaClient = await client.getObject('b', 'blob-1');
  t.same(viaClient.inline?.bytes, abc, 'the client hands records over with their bytes raw');
  await client.commitObject({ record: { ...inlineRecord('via-client'), inline: { crc32c: crc32c(abc) >>> 0, bytes: abc } } });
  t.same((await client.getObject('b', 'via-client')).inline?.bytes, abc, 'and commits them raw');
  const page = Buffer.alloc(4096, 9);
  await client.commitObject({ record: { ...record('b', 'page'), size: page.length, segments: [], inline: { crc32c: crc32c(page) >>> 0, bytes: page } } });
  const pageBytes = (await client.getObject('b', 'page')).inline!.bytes!;
  t.same(pageBytes, page);
  t.equal(pageBytes.buffer.byteLength, page.length, 'a copy of its own, not a view pinning the whole reply');
  const blobRead = await post('/batch/records', BLOB_LINES_TYPE, encodeBlobLines([{ value: { bucket: 'b', key: 'blob-1' }, blob: abc }]));
  t.match((decodeBlobLines(blobRead.bytes)[0]!.value as Result).error, { code: 'InvalidArgument', message: /objects\[0\] carries bytes, which \/batch\/records does not take/ });
  const placement = await post('/batch/placements', BLOB_LINES_TYPE, encodeBlobLines([{ value: { count: 6 }, blob: abc }]));
  t.match((decodeBlobLines(placement.bytes)[0]!.value as Result).error, { code: 'InvalidArgument', message: /carries bytes/ }, 'nor does a placement');

  // A body that is not blob lines fails whole.
  const good = `0 ${JSON.stringify({ record: record('b', 'x') })}\n`;
  for (const [why, body, message] of [
    ['no length', Buffer.from(JSON.stringify({ record: record('b', 'x') }) + '\n'), /item 1 has no blob length/],
    ['a blob past the end', Buffer.from(`${good}9 {}\nabc`), /item 2's blob runs past the end/],
    ['a line not JSON', Buffer.from(`${good}0 {"record": \n`), /item 2 is not a JSON text/],
  ] as const) {
    const bad = await post('/batch/commits', BLOB_LINES_TYPE, body);
    const error = JSON.parse(bad.bytes.toString()) as { code: string; message: string };
    t.match([bad.status, error.code, error.message], [400, 'InvalidArgument', message], why);
  }
});

t.test('reads in batches: many at once go in few requests, each answered on its own', async (t) => {
  const { client, url } = await startService(t);
  await client.createBucket('b', 'o');
  const records = Array.from({ length: 100 }, (_, i) => record('b', `read/${i}`));
  for (const r of records) await client.commitObject({ record: r });
  const before = { ...client.reads.stats };
  const answers = await Promise.allSettled([
    ...records.map((r) => client.getObject('b', r.key)),
    client.getObject('b', 'read/missing'),
    client.getObject('nowhere', 'k'),
  ]);
  const requests = client.reads.stats.requests - before.requests;
  t.ok(requests < 30, `102 reads went in ${requests} requests`);
  t.same(answers.slice(0, 100).map((a) => (a.status === 'fulfilled' ? a.value.versionId : 'failed')), records.map((r) => r.versionId), 'every record, in order');
  const refused = answers.slice(100).map((a) => (a.status === 'rejected' && a.reason instanceof NamespaceError ? `${a.reason.status} ${a.reason.code}` : 'found'));
  t.same(refused, ['404 NoSuchKey', '404 NoSuchBucket'], 'the failures are their own, with status and code');
  t.match(await (await fetch(`${url}/metrics`)).text(), /cairn_namespace_read_batches_total [1-9]/, 'the batches are counted');

  const post = async (body: Buffer | string): Promise<{ status: number; text: string }> => {
    const res = await rawRequest(`${url}/batch/records`, { method: 'POST', headers: { 'content-type': JSON_LINES_TYPE }, body });
    return { status: res.statusCode, text: await res.body.text() };
  };
  const mixed = await post(encodeJsonLines([{ bucket: 'b', key: 'read/1' }, { bucket: 'b' }, 7]));
  t.equal(mixed.status, 200);
  const results = decodeJsonLines(Buffer.from(mixed.text)) as { ok?: ObjectRecord; error?: { code: string } }[];
  t.same([results[0]!.ok?.versionId, results[1]!.error?.code, results[2]!.error?.code], [records[1]!.versionId, 'InvalidArgument', 'InvalidArgument'], 'bad ones fail alone');
  for (const [why, body] of [
    ['empty', ''],
    ['too many', encodeJsonLines(Array.from({ length: 65 }, () => ({ bucket: 'b', key: 'read/1' })))],
    ['not JSON lines', '{"bucket": "b", "key": "read/1"}\n{"bucket": '],
  ] as const) {
    const bad = await post(body);
    t.same([bad.status, (JSON.parse(bad.text) as { code: string }).code], [400, 'InvalidArgument'], why);
  }
});

t.test('reads with a segment selection carry only the segments that hold the bytes asked for', async (t) => {
  const { client, url } = await startService(t);
  await client.createBucket('b', 'o');
  const r = record('b', 'sel', { segments: segments('sel', [10, 0, 5, 7], ['n1', 'n2', 'n3']) });
  await client.commitObject({ record: r });
  const whole = await client.getObject('b', 'sel');
  t.equal(whole.segments.length, 4, 'no selection: every segment');
  t.equal(whole.segmentSlice, undefined);
  const alone = await client.getObject('b', 'sel', { start: 12, end: 16 });
  t.same([alone.segmentSlice, alone.segments.map((s) => s.size)], [{ first: 2, offset: 10 }, [5, 7]], 'a range: the segments holding it, from the third on');
  t.same([alone.size, alone.etag, alone.versionId], [r.size, r.etag, r.versionId], 'the rest of the record as it is');
  const many = await Promise.all([client.getObject('b', 'sel', { none: true }), client.getObject('b', 'sel', { suffix: 3 }), client.getObject('b', 'sel', { start: 9 }), client.getObject('b', 'sel')]);
  t.same(many.map((m) => [m.segmentSlice, m.segments.length]), [[{ first: 4, offset: 22 }, 0], [{ first: 3, offset: 15 }, 1], [{ first: 0, offset: 0 }, 4], [undefined, 4]], 'in a batch too, each its own');

  // A multipart record's parts come only whole, or when the selection asks for them.
  const parts = [
    { partNumber: 1, size: 10, etag: '"p1"', segmentCount: 2 },
    { partNumber: 2, size: 12, etag: '"p2"', segmentCount: 2 },
  ];
  await client.commitObject({ record: record('b', 'mp', { segments: segments('mp', [10, 0, 5, 7], ['n1', 'n2', 'n3']), parts }) });
  t.same((await client.getObject('b', 'mp')).parts, parts, 'no selection: the parts');
  const sliced = await Promise.all([client.getObject('b', 'mp', { start: 12, end: 16 }), client.getObject('b', 'mp', { none: true }), client.getObject('b', 'mp', { suffix: 3 })]);
  t.same(sliced.map((m) => m.parts), [undefined, undefined, undefined], 'a selection without parts: none (a ranged GET or HEAD has no use for them)');
  const asked = await Promise.all([client.getObject('b', 'mp', { none: true, parts: true }), client.getObject('b', 'mp', { start: 12, end: 16, parts: true })]);
  t.same(asked.map((m) => [m.parts, m.segments.length]), [[parts, 0], [parts, 2]], 'asked for: the parts, beside the selected segments');
  t.equal((await client.getObject('b', 'sel', { none: true, parts: true })).parts, undefined, 'a single-PUT object has none to give');

  const post = async (select: unknown): Promise<{ code?: string }> => {
    const res = await rawRequest(`${url}/batch/records`, { method: 'POST', headers: { 'content-type': JSON_LINES_TYPE }, body: encodeJsonLines([{ bucket: 'b', key: 'sel', select }]) });
    return (decodeJsonLines(Buffer.from(await res.body.arrayBuffer())) as { error?: { code: string } }[])[0]!.error ?? {};
  };
  for (const bad of [{ none: false }, { start: -1 }, { start: 5, end: 4 }, { suffix: 0 }, { start: 1, suffix: 2 }, { start: 1.5 }, 'all', { none: true, parts: false }, { parts: true }, { start: 1, parts: 'yes' }]) {
    t.equal((await post(bad)).code, 'InvalidArgument', `select ${JSON.stringify(bad)} is refused`);
  }
});

t.test('the record cache: large records are parsed once, never served stale, frozen, within their byte bound', async (t) => {
  const { store, client } = await startService(t, { recordCache: { minBytes: 1000, maxBytes: 64 * 1024 } });
  await store.createBucket('b', 'o');
  const big = (tag: string): ObjectRecord => record('b', 'big', { versionId: tag, segments: segments(tag, Array.from({ length: 40 }, () => 8), ['n1', 'n2', 'n3']) });
  await store.commitObject({ record: big('v-a') });
  await store.commitObject({ record: record('b', 'small') });
  const first = await store.getObject('b', 'big');
  const again = await store.getObject('b', 'big');
  t.equal(again, first, 'the second read is the same parsed record');
  t.equal(store.records.size, 1, 'only the large record is kept');
  await store.getObject('b', 'small');
  t.equal(store.records.size, 1);
  t.throws(() => {
    (again.segments[0]!.placements[0] as { nodeId: string | null }).nodeId = 'elsewhere';
  }, TypeError, 'a cached record cannot be changed by a reader');

  // Reads racing writes: once a commit is answered, every read started after it sees it.
  for (let i = 0; i < 60; i++) {
    const tag = `v-${i}`;
    const [, committed] = await Promise.all([store.getObject('b', 'big'), store.commitObject({ record: big(tag) }), store.getObject('b', 'big')]);
    t.equal(committed.record.versionId, tag);
    const after = await store.getObject('b', 'big');
    if (after.versionId !== tag) t.fail(`round ${i}: read ${after.versionId} after ${tag} was committed`);
  }
  t.pass('no stale read in 60 racing rounds');
  t.ok(store.records.stats.hits > 0, `${store.records.stats.hits} hits`);

  // Placements changed by repair are seen at once.
  const current = await store.getObject('b', 'big');
  const old = current.segments[3]!.placements[1]!;
  await store.replaceShards('b', 'big', { versionId: current.versionId, segment: 3, changes: [{ index: 1, from: old, to: { nodeId: 'n9', shardId: 'moved.3.1' } }] });
  t.same((await store.getObject('b', 'big')).segments[3]!.placements[1], { nodeId: 'n9', shardId: 'moved.3.1' }, 'a repair\'s new placement is read');
  await store.deleteObject('b', 'big');
  await t.rejects(store.getObject('b', 'big'), { code: 'NoSuchKey' }, 'a deleted record is gone from the cache too');

  for (let i = 0; i < 20; i++) await store.commitObject({ record: record('b', `many/${i}`, { segments: segments(`m${i}`, Array.from({ length: 40 }, () => 8), ['n1', 'n2', 'n3']) }) });
  for (let i = 0; i < 20; i++) await store.getObject('b', `many/${i}`);
  t.ok(store.records.heldBytes <= 64 * 1024, `held ${store.records.heldBytes} bytes of records, within the bound`);
  t.equal((await client.getObject('b', 'many/19', { start: 0, end: 7 })).segments.length, 1, 'a selection through the service reads a cached record too');
});

t.test('conditions: ifNoneMatch, ifVersionId, ifEtag and a commit race', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const v1 = record('b', 'k');
  await client.commitObject({ record: v1, condition: { ifNoneMatch: true } });
  await expectError(t, client.commitObject({ record: record('b', 'k'), condition: { ifNoneMatch: true } }), 412, 'PreconditionFailed');
  await expectError(t, client.commitObject({ record: record('b', 'k'), condition: { ifVersionId: 'other' } }), 412, 'PreconditionFailed');
  await expectError(t, client.commitObject({ record: record('b', 'k'), condition: { ifEtag: '"nope"' } }), 412, 'PreconditionFailed');
  await expectError(t, client.commitObject({ record: record('b', 'fresh'), condition: { ifVersionId: 'v' } }), 412, 'PreconditionFailed');
  const v2 = record('b', 'k');
  await client.commitObject({ record: v2, condition: { ifVersionId: v1.versionId, ifEtag: v1.etag } });
  t.equal((await client.getObject('b', 'k')).versionId, v2.versionId);
  await expectError(t, client.deleteObject('b', 'k', { ifVersionId: v1.versionId }), 412, 'PreconditionFailed');
  await expectError(t, client.deleteObject('b', 'k', { ifEtag: v1.etag }), 412, 'PreconditionFailed');
  t.equal((await client.getObject('b', 'k')).versionId, v2.versionId, 'a failed conditional delete deletes nothing');
  t.same((await client.deleteObject('b', 'k', { ifEtag: v2.etag })).deleted, v2);

  const N = 16;
  const contenders = Array.from({ length: N }, () => record('b', 'race'));
  const results = await Promise.allSettled(contenders.map((r) => client.commitObject({ record: r, condition: { ifNoneMatch: true } })));
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.equal(won.length, 1, 'exactly one commit wins');
  t.ok(lost.every((r) => r.reason instanceof NamespaceError && r.reason.code === 'PreconditionFailed'), 'all others fail the precondition');
  const winner = await client.getObject('b', 'race');
  const indexed = shardIds((await Promise.all(['n1', 'n2', 'n3'].map((n) => client.shardsOnNode(n)))).flatMap((p) => p.refs));
  t.same(indexed, shardIds(winner.segments.flatMap((s) => s.placements)), 'only the winner is in the reverse index');

  // A bucket delete racing commits: never both a deleted bucket and a committed object in it.
  for (let round = 0; round < 8; round++) {
    const name = `race-${round}`;
    await client.createBucket(name, 'o');
    const [commit, del] = await Promise.allSettled([client.commitObject({ record: record(name, 'x') }), client.deleteBucket(name)]);
    if (commit.status === 'fulfilled') {
      t.equal(del.status, 'rejected');
      t.equal((await client.getObject(name, 'x')).key, 'x');
    } else {
      t.equal(del.status, 'fulfilled');
      t.equal((commit.reason as NamespaceError).code, 'NoSuchBucket');
      await expectError(t, client.getBucket(name), 404, 'NoSuchBucket');
    }
  }
});

// ---- listing ----

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

type Item = { kind: 'key' | 'prefix'; value: string };

/** What S3 would list, computed the slow obvious way. */
function referenceItems(keys: string[], q: ListObjectsQuery): Item[] {
  const prefix = q.prefix ?? '';
  const items: Item[] = [];
  for (const key of [...keys].sort(byteOrder)) {
    if (!key.startsWith(prefix)) continue;
    if (q.startAfter !== undefined && byteOrder(key, q.startAfter) <= 0) continue;
    const at = q.delimiter ? key.indexOf(q.delimiter, prefix.length) : -1;
    if (at < 0) {
      items.push({ kind: 'key', value: key });
      continue;
    }
    const cp = key.slice(0, at + q.delimiter!.length);
    if (items.at(-1)?.value !== cp) items.push({ kind: 'prefix', value: cp });
  }
  return items;
}

function randomKey(random: () => number): string {
  const pieces = ['a', 'b', '/', '//', '+', ' ', 'é', '日', '😀', '%', 'x', '\uFFFD', '\uE000', '.', 'a/', 'b+'];
  const n = 1 + Math.floor(random() * 6);
  return Array.from({ length: n }, () => pieces[Math.floor(random() * pieces.length)]).join('');
}

/** Loads many keys through the store itself (no HTTP); unplaced shards keep the batches small. */
async function bulkCommit(store: NamespaceStore, bucket: string, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 200) {
    const slice = keys.slice(i, i + 200);
    await Promise.all(slice.map((key) => store.commitObject({ record: record(bucket, key, { segments: segments(`s${i}-${key}`, [1], [null]) }) })));
  }
}

t.test('listing matches a brute-force reference across pages', async (t) => {
  const { client, store } = await startService(t, { sync: false });
  await client.createBucket('b', 'o');
  const random = seededRandom(42);
  const keys = [...new Set(Array.from({ length: 400 }, () => randomKey(random)))];
  await bulkCommit(store, 'b', keys);

  const prefixes = ['', 'a', 'a/', '😀', 'b+', ...Array.from({ length: 4 }, () => randomKey(random).slice(0, 2))];
  const delimiters = [undefined, '/', '//', '+', 'é'];
  let queries = 0;
  for (const prefix of prefixes) {
    for (const delimiter of delimiters) {
      const maxKeys = [1, 7, 1000][queries % 3];
      const startAfter = queries % 4 === 0 ? randomKey(random) : undefined;
      const q: ListObjectsQuery = { prefix, delimiter, startAfter, maxKeys };
      const expected = referenceItems(keys, q);
      const pages: Item[][] = [];
      let token: string | undefined;
      for (let page = 0; page < 500; page++) {
        const res = await client.listObjects('b', { ...q, continuation: token });
        const got: Item[] = [...res.entries.map((e): Item => ({ kind: 'key', value: e.key })), ...res.commonPrefixes.map((p): Item => ({ kind: 'prefix', value: p }))];
        got.sort((x, y) => byteOrder(x.value, y.value));
        pages.push(got);
        const want = expected.slice(page * maxKeys, (page + 1) * maxKeys);
        if (JSON.stringify(got) !== JSON.stringify(want) || res.isTruncated !== expected.length > (page + 1) * maxKeys) {
          t.fail(`page ${page} of ${JSON.stringify(q)} differs`, { got, want, isTruncated: res.isTruncated });
          break;
        }
        if (!res.isTruncated) {
          t.equal(res.nextContinuation, undefined);
          break;
        }
        t.equal(res.lastReturned, want.at(-1)?.value);
        token = res.nextContinuation;
      }
      t.same(pages.flat(), expected, `all pages of ${JSON.stringify(q)}`);
      queries++;
    }
  }

  // The details S3 clients rely on.
  const empty = await client.listObjects('b', { maxKeys: 0 });
  t.same(empty, { entries: [], commonPrefixes: [], isTruncated: false }, 'max-keys=0');
  const all = referenceItems(keys, {});
  const viaToken = await client.listObjects('b', { maxKeys: 2 });
  const tokenWins = await client.listObjects('b', { continuation: viaToken.nextContinuation, startAfter: all.at(-2)!.value, maxKeys: 1 });
  t.equal(tokenWins.entries[0].key, all[2].value, 'continuation wins over start-after');
  await expectError(t, client.listObjects('b', { continuation: 'garbage!' }), 400, 'InvalidArgument');
  await expectError(t, client.listObjects('b', { continuation: Buffer.from([9, 1]).toString('base64url') }), 400, 'InvalidArgument');
  await expectError(t, client.listObjects('nope'), 404, 'NoSuchBucket');
  const entry = (await client.listObjects('b', { maxKeys: 1 })).entries[0];
  const rec = await client.getObject('b', entry.key);
  t.same(entry, { key: rec.key, size: rec.size, etag: rec.etag, lastModified: rec.lastModified });
  t.ok(byteOrder('\uFFFD', '😀') < 0 && '😀' < '\uFFFD', 'the key set exercises UTF-8 vs UTF-16 order');
});

t.test('a delimiter listing seeks past a rolled-up prefix instead of walking it', async (t) => {
  const { client, store } = await startService(t, { sync: false });
  await client.createBucket('b', 'o');
  const big = Array.from({ length: 20_000 }, (_, i) => `big/${String(i).padStart(5, '0')}`);
  await bulkCommit(store, 'b', [...big, 'a', 'c/1', 'c/2', 'z']);

  let steps = store.stats.listSteps;
  let started = performance.now();
  const res = await client.listObjects('b', { delimiter: '/' });
  const rolledMs = performance.now() - started;
  t.same(res.entries.map((e) => e.key), ['a', 'z']);
  t.same(res.commonPrefixes, ['big/', 'c/']);
  t.ok(store.stats.listSteps - steps <= 6, `read ${store.stats.listSteps - steps} entries for 20,004 keys`);

  // One item per page: a page that ends on "big/" resumes after all 20,000 keys under it.
  steps = store.stats.listSteps;
  const seen: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.listObjects('b', { delimiter: '/', maxKeys: 1, continuation: token });
    seen.push(...page.entries.map((e) => e.key), ...page.commonPrefixes);
    token = page.nextContinuation;
  } while (token);
  t.same(seen, ['a', 'big/', 'c/', 'z']);
  t.ok(store.stats.listSteps - steps <= 12, `paged listing read ${store.stats.listSteps - steps} entries`);

  steps = store.stats.listSteps;
  started = performance.now();
  let walked = 0;
  token = undefined;
  do {
    const page = await client.listObjects('b', { prefix: 'big/', continuation: token });
    walked += page.entries.length;
    token = page.nextContinuation;
  } while (token);
  const fullMs = performance.now() - started;
  t.equal(walked, 20_000);
  t.ok(store.stats.listSteps - steps >= 20_000, 'a listing without delimiter reads every key');
  t.ok(rolledMs * 5 < fullMs, `rolled-up listing ${rolledMs.toFixed(1)} ms vs full walk ${fullMs.toFixed(1)} ms`);
});

// ---- nodes and placement ----

const beat = (free: number, url = 'http://127.0.0.1:1', zone?: string) => ({
  url,
  capacityBytes: 1000,
  usedBytes: 1000 - free,
  freeBytes: free,
  ...(zone ? { zone } : {}),
});

t.test('nodes: heartbeats and up → suspect → down transitions', async (t) => {
  // Windows wide enough that a loaded machine's stalls (hundreds of ms) cannot flip an expected state.
  const { client } = await startService(t, { suspectAfterMs: 200, downAfterMs: 2000 });
  const first = await client.heartbeat('node-1', beat(500, 'http://127.0.0.1:1001'));
  t.match(first, { id: 'node-1', state: 'up', url: 'http://127.0.0.1:1001', freeBytes: 500 });
  await client.heartbeat('node-2', beat(500));
  t.same((await client.listNodes()).map((n) => [n.id, n.state]), [['node-1', 'up'], ['node-2', 'up']]);
  await sleep(1000);
  await client.heartbeat('node-2', beat(400));
  t.same((await client.listNodes()).map((n) => [n.id, n.state]), [['node-1', 'suspect'], ['node-2', 'up']]);
  t.same((await client.place({ count: 3 })).nodes.map((n) => n.id), ['node-2'], 'only up nodes are placed on');
  await sleep(1100);
  t.equal((await client.getNode('node-1')).state, 'down');
  const health = (await (await fetch(`${client.baseUrl}/health`)).json()) as { nodes: Record<string, number> };
  t.same(health.nodes, { up: 0, suspect: 1, down: 1 });
  const back = await client.heartbeat('node-1', beat(500, 'http://127.0.0.1:2002'));
  t.match(back, { state: 'up', url: 'http://127.0.0.1:2002', firstSeen: first.firstSeen }, 'a restarted node keeps its identity, new url');
  await expectError(t, client.getNode('node-9'), 404, 'NoSuchNode');
  await expectError(t, client.heartbeat('node-1', { ...beat(1), url: 'ftp://x' }), 400, 'InvalidArgument');
  await expectError(t, client.heartbeat('node-1', { ...beat(1), freeBytes: -5 }), 400, 'InvalidArgument');
});

t.test('placement through the service: distinct, live, excluding', async (t) => {
  const { client, url } = await startService(t);
  for (let i = 1; i <= 6; i++) await client.heartbeat(`n${i}`, beat(100 * i, `http://127.0.0.1:${3000 + i}`));
  for (let round = 0; round < 20; round++) {
    const { nodes } = await client.place({ count: 4, exclude: ['n1', 'n6'] });
    t.equal(new Set(nodes.map((n) => n.id)).size, 4);
    t.ok(nodes.every((n) => n.id !== 'n1' && n.id !== 'n6'));
    t.ok(nodes.every((n) => n.url === `http://127.0.0.1:${3000 + Number(n.id.slice(1))}`));
  }
  t.equal((await client.place({ count: 10 })).nodes.length, 6, 'fewer than asked when fewer are up');
  await expectError(t, client.place({ count: 0 }), 400, 'InvalidArgument');

  // Many at once go in batches (POST /batch/placements), each answered on its own.
  const before = { ...client.placements.stats };
  const many = await Promise.allSettled([...Array.from({ length: 60 }, () => client.place({ count: 4, exclude: ['n2'] })), client.place({ count: -1 })]);
  const requests = client.placements.stats.requests - before.requests;
  t.ok(requests < 20, `61 placements went in ${requests} requests`);
  t.ok(many.slice(0, 60).every((p) => p.status === 'fulfilled' && new Set(p.value.nodes.map((n) => n.id)).size === 4 && p.value.nodes.every((n) => n.id !== 'n2')), 'every batched placement is distinct and excludes');
  const bad = many[60]!;
  t.same(bad.status === 'rejected' && bad.reason instanceof NamespaceError ? [bad.reason.status, bad.reason.code] : [], [400, 'InvalidArgument'], 'a bad one fails alone');
  t.match(await (await fetch(`${url}/metrics`)).text(), /cairn_namespace_placement_batches_total [1-9]/, 'the batches are counted');
});

t.test('choosePlacement (pure)', async (t) => {
  const nodes = (spec: [string, number, string?][]): Candidate[] => spec.map(([id, freeBytes, zone]) => ({ id, url: `http://${id}`, freeBytes, zone }));
  const five = nodes([['a', 10], ['b', 20], ['c', 70], ['d', 5], ['e', 5]]);
  const random = seededRandom(7);
  for (let i = 0; i < 200; i++) {
    const picked = choosePlacement(five, 3, random).map((n) => n.id);
    if (new Set(picked).size !== 3) t.fail('picks are not distinct');
  }
  t.equal(choosePlacement(five, 9, random).length, 5, 'at most all candidates');
  t.same(choosePlacement([], 3, random), []);
  t.same(
    choosePlacement(five, 3, seededRandom(1)).map((n) => n.id),
    choosePlacement(five, 3, seededRandom(1)).map((n) => n.id),
    'deterministic for a seed',
  );

  const counts = new Map<string, number>();
  const trials = 20_000;
  const three = nodes([['x', 1], ['y', 2], ['z', 7]]);
  for (let i = 0; i < trials; i++) {
    const id = choosePlacement(three, 1, random)[0].id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  for (const [id, weight] of [['x', 0.1], ['y', 0.2], ['z', 0.7]] as const) {
    t.ok(Math.abs((counts.get(id) ?? 0) / trials - weight) < 0.02, `${id} chosen ~${weight * 100}% of the time`);
  }

  const withFull = nodes([['full1', 0], ['full2', 0], ['ok1', 50], ['ok2', 50]]);
  for (let i = 0; i < 50; i++) {
    const picked = choosePlacement(withFull, 2, random).map((n) => n.id).sort();
    if (picked.join() !== 'ok1,ok2') t.fail(`a full node was picked while others had space: ${picked}`);
  }
  t.equal(choosePlacement(withFull, 4, random).length, 4, 'full nodes only when nothing else is left');
  t.equal(choosePlacement(nodes([['f', 0], ['g', 0]]), 1, random).length, 1);

  const zoned = nodes([['a1', 1000, 'A'], ['a2', 1000, 'A'], ['a3', 1000, 'A'], ['a4', 1000, 'A'], ['b1', 10, 'B'], ['c1', 10, 'C']]);
  for (let i = 0; i < 100; i++) {
    const zones = choosePlacement(zoned, 3, random).map((n) => n.zone).sort();
    if (zones.join() !== 'A,B,C') t.fail(`zones not spread: ${zones}`);
    const five = choosePlacement(zoned, 5, random).map((n) => n.zone);
    if (five.filter((z) => z === 'A').length !== 3) t.fail('zones B and C should each be used once');
  }
  t.pass('zones are spread');
});

// ---- multipart ----

function part(uploadId: string, partNumber: number, tag: string, sizes: number[] = [8, 4]): PartRecord {
  const segs = segments(`${uploadId}.${tag}`, sizes, ['n1', 'n2', 'n3']);
  return {
    uploadId,
    partNumber,
    size: segs.reduce((sum, s) => sum + s.size, 0),
    etag: `"${tag}"`,
    lastModified: new Date().toISOString(),
    checksums: {},
    layout: LAYOUT,
    segments: segs,
  };
}

t.test('multipart: parts, listings, complete and abort', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  await expectError(t, client.createUpload({ bucket: 'none', key: 'k', contentType: '', userMetadata: {}, headers: {} }), 404, 'NoSuchBucket');
  const up = await client.createUpload({ bucket: 'b', key: 'big.bin', contentType: 'application/x', userMetadata: { a: '1' }, headers: {} });
  t.match(up, { bucket: 'b', key: 'big.bin', contentType: 'application/x' });
  t.same(await client.getUpload(up.uploadId), up);

  const p1 = part(up.uploadId, 1, 'p1');
  const p2a = part(up.uploadId, 2, 'p2a');
  const p3 = part(up.uploadId, 3, 'p3', [8]);
  t.same(await client.putPart(p1), { part: p1, replaced: null });
  await client.putPart(p2a);
  await client.putPart(p3);
  const partRef = (await client.shardsOnNode('n1')).refs.find((r) => r.shardId.startsWith(`${up.uploadId}.p1.`));
  t.match(partRef, { bucket: 'b', key: 'big.bin', versionId: up.uploadId, upload: { uploadId: up.uploadId, partNumber: 1 } });

  const p2 = part(up.uploadId, 2, 'p2b');
  t.same((await client.putPart(p2)).replaced, p2a, 're-uploading a part number replaces it');
  const gc = shardIds(await client.garbage(farFuture()));
  t.same(gc, shardIds(p2a.segments.flatMap((s) => s.placements)), "the replaced part's shards are queued");

  t.same((await client.listParts(up.uploadId)).parts.map((p) => p.partNumber), [1, 2, 3]);
  const page = await client.listParts(up.uploadId, { after: 1, maxParts: 1 });
  t.same(page.parts, [p2]);
  t.equal(page.isTruncated, true);
  t.equal(page.nextPartNumberMarker, 2);
  await expectError(t, client.putPart(part('nope', 1, 'x')), 404, 'NoSuchUpload');

  const mk = (key: string) => client.createUpload({ bucket: 'b', key, contentType: '', userMetadata: {}, headers: {} });
  const others = [await mk('a/1'), await mk('a/1'), await mk('a/2'), await mk('c')];
  const listed = await client.listUploads('b');
  t.same(listed.uploads.map((u) => u.key), ['a/1', 'a/1', 'a/2', 'big.bin', 'c']);
  t.same(listed.uploads.slice(0, 2).map((u) => u.uploadId), [others[0].uploadId, others[1].uploadId], 'same key: in start order');
  const firstPage = await client.listUploads('b', { maxUploads: 1 });
  t.match(firstPage, { isTruncated: true, nextKeyMarker: 'a/1', nextUploadIdMarker: others[0].uploadId });
  const resumed = await client.listUploads('b', { keyMarker: 'a/1', uploadIdMarker: others[0].uploadId });
  t.same(resumed.uploads.map((u) => u.uploadId), [others[1].uploadId, others[2].uploadId, up.uploadId, others[3].uploadId]);
  t.same((await client.listUploads('b', { keyMarker: 'a/1' })).uploads.map((u) => u.key), ['a/2', 'big.bin', 'c']);
  t.same((await client.listUploads('b', { prefix: 'a/' })).uploads.map((u) => u.key), ['a/1', 'a/1', 'a/2']);

  const final = record('b', 'big.bin', {
    segments: [...p1.segments, ...p2.segments],
    parts: [
      { partNumber: 1, size: p1.size, etag: p1.etag, segmentCount: 2 },
      { partNumber: 2, size: p2.size, etag: p2.etag, segmentCount: 2 },
    ],
    etag: '"abc-2"',
  });
  await expectError(t, client.completeUpload(up.uploadId, { record: final, usedParts: [1, 4] }), 400, 'InvalidPart');
  await expectError(t, client.completeUpload(up.uploadId, { record: final, usedParts: [1, 3] }), 400, 'InvalidPart');
  await expectError(t, client.completeUpload(up.uploadId, { record: final, usedParts: [2, 1] }), 400, 'InvalidArgument');
  await client.commitObject({ record: record('b', 'big.bin') });
  await expectError(t, client.completeUpload(up.uploadId, { record: final, usedParts: [1, 2], condition: { ifNoneMatch: true } }), 412, 'PreconditionFailed');
  t.equal((await client.getUpload(up.uploadId)).uploadId, up.uploadId, 'a failed completion leaves the upload');

  await client.ackGarbage((await client.garbage(farFuture())).map((g) => g.id));
  const done = await client.completeUpload(up.uploadId, { record: final, usedParts: [1, 2] });
  t.same(done.record, final);
  t.ok(done.replaced, 'the plain object was replaced');
  t.same(await client.getObject('b', 'big.bin'), final);
  await expectError(t, client.getUpload(up.uploadId), 404, 'NoSuchUpload');
  await expectError(t, client.listParts(up.uploadId), 404, 'NoSuchUpload');

  const refs = (await Promise.all(['n1', 'n2', 'n3'].map((n) => client.shardsOnNode(n)))).flatMap((p) => p.refs);
  t.same(shardIds(refs), shardIds(final.segments.flatMap((s) => s.placements)), 'reverse index = the object, nothing else');
  t.ok(refs.every((r) => r.versionId === final.versionId && r.key === 'big.bin' && r.upload === undefined), 'refs re-pointed at the object');
  const p2ref = refs.find((r) => r.shardId === p2.segments[1].placements[2].shardId);
  t.match(p2ref, { segment: 3, index: 2 }, 'segment numbers are positions in the object');
  const garbage = shardIds(await client.garbage(farFuture()));
  const expectedGarbage = shardIds([...done.replaced!.segments, ...p3.segments].flatMap((s) => s.placements));
  t.same(garbage, expectedGarbage, 'unused part and replaced object go to GC');

  await client.ackGarbage((await client.garbage(farFuture())).map((g) => g.id));
  const q = part(others[3].uploadId, 1, 'q');
  await client.putPart(q);
  t.same((await client.abortUpload(others[3].uploadId)).uploadId, others[3].uploadId);
  t.same(shardIds(await client.garbage(farFuture())), shardIds(q.segments.flatMap((s) => s.placements)), 'aborted parts go to GC');
  t.notOk((await client.shardsOnNode('n1')).refs.some((r) => r.shardId.startsWith(others[3].uploadId)), 'and leave the reverse index');
  await expectError(t, client.abortUpload(others[3].uploadId), 404, 'NoSuchUpload');
});

t.test('multipart: parts of one upload commit concurrently; one part number at a time; abort waits for them', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  const up = await client.createUpload({ bucket: 'b', key: 'k', contentType: '', userMetadata: {}, headers: {} });
  await Promise.all(Array.from({ length: 8 }, (_, i) => client.putPart(part(up.uploadId, i + 1, `p${i + 1}`))));
  t.same((await client.listParts(up.uploadId)).parts.map((p) => p.partNumber), [1, 2, 3, 4, 5, 6, 7, 8], 'eight parts in parallel, all stored');

  // Five uploads of part 9 at once: one stays, the four replaced go to GC, whatever the order.
  const tries = Array.from({ length: 5 }, (_, i) => part(up.uploadId, 9, `r${i}`));
  await Promise.all(tries.map((p) => client.putPart(p)));
  const kept = (await client.listParts(up.uploadId, { after: 8 })).parts[0]!;
  const replaced = tries.filter((p) => p.etag !== kept.etag);
  t.equal(replaced.length, 4, 'one of them is the part');
  t.same(shardIds(await client.garbage(farFuture())), shardIds(replaced.flatMap((p) => p.segments.flatMap((s) => s.placements))), 'the other four are queued for GC, none lost');
  await client.ackGarbage((await client.garbage(farFuture())).map((g) => g.id));

  // An abort racing parts: each part either lands before it (and is collected by it) or is refused.
  const racing = Array.from({ length: 6 }, (_, i) => client.putPart(part(up.uploadId, 10 + i, `x${i}`)).then(() => 'stored', (err: { code?: string }) => err.code));
  await client.abortUpload(up.uploadId);
  const outcomes = await Promise.all(racing);
  t.ok(outcomes.every((o) => o === 'stored' || o === 'NoSuchUpload'), `parts stored or refused: ${outcomes}`);
  const refs = (await Promise.all(['n1', 'n2', 'n3'].map((n) => client.shardsOnNode(n)))).flatMap((p) => p.refs);
  t.notOk(refs.some((r) => r.versionId === up.uploadId), 'no shard of the upload left in the reverse index');
});

t.test('the reverse index pages', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  for (let i = 0; i < 5; i++) await client.commitObject({ record: record('b', `k${i}`) });
  const all: string[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = await client.shardsOnNode('n2', after, 3);
    all.push(...page.refs.map((r) => r.shardId));
    after = page.next;
    pages++;
  } while (after);
  t.equal(all.length, 10);
  t.equal(new Set(all).size, 10);
  t.equal(pages, 4);
  t.same((await client.shardsOnNode('unknown')).refs, []);
});

t.test('state survives closing and reopening the store', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-ns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await startService(t, {}, dir);
  await first.client.createBucket('keep', 'o');
  const r1 = record('keep', 'x/y');
  await first.client.commitObject({ record: r1 });
  await first.client.commitObject({ record: record('keep', 'x/y') });
  await first.client.heartbeat('node-a', beat(123, 'http://127.0.0.1:4444'));
  const up = await first.client.createUpload({ bucket: 'keep', key: 'm', contentType: '', userMetadata: {}, headers: {} });
  await first.client.putPart(part(up.uploadId, 1, 'pp'));
  const before = {
    object: await first.client.getObject('keep', 'x/y'),
    refs: await first.client.shardsOnNode('n1'),
    gc: await first.client.garbage(farFuture()),
    list: await first.client.listObjects('keep', { delimiter: '/' }),
  };
  await first.stop();

  const second = await startService(t, {}, dir);
  t.same((await second.client.getBucket('keep')).name, 'keep');
  t.same(await second.client.getObject('keep', 'x/y'), before.object);
  t.same(await second.client.shardsOnNode('n1'), before.refs);
  t.same(await second.client.garbage(farFuture()), before.gc);
  t.same(await second.client.listObjects('keep', { delimiter: '/' }), before.list);
  t.match(await second.client.getNode('node-a'), { url: 'http://127.0.0.1:4444', freeBytes: 123 });
  t.same((await second.client.listParts(up.uploadId)).parts.map((p) => p.partNumber), [1]);
  t.ok(before.gc.length > 0 && before.refs.refs.length > 0);
});

t.test('after a namespace restart, stale heartbeats make nodes suspect, not down', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-ns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let clock = Date.parse('2030-01-01T00:00:00Z');
  const opts: StoreOptions = { now: () => clock, suspectAfterMs: 1_000, downAfterMs: 10_000 };
  const first = await NamespaceStore.open(dir, opts);
  await first.heartbeat('n1', beat(5));
  await first.close();
  clock += 3_600_000;
  const second = await NamespaceStore.open(dir, opts);
  t.teardown(() => second.close());
  t.equal(second.getNode('n1').state, 'suspect', 'an hour of namespace downtime does not count as node silence');
  clock += 10_001;
  t.equal(second.getNode('n1').state, 'down', 'but silence after the restart does');
  await second.heartbeat('n1', beat(5));
  t.equal(second.getNode('n1').state, 'up');
});

t.test('KeyedLock: writers exclude everyone, readers share, arrival order is kept, nothing leaks', async (t) => {
  const lock = new KeyedLock();
  const log: string[] = [];
  let readers = 0;
  let writer = false;
  const read = (name: string) =>
    lock.shared('k', async () => {
      if (writer) t.fail('reader ran during a writer');
      readers++;
      await sleep(5);
      readers--;
      log.push(name);
    });
  const write = (name: string) =>
    lock.exclusive('k', async () => {
      if (writer || readers > 0) t.fail('writer ran during another holder');
      writer = true;
      await sleep(5);
      writer = false;
      log.push(name);
    });
  await Promise.all([read('r1'), read('r2'), write('w1'), read('r3'), write('w2'), lock.exclusive('other', async () => log.push('o'))]);
  t.same(log.filter((x) => x !== 'o').slice(2), ['w1', 'r3', 'w2'], 'a waiting writer is not overtaken by later readers');
  await t.rejects(lock.exclusive('k', async () => Promise.reject(new Error('boom'))));
  t.equal(lock.size, 0, 'released keys are forgotten, also after a failure');
});

t.test('metrics and unreachable service', async (t) => {
  const { client } = await startService(t);
  await client.createBucket('b', 'o');
  await client.commitObject({ record: record('b', 'k') });
  await client.deleteObject('b', 'k');
  await client.listObjects('b');
  await client.heartbeat('n1', beat(1));
  const text = await (await fetch(`${client.baseUrl}/metrics`)).text();
  for (const name of ['cairn_namespace_commits_total 1', 'cairn_namespace_deletes_total 1', 'cairn_namespace_list_calls_total 1', 'cairn_namespace_heartbeats_total 1']) {
    t.ok(text.includes(name), name);
  }
  // Group commit: every write counted once, and never more writes than batches.
  const grouped = (kind: string): number => Number(new RegExp(`^cairn_namespace_group_commit_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  t.ok(grouped('writes') >= 4, `writes counted (${grouped('writes')}): bucket, commit, delete, heartbeat`);
  t.ok(grouped('batches') >= grouped('writes'), `batches ${grouped('batches')} ≥ writes ${grouped('writes')}`);
  t.match(text, /^cairn_namespace_group_commit_write_seconds_total \d/m, 'time in writes');
  t.match(text, /^cairn_namespace_group_commit_prepare_seconds_total \d/m, 'time in value-log appends');
  const waited = Number(/^cairn_namespace_group_commit_wait_seconds_total (\S+)$/m.exec(text)?.[1]);
  t.ok(waited > 0, `time the commits waited (${waited} s)`);
  const dead = new NamespaceClient('http://127.0.0.1:1', { secret: TEST_SECRET });
  t.teardown(() => dead.close());
  await expectError(t, dead.listBuckets(), 503, 'ServiceUnavailable');
});

t.test('namespace/main.ts runs as a real process', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-ns-main-'));
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  child = spawn(process.execPath, ['--import', 'tsx', 'namespace/main.ts', '--data-dir', dir, '--port', '0', '--down-after', '30s'], {
    cwd: ROOT,
    env: SECRET_ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = child;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = await new Promise<{ url: string; service: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line; stderr: ${stderr}`)), 20_000);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (!line.startsWith('CAIRN_READY ')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line.slice('CAIRN_READY '.length)) as { url: string; service: string });
    });
    proc.once('exit', (code) => reject(new Error(`exited ${code} before ready; stderr: ${stderr}`)));
  });
  t.equal(ready.service, 'namespace');
  const health = (await (await fetch(`${ready.url}/health`)).json()) as { status: string; service: string; nodes: unknown };
  t.match(health, { status: 'ok', service: 'namespace', nodes: { up: 0, suspect: 0, down: 0 } });
  const client = new NamespaceClient(ready.url, { secret: TEST_SECRET });
  await client.createBucket('b', 'o');
  await client.close();
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'clean exit on SIGTERM');
});
