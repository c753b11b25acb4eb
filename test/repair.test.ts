// The repair service against a real cluster (namespace, 8 storage nodes, gateway, repair as OS
// processes): node loss is healed back to k+m shards on live nodes, a returning node's stale
// shards are collected, degraded writes are completed, bit rot found by the scrubber is healed,
// garbage and orphan shards are deleted (and nothing referenced ever is, even racing live
// traffic), a draining node is emptied by copying, a repair process SIGKILLed mid-rebuild is
// resumed by its successor without lost or duplicated placements, an overwrite during a repair
// wins over it, and the parts of an upload in progress are repaired like objects. The pure parts
// (queue, rate limiter) are checked first.
import { crc32c } from '@node-rs/crc32';
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { NamespaceClient } from '../namespace/client.js';
import type { NodeRecord, ObjectRecord } from '../namespace/types.js';
import { StorageNodePool } from '../storage-node/client.js';
import { RepairClient, type RepairStatus } from '../repair/client.js';
import { RepairQueue, type RepairItem } from '../repair/queue.js';
import { parseRate, TokenBucket } from '../repair/rate.js';
import { rebuildFramed } from '../erasure/rebuild.js';
import { StripeCodec } from '../erasure/codec.js';
import { encodeStripes, shardFrame, type EncodedStripe } from '../erasure/stream.js';
import { startTestCluster, type TestCluster } from './helpers/cluster.js';
import { sleep, waitFor } from './helpers/wait.js';

const MiB = 1024 * 1024;
const BUCKET = 'repair';
const SEGMENT_SIZE = 4 * MiB;
const K = 4;
const M = 2;

// ---- pure parts ---------------------------------------------------------------------------------

t.test('repair queue: most damaged first, bounded, merged per segment, backed off after failures', async (t) => {
  const item = (key: string, priority: number, suspect: number[] = []): Omit<RepairItem, 'queuedAt'> => ({
    bucket: 'b', key, versionId: 'v', segment: 0, suspect, taskIds: [], reasons: ['node-down'], priority,
  });
  const q = new RepairQueue({ capacity: 3, baseBackoffMs: 1000 });
  t.equal(q.push(item('drain', 0)), 'queued');
  t.equal(q.push(item('one', 1, [0])), 'queued');
  t.equal(q.push(item('two', 1, [1])), 'queued');
  t.equal(q.push(item('two', 1, [4])), 'merged', 'a second hint for a segment merges into its entry');
  t.equal(q.push(item('three', 1, [2])), 'queued', 'a full queue evicts a lower-priority entry for a higher one');
  t.equal(q.push(item('late-drain', 0)), 'full', 'but refuses one that ranks no higher');
  t.equal(q.size, 3);
  const first = q.pop()!;
  t.equal(first.key, 'two', 'the segment with two bad shards goes first');
  t.same(first.suspect, [1, 4]);
  t.equal(q.push(item('two', 2)), 'busy', 'a segment being repaired is not queued again');
  q.finish(first, false, 0);
  t.equal(q.push(item('two', 2), 500), 'backoff', 'a failed segment waits before its retry');
  t.equal(q.push(item('two', 2), 1500), 'queued');
  t.same([q.pop()!.key, q.pop()!.key, q.pop()!.key, q.pop()], ['two', 'one', 'three', undefined]);
});

t.test('repair rate: parsing and the token bucket', async (t) => {
  t.equal(parseRate('100MB'), 100e6);
  t.equal(parseRate('50MiB/s'), 50 * MiB);
  t.equal(parseRate('unlimited'), Infinity);
  t.throws(() => parseRate('fast'));
  const bucket = new TokenBucket(10e6, 0);
  const started = Date.now();
  for (let i = 0; i < 4; i++) await bucket.take(1e6);
  t.ok(Date.now() - started >= 350, `4 MB at 10 MB/s took ${Date.now() - started} ms`);
  const urgent = Date.now();
  await bucket.take(5e6, undefined, true);
  t.ok(Date.now() - urgent < 50, 'urgent work is not delayed');
});

t.test('repair rebuild: framed blocks equal the encoder\'s, sources fail by shard', async (t) => {
  const layout = { k: K, m: M, blockSize: 64 };
  const codec = new StripeCodec(layout);
  // A short last stripe (1000 bytes is 3 full stripes of 256 and a 232-byte tail).
  const data = randomBytes(1000);
  const stripes: EncodedStripe[] = [];
  const source = (async function* () {
    yield data.subarray(0, 333);
    yield data.subarray(333);
  })();
  for await (const s of encodeStripes(source, layout, codec)) stripes.push(s);
  const shard = (i: number): Buffer => Buffer.concat(stripes.map((s) => s.blocks[i]));
  const framed = (i: number): Buffer => Buffer.concat(stripes.flatMap((s) => shardFrame(s, i)));
  const chunked = (buf: Buffer): AsyncIterable<Uint8Array> => (async function* () {
    for (let at = 0; at < buf.length; at += 37) yield buf.subarray(at, at + 37);
  })();
  const collect = async (open: (i: number) => Promise<AsyncIterable<Uint8Array>>, sources: number[], wanted: number[]): Promise<Buffer[]> => {
    const out: Buffer[][] = wanted.map(() => []);
    // Slow consumer: the next stripe is read (into another recycled buffer) while this one is held.
    for await (const s of rebuildFramed(open, sources, wanted, layout, data.length, codec)) {
      await sleep(1);
      s.frames.forEach((f, j) => out[j].push(f));
    }
    return out.map((parts) => Buffer.concat(parts));
  };
  for (const [sources, wanted] of [[[0, 1, 2, 3], [4, 5]], [[2, 3, 4, 5], [0, 1]], [[0, 2, 3, 5], [1]]] as const) {
    const got = await collect(async (i) => chunked(shard(i)), [...sources], [...wanted]);
    wanted.forEach((w, j) => t.ok(got[j].equals(framed(w)), `shard ${w} from ${sources.join(',')}`));
  }
  const failing = collect(async (i) => (i === 2 ? chunked(shard(i).subarray(0, 100)) : chunked(shard(i))), [1, 2, 3, 4], [0]);
  await t.rejects(failing, { name: 'ShardSourceError', shardIndex: 2 }, 'a short source is named');
  const longer = collect(async (i) => chunked(i === 3 ? Buffer.concat([shard(i), Buffer.alloc(8)]) : shard(i)), [1, 2, 3, 4], [0]);
  await t.rejects(longer, { name: 'ShardSourceError', shardIndex: 3 }, 'a source with extra bytes is named');
  const unopened = collect(async (i) => (i === 4 ? Promise.reject(new Error('refused')) : chunked(shard(i))), [1, 2, 3, 4], [0]);
  await t.rejects(unopened, { name: 'ShardSourceError', shardIndex: 4 }, 'a source that cannot be opened is named');
  await t.rejects(collect(async (i) => chunked(shard(i)), [0, 1, 2], [3]), RangeError, 'exactly k sources');
});

// ---- the cluster ------------------------------------------------------------------------------

let env: TestCluster;
let ns: NamespaceClient;
let pool: StorageNodePool;
const objects = new Map<string, Buffer>();

const md5 = (data: Buffer): string => createHash('md5').update(data).digest('hex');


function repair(): RepairClient {
  return new RepairClient(env.cluster.services.get('repair')!.ready.url, env.cluster.clusterSecret);
}

async function nodes(): Promise<Map<string, NodeRecord>> {
  return new Map((await ns.listNodes()).map((n) => [n.id, n]));
}

async function nodeClient(id: string) {
  const node = (await nodes()).get(id);
  if (!node) throw new Error(`no node ${id}`);
  return pool.get(node.url);
}

async function put(s3: S3Client, key: string, data: Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: data }));
  objects.set(key, data);
}

async function get(s3: S3Client, key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

async function verifyObjects(t: Test, label: string): Promise<void> {
  let ok = 0;
  for (const [key, data] of objects) {
    const back = await get(env.s3, key);
    if (back.equals(data)) ok++;
    else t.fail(`${label}: ${key} differs (md5 ${md5(back)} vs ${md5(data)})`);
  }
  t.equal(ok, objects.size, `${label}: all ${objects.size} objects read back intact`);
}

async function records(): Promise<ObjectRecord[]> {
  return Promise.all([...objects.keys()].map((key) => ns.getObject(BUCKET, key)));
}

/** An object record, or a part of an upload in progress named by a key. */
type Segmented = Pick<ObjectRecord, 'key' | 'segments'>;

/** Every segment: k+m placements on distinct live nodes, distinct fresh shard ids. Returns what is wrong. */
async function redundancyProblems(recs?: Segmented[]): Promise<string[]> {
  const live = await nodes();
  const problems: string[] = [];
  for (const rec of recs ?? (await records())) {
    rec.segments.forEach((seg, s) => {
      const where = `${rec.key}#${s}`;
      if (seg.placements.length !== K + M) problems.push(`${where}: ${seg.placements.length} placements`);
      const ids = seg.placements.map((p) => p.nodeId);
      if (new Set(ids).size !== ids.length) problems.push(`${where}: two shards on one node (${ids.join(',')})`);
      if (new Set(seg.placements.map((p) => p.shardId)).size !== ids.length) problems.push(`${where}: a shard id is used twice`);
      for (const id of ids) if (id === null || live.get(id)?.state !== 'up') problems.push(`${where}: shard on ${id ?? 'no node'}`);
    });
  }
  return problems;
}

/** Every placement's shard file is there (HEAD). */
async function missingShards(recs?: Segmented[]): Promise<string[]> {
  const missing: string[] = [];
  for (const rec of recs ?? (await records())) {
    for (const seg of rec.segments) {
      for (const p of seg.placements) {
        if (p.nodeId === null) continue;
        if (!(await shardExists(p.nodeId, p.shardId))) missing.push(`${p.nodeId}/${p.shardId}`);
      }
    }
  }
  return missing;
}

/**
 * HEAD of one shard. A node that just restarted may still be listed at its old port until its
 * first heartbeat lands, so a failed request is retried with a fresh node list, not taken for absence.
 */
async function shardExists(nodeId: string, shardId: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await (await nodeClient(nodeId)).headShard(shardId)) !== null;
    } catch (err) {
      if (attempt >= 20) throw err;
      await sleep(250);
    }
  }
}

async function waitForFullRedundancy(what: string, timeoutMs = 40_000): Promise<void> {
  await waitFor(what, async () => (await redundancyProblems()).length === 0, timeoutMs);
}

/** Shard ids on a node's disk. */
async function shardsOnDisk(nodeId: string): Promise<Set<string>> {
  const client = await nodeClient(nodeId);
  const ids = new Set<string>();
  let after: string | undefined;
  do {
    const page = await client.listShards(after, 1000);
    for (const s of page.shards) ids.add(s.id);
    after = page.next;
  } while (after);
  return ids;
}

function shardPath(nodeId: string, shardId: string): string {
  const fan = createHash('sha256').update(shardId).digest('hex').slice(0, 2);
  return path.join(env.dataDir, 'nodes', nodeId, 'shards', fan, shardId);
}

async function waitDown(nodeId: string): Promise<void> {
  await waitFor(`${nodeId} to be down`, async () => (await nodes()).get(nodeId)?.state === 'down', 20_000);
}

async function waitUp(nodeId: string): Promise<void> {
  await waitFor(`${nodeId} to be up`, async () => (await nodes()).get(nodeId)?.state === 'up', 20_000);
}

let lastAudit: { missingFound: number; nodes: Record<string, unknown> } = { missingFound: 0, nodes: {} };

async function refreshAudit(): Promise<void> {
  lastAudit = (await repair().worker('audit')).progress as typeof lastAudit;
}

async function auditProgress(): Promise<typeof lastAudit> {
  await refreshAudit();
  return lastAudit;
}

/** Nodes the audit has finished at least once (from the last refresh). */
function auditNodes(): Record<string, unknown> {
  return Object.fromEntries(Object.entries(lastAudit.nodes).filter(([, v]) => (v as { lastAudit?: string }).lastAudit !== undefined));
}

async function repairStatus(): Promise<RepairStatus> {
  return repair().status();
}

t.test('repair service on a real cluster', async (t) => {
  env = await startTestCluster({
    nodes: 8,
    downAfter: '3s',
    shardTimeout: '3s',
    segmentSize: SEGMENT_SIZE,
    repair: { workers: 2, rate: 'unlimited', scrubInterval: '3s', auditInterval: '3s', gcGrace: '1s', orphanGrace: '4s', interval: '300ms' },
  });
  ns = new NamespaceClient(env.cluster.namespaceUrl, { secret: env.cluster.clusterSecret });
  pool = new StorageNodePool({ secret: env.cluster.clusterSecret, timeoutMs: 5000 });
  t.teardown(async () => {
    await pool.close();
    await ns.close();
    await env.destroy();
  });
  const { s3, cluster } = env;
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const sizes = [1, 100 * 1024, MiB + 1, 5 * MiB + 7, 9 * MiB + 13, ...Array.from({ length: 8 }, () => 4 * MiB)];
  for (const [i, size] of sizes.entries()) await put(s3, `obj-${i}`, randomBytes(size));

  await t.test('a SIGKILLed node: after down-after every segment is back to k+m shards on live nodes', async (t) => {
    t.same(await redundancyProblems(), [], 'healthy to begin with');
    const before = await repairStatus();
    const killedAt = Date.now();
    await cluster.kill('node-8', 'SIGKILL');
    await waitDown('node-8');
    const downAt = Date.now();
    await waitForFullRedundancy('full redundancy after losing node-8');
    const healedAt = Date.now();
    t.same(await missingShards(), [], 'every placement names a shard that exists');
    const after = await repairStatus();
    const bytes = Number(after.repair.bytesWritten) - Number(before.repair.bytesWritten);
    const busy = Number(after.repair.busySeconds) - Number(before.repair.busySeconds);
    t.ok(Number(after.repair.shardsRebuilt) > 0, `${after.repair.shardsRebuilt} shards rebuilt`);
    t.comment(
      `node loss: down ${((downAt - killedAt) / 1000).toFixed(1)} s after SIGKILL, full redundancy ${((healedAt - killedAt) / 1000).toFixed(1)} s after ` +
        `(${((healedAt - downAt) / 1000).toFixed(1)} s after down); rebuilt ${(bytes / 1e6).toFixed(1)} MB in ${busy.toFixed(2)} s busy = ${(bytes / 1e6 / busy).toFixed(1)} MB/s`,
    );
    await verifyObjects(t, 'after node-8 was rebuilt');
  });

  await t.test('the lost node comes back: its stale shards are garbage-collected, never served', async (t) => {
    const stale = await shardsOnDiskOffline('node-8');
    await cluster.startNode('node-8');
    await waitUp('node-8');
    const referenced = new Set((await records()).flatMap((r) => r.segments.flatMap((s) => s.placements.filter((p) => p.nodeId === 'node-8').map((p) => p.shardId))));
    t.equal(referenced.size, 0, 'no placement points at node-8 any more');
    await waitFor('node-8 stale shards to go', async () => {
      const left = await shardsOnDisk('node-8');
      return [...stale].every((id) => !left.has(id));
    });
    t.pass(`${stale.size} stale shards deleted from node-8`);
    await verifyObjects(t, 'with node-8 back');
  });

  await t.test('a degraded write (node dead at PUT time) is completed', async (t) => {
    await cluster.kill('node-7', 'SIGKILL');
    const data = randomBytes(13 * MiB);
    let holes = 0;
    // node-7 still counts as up: placements choose it (6 of 8 nodes per segment) and its writes fail.
    for (let attempt = 0; attempt < 3 && holes === 0; attempt++) {
      await put(s3, 'degraded', data);
      const rec = await ns.getObject(BUCKET, 'degraded');
      holes = rec.segments.flatMap((s) => s.placements.filter((p) => p.nodeId === null)).length;
    }
    t.ok(holes > 0, `${holes} shards were not written`);
    await cluster.startNode('node-7');
    await waitFor('the degraded write to be completed', async () => {
      const now = await ns.getObject(BUCKET, 'degraded');
      return now.segments.every((s) => s.placements.every((p) => p.nodeId !== null));
    });
    await waitForFullRedundancy('full redundancy after the degraded write');
    t.same(await missingShards(), []);
    t.ok((await get(s3, 'degraded')).equals(data), 'reads back');
  });

  await t.test('a flipped byte on disk is found by the scrubber and healed', async (t) => {
    const rec = await ns.getObject(BUCKET, 'obj-4');
    const victim = rec.segments[1].placements[2];
    const file = shardPath(victim.nodeId!, victim.shardId);
    const bytes = await readFile(file);
    bytes[32 + 1000] ^= 0x40; // inside the first block, past the 32-byte header
    await writeFile(file, bytes);
    const healed = await waitFor('the corrupt shard to be replaced', async () => {
      const now = await ns.getObject(BUCKET, 'obj-4');
      const p = now.segments[1].placements[2];
      return p.shardId !== victim.shardId ? p : undefined;
    });
    t.not(healed.shardId, victim.shardId, `shard 2 of segment 1 now lives at ${healed.nodeId}/${healed.shardId}`);
    const scrub = (await repair().worker('scrub')).progress as { corruptFound: number };
    t.ok(scrub.corruptFound >= 1, 'the scrubber found it');
    await waitFor('the corrupt shard file to be collected', async () => (await (await nodeClient(victim.nodeId!)).headShard(victim.shardId)) === null);
    await verifyObjects(t, 'after healing bit rot');
  });

  await t.test('shard files lost from a live node are found by the inventory audit and rebuilt', async (t) => {
    const rec = await ns.getObject(BUCKET, 'obj-3');
    // A parity shard (no GET would ever notice it gone) and a data shard of the same segment.
    const victims = [rec.segments[0].placements[5], rec.segments[0].placements[0]];
    for (const v of victims) await unlink(shardPath(v.nodeId!, v.shardId));
    const before = await auditProgress();
    await waitFor('both lost shards to be re-placed', async () => {
      const now = await ns.getObject(BUCKET, 'obj-3');
      return now.segments[0].placements[5].shardId !== victims[0].shardId && now.segments[0].placements[0].shardId !== victims[1].shardId;
    });
    t.ok((await auditProgress()).missingFound >= before.missingFound + 2, 'the audit reported them');
    t.same(await missingShards(), [], 'every placement names a shard that exists');
    await verifyObjects(t, 'after the lost files were rebuilt');
  });

  await t.test("a source that fails under its target's rebuild is dropped, and the rebuild retried without it", async (t) => {
    // No audit and no scrub after the start-up audits: only the rebuild itself can run into the broken source.
    await cluster.kill('repair', 'SIGTERM');
    await cluster.startRepair({ auditInterval: '1h', scrubInterval: '1h' });
    const state = await nodes();
    const live = [...state.values()].filter((n) => n.state === 'up').map((n) => n.id);
    await waitFor('the start-up audit of every node', async () => {
      await refreshAudit();
      return live.every((id) => id in auditNodes());
    });
    const isUp = (id: string | null): boolean => id !== null && state.get(id)?.state === 'up';
    const chosen = (await records())
      .filter((r) => r.size >= 4 * MiB)
      .map((r) => ({ key: r.key, broken: r.segments[0].placements[0], lost: r.segments[0].placements[4] }))
      .find((c) => isUp(c.broken.nodeId) && isUp(c.lost.nodeId));
    t.ok(chosen, 'an object with a data shard and a parity shard of one segment on live nodes');
    const { key, broken, lost } = chosen!;
    await unlink(shardPath(broken.nodeId!, broken.shardId));
    await cluster.kill(lost.nodeId!, 'SIGKILL');
    await waitDown(lost.nodeId!);
    await waitFor(`the lost shard of ${key} to be rebuilt`, async () => (await ns.getObject(BUCKET, key)).segments[0].placements[4].shardId !== lost.shardId);
    const log = await readFile(path.join(env.dataDir, 'logs', 'repair.log'), 'utf8');
    t.match(log, new RegExp(`repair source failed; trying another shard.*${broken.shardId}`), 'the rebuild read the missing data shard first, then went on without it');
    t.equal((await ns.getObject(BUCKET, key)).segments[0].placements[0].shardId, broken.shardId, 'the broken source is left to the audit');
    // The usual repair again: its audit finds the missing file; the lost node returns.
    await cluster.kill('repair', 'SIGTERM');
    await cluster.startRepair();
    await cluster.startNode(lost.nodeId!);
    await waitUp(lost.nodeId!);
    await waitFor('the missing source to be rebuilt too', async () => (await missingShards()).length === 0 && (await redundancyProblems()).length === 0);
    await verifyObjects(t, 'after a rebuild without its broken source');
  });

  await t.test('a node restarted on an empty disk (before it is ever marked down) is audited at once and refilled', async (t) => {
    // A long audit interval, so only the restart (a new boot id in the heartbeat) can trigger it.
    await cluster.kill('repair', 'SIGTERM');
    await cluster.startRepair({ auditInterval: '1h' });
    const all = [...(await nodes()).values()].filter((n) => n.state === 'up').map((n) => n.id);
    await waitFor('the start-up audit of every node', async () => {
      await refreshAudit();
      return all.every((id) => id in auditNodes());
    });
    // The up node holding the most shards: earlier subtests move shards around at random, and a
    // fixed choice once held none (CI at 807e391).
    const placements = (await records()).flatMap((r) => r.segments.flatMap((s) => s.placements.map((p) => p.nodeId)));
    const victim = all.map((id) => ({ id, held: placements.filter((n) => n === id).length })).sort((a, b) => b.held - a.held)[0]!.id;
    const held = placements.filter((n) => n === victim).length;
    t.ok(held > 0, `${victim} holds ${held} shards`);
    await cluster.kill(victim, 'SIGKILL');
    await rm(path.join(env.dataDir, 'nodes', victim, 'shards'), { recursive: true, force: true });
    const restartedAt = Date.now();
    await cluster.startNode(victim);
    t.equal((await nodes()).get(victim)?.state, 'up', 'never marked down');
    await waitFor('every lost shard to be rebuilt', async () => (await missingShards()).length === 0 && (await redundancyProblems()).length === 0, 40_000);
    t.comment(`${held} shards of a wiped node rebuilt ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after its restart`);
    await verifyObjects(t, 'after refilling the wiped node');
  });

  await t.test('the integrity chain: a block corrupted before its CRC was computed is caught by the scrubber', async (t) => {
    // Simulates memory corruption between receipt and encoding: the block's bytes change and its
    // frame CRC is recomputed to match, so the node's own check passes. Only the CRCs recorded at
    // write time (proven against the client's bytes) can tell.
    const rec = await ns.getObject(BUCKET, 'obj-4');
    const victim = rec.segments[0].placements[1];
    const file = shardPath(victim.nodeId!, victim.shardId);
    const bytes = await readFile(file);
    const blockSize = bytes.readUInt32LE(12);
    const frame = bytes.subarray(32, 32 + blockSize + 4);
    frame[10] ^= 0x01;
    frame.writeUInt32LE(crc32c(frame.subarray(0, blockSize)) >>> 0, blockSize);
    await writeFile(file, bytes);
    t.same((await (await nodeClient(victim.nodeId!)).verifyShard(victim.shardId)).corruptBlocks, [], 'the node alone sees nothing wrong');
    const healed = await waitFor('the forged shard to be replaced', async () => {
      const now = await ns.getObject(BUCKET, 'obj-4');
      const p = now.segments[0].placements[1];
      return p.shardId !== victim.shardId ? p : undefined;
    });
    t.not(healed.shardId, victim.shardId, 'the shard was rebuilt from the others');
    const scrub = (await repair().worker('scrub')).progress as { chainBroken: number };
    t.ok(scrub.chainBroken >= 1, 'the scrubber reported a broken chain');
    await verifyObjects(t, 'after healing a forged block');
  });

  await t.test('shards of overwritten and deleted objects are garbage-collected', async (t) => {
    await put(s3, 'to-overwrite', randomBytes(2 * MiB));
    await put(s3, 'to-delete', randomBytes(MiB));
    const old = [...(await ns.getObject(BUCKET, 'to-overwrite')).segments, ...(await ns.getObject(BUCKET, 'to-delete')).segments].flatMap((s) => s.placements);
    await put(s3, 'to-overwrite', randomBytes(3 * MiB));
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'to-delete' }));
    objects.delete('to-delete');
    await waitFor('old shards to be deleted', async () => {
      for (const p of old) if ((await (await nodeClient(p.nodeId!)).headShard(p.shardId)) !== null) return false;
      return true;
    });
    t.pass(`${old.length} unreferenced shards deleted`);
    await verifyObjects(t, 'after GC');
  });

  await t.test('orphan shards (written, never committed) are deleted after the orphan grace', async (t) => {
    const client = await nodeClient('node-1');
    const frame = Buffer.alloc(4096, 7);
    const crc = Buffer.alloc(4);
    const { crc32c } = await import('@node-rs/crc32');
    crc.writeUInt32LE(crc32c(frame) >>> 0);
    await client.putShard('orphan0test.0.0', 4096, (async function* () {
      yield frame;
      yield crc;
    })());
    t.ok(await client.headShard('orphan0test.0.0'), 'the orphan exists');
    await waitFor('the orphan to be deleted', async () => (await client.headShard('orphan0test.0.0')) === null, 20_000);
    t.pass('deleted');
    await verifyObjects(t, 'after orphan collection');
  });

  await t.test('GC racing live PUT / overwrite / delete / multipart traffic never removes a referenced shard', async (t) => {
    const raceKeys = Array.from({ length: 6 }, (_, i) => `race-${i}`);
    const until = Date.now() + 8000;
    let ops = 0;
    await Promise.all(
      raceKeys.map(async (key, lane) => {
        for (let round = 0; Date.now() < until; round++) {
          const choice = (lane + round) % 4;
          if (choice === 3 && objects.has(key)) {
            await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
            objects.delete(key);
          } else if (choice === 2) {
            await multipartPut(s3, key, [randomBytes(5 * MiB), randomBytes(300 * 1024 + round)]);
          } else {
            await put(s3, key, randomBytes(64 * 1024 + lane * 100_000 + round * 777));
          }
          ops++;
        }
      }),
    );
    t.comment(`${ops} writes and deletes raced the collectors`);
    await sleep(6000); // past both graces: whatever GC would wrongly take is gone by now
    await verifyObjects(t, 'after the GC race');
    t.same(await missingShards(), [], 'every placement still has its shard');
  });

  await t.test('drain: `npm run admin -- drain node-2` moves every shard off by copying', async (t) => {
    const before = await repairStatus();
    const onNode = (await ns.shardsOnNode('node-2')).refs.length;
    t.ok(onNode > 0, `node-2 holds ${onNode} shards`);
    const { stdout } = await admin(['drain', 'node-2', '--wait', '--timeout', '60s']);
    t.match(stdout, /node-2 is drained/);
    t.equal((await ns.shardsOnNode('node-2')).refs.length, 0, 'the reverse index of node-2 is empty');
    const after = await repairStatus();
    t.ok(Number(after.repair.shardsCopied) - Number(before.repair.shardsCopied) >= onNode, 'shards were copied, not rebuilt');
    t.ok(after.drains['node-2']?.drained, 'status shows node-2 drained');
    const status = await admin(['status']);
    t.match(status.stdout, /node-2\s+up\s+draining/);
    t.match(status.stdout, /repair-1/);
    await verifyObjects(t, 'after the drain');
    await waitFor('node-2 to be emptied on disk', async () => (await shardsOnDisk('node-2')).size === 0);
    await admin(['undrain', 'node-2']);
    t.equal((await nodes()).get('node-2')?.mode ?? 'normal', 'normal');
  });

  await t.test('repair SIGKILLed mid-rebuild: a restarted repair converges; an overwrite during a repair wins', async (t) => {
    // A slow repair, so that it is certainly mid-way when it is overwritten under and killed.
    await cluster.kill('repair', 'SIGKILL');
    await cluster.startRepair({ rate: '2MB' });
    await cluster.kill('node-6', 'SIGKILL');
    await waitDown('node-6');
    let overwritten: string | undefined;
    // The overwrite must land while the segment's rebuild runs (seconds at this rate); should the
    // rebuild still win the race, the next segment is tried.
    for (let attempt = 0; attempt < 3 && !overwritten; attempt++) {
      const busy = await waitFor('a repair in progress', async () => {
        const s = await repairStatus();
        const current = s.workers.flatMap((w) => (w.progress.current as { key: string }[] | undefined) ?? []);
        return current.find((c) => (objects.get(c.key)?.length ?? 0) >= 4 * MiB);
      });
      const fresh = randomBytes(4 * MiB + 3);
      await put(s3, busy.key, fresh);
      const conflicted = await waitFor('the repair to lose its compare-and-swap', async () => Number((await repairStatus()).repair.conflicts) > 0, 12_000).catch(() => false);
      if (conflicted) overwritten = busy.key;
    }
    t.ok(overwritten, `overwriting ${overwritten} during its repair won over the repair`);
    t.ok((await get(s3, overwritten!)).equals(objects.get(overwritten!)!), 'the overwrite is what reads back');
    await waitFor('another repair in progress', async () => Number((await repairStatus()).repair.inProgress) > 0);
    await cluster.kill('repair', 'SIGKILL');
    t.ok((await redundancyProblems()).length > 0, 'killed before it finished');
    await cluster.startRepair();
    await waitForFullRedundancy('full redundancy after the restarted repair');
    t.same(await missingShards(), [], 'no placement lost its shard');
    await verifyObjects(t, 'after the interrupted repair');
    // node-6 returns: its stale shards, and whatever the killed repair wrote, must all be collected.
    await cluster.startNode('node-6');
    await waitUp('node-6');
    const extra = await waitFor('every node to hold exactly its referenced shards', async () => {
      const diff = await unreferencedOnDisk();
      return diff.length === 0 ? diff : undefined;
    }, 30_000);
    t.same(extra, [], 'no unreferenced or duplicate shard is left on any node');
  });

  await t.test('parts of an upload in progress are repaired: the object survives three node losses', async (t) => {
    const key = 'open-upload';
    const bodies = [randomBytes(5 * MiB), randomBytes(MiB)];
    const upload = await uploadParts(s3, key, bodies);
    const parts = async (): Promise<Segmented[]> => (await ns.listParts(upload.UploadId)).parts.map((p) => ({ key: `${key} part ${p.partNumber}`, segments: p.segments }));
    // Three holders of one segment: with no repair in between, losing all three leaves it k-1 shards.
    const [lost, ...later] = (await parts())[0].segments[0].placements.slice(0, 3).map((p) => p.nodeId!);
    await cluster.kill(lost, 'SIGKILL');
    await waitDown(lost);
    await waitFor('every part segment back to k+m shards on live nodes', async () => (await redundancyProblems(await parts())).length === 0);
    t.same(await missingShards(await parts()), [], `${lost} is lost: every part placement names a shard that exists`);
    for (const id of later) await cluster.kill(id, 'SIGKILL');
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, ...upload }));
    const data = Buffer.concat(bodies);
    const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    t.equal(sha256(await get(s3, key)), sha256(data), `completed with ${later.join(' and ')} down too, it reads back byte-exact`);
    objects.set(key, data);
    for (const id of [lost, ...later]) await cluster.startNode(id);
    for (const id of [lost, ...later]) await waitUp(id);
  });
});

/** Starts an upload of `key` with `parts` as parts 1..n; returns what CompleteMultipartUpload takes. */
async function uploadParts(s3: S3Client, key: string, parts: Buffer[]): Promise<{ UploadId: string; MultipartUpload: { Parts: CompletedPart[] } }> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  const done: CompletedPart[] = [];
  for (const [i, body] of parts.entries()) {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: i + 1, Body: body }));
    done.push({ ETag, PartNumber: i + 1 });
  }
  return { UploadId: UploadId!, MultipartUpload: { Parts: done } };
}

async function multipartPut(s3: S3Client, key: string, parts: Buffer[]): Promise<void> {
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, ...(await uploadParts(s3, key, parts)) }));
  objects.set(key, Buffer.concat(parts));
}

/** Shard ids in a stopped node's data dir (read from disk: the node is not running). */
async function shardsOnDiskOffline(nodeId: string): Promise<Set<string>> {
  const { readdir } = await import('node:fs/promises');
  const root = path.join(env.dataDir, 'nodes', nodeId, 'shards');
  const ids = new Set<string>();
  for (const fan of await readdir(root)) for (const f of await readdir(path.join(root, fan))) ids.add(f);
  return ids;
}

/** Shards on live nodes that no object references (plus references whose shard is missing). */
async function unreferencedOnDisk(): Promise<string[]> {
  const wanted = new Map<string, Set<string>>();
  for (const rec of await records()) {
    for (const seg of rec.segments) for (const p of seg.placements) if (p.nodeId) (wanted.get(p.nodeId) ?? wanted.set(p.nodeId, new Set()).get(p.nodeId)!).add(p.shardId);
  }
  const out: string[] = [];
  for (const node of (await nodes()).values()) {
    if (node.state !== 'up') continue;
    const disk = await shardsOnDisk(node.id);
    const refs = wanted.get(node.id) ?? new Set();
    for (const id of disk) if (!refs.has(id)) out.push(`${node.id}: extra ${id}`);
    for (const id of refs) if (!disk.has(id)) out.push(`${node.id}: missing ${id}`);
  }
  return out;
}

async function admin(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const root = path.resolve(import.meta.dirname, '..');
  return promisify(execFile)(process.execPath, ['--no-warnings', '--import', 'tsx', 'repair/admin.ts', ...args, '--data-dir', env.dataDir], { cwd: root });
}
