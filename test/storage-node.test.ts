// Storage node: the real server in-process on loopback over a temp dir, driven through its client;
// plus the process entry spawned once as a child.
import { chunks, flipStoredByte, frame } from './helpers/shards.js';
import t from 'tap';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { rawRequest, signedHeaders, TEST_SECRET } from './helpers/internal.js';
import { close, listen } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { blockCrc, crcBytes } from '../erasure/frames.js';
import { encodeStripes, shardFrame } from '../erasure/stream.js';
import { CRC_BYTES } from '../erasure/layout.js';
import { StorageNodeClient, StorageNodeError, StorageNodePool } from '../storage-node/client.js';
import { diskPorts, parseDiskList } from '../storage-node/disks.js';
import { Heartbeater } from '../storage-node/heartbeat.js';
import { nodeUrlKey, rebuildShard, type LocalStores } from '../storage-node/rebuild.js';
import { createStorageNodeServer } from '../storage-node/server.js';
import { BATCH_MANIFEST_SHA256_HEADER, decodeReadResults, decodeShardBatch, encodeReadResults, encodeShardBatch, MAX_SHARD_BATCH, ShardBatchError, shardBatchManifestHead } from '../storage-node/shard-batch.js';
import { sha256Hex } from '../common/internal-auth.js';
import { DIRECT_READ_MIN_BYTES, HEADER_BYTES, NodeIdError, ShardStore, type ShardReader, type StoreLimits } from '../storage-node/store.js';
import type { HeartbeatRequest } from '../namespace/types.js';
import { PREVERIFIED_READ_BYTES } from '../storage-node/types.js';
import { spawnNode } from './helpers/storage-node-process.js';
import { chunksOf } from '../common/chunks.js';
import { Readable } from 'node:stream';
import { createShardFile, DIRECT_ALIGN, openShardFileForRead, probeDirectIo, READ_BUFFER_BYTES, shareRelease, STAGE_BYTES, type IoMode } from '../storage-node/shard-file.js';
import { tempDir } from './helpers/temp-dir.js';

const log = createLogger('test', 'error');

/** The part of a tap test these helpers need (the root `t` and subtests have different static types). */
interface Tap {
  teardown(fn: () => unknown): void;
}

interface Node {
  dir: string;
  store: ShardStore;
  url: string;
  client: StorageNodeClient;
  metrics: Registry;
}

async function startNode(t: Tap, opts: { dir?: string; nodeId?: string; limits?: Partial<StoreLimits>; packMaxBytes?: number; localStores?: LocalStores } = {}): Promise<Node> {
  const dir = opts.dir ?? (await tempDir(t, 'cairn-sn-'));
  const store = await ShardStore.open({ dir, nodeId: opts.nodeId ?? 'node-t', limits: opts.limits, log, packMaxBytes: opts.packMaxBytes });
  const metrics = new Registry('storage-node');
  const server = createStorageNodeServer(store, { log, metrics, secret: TEST_SECRET, localStores: opts.localStores });
  const url = await listen(server, '127.0.0.1', 0);
  const client = new StorageNodeClient(url, { secret: TEST_SECRET, timeoutMs: 5000 });
  t.teardown(async () => {
    await client.close();
    await close(server);
    await store.close();
  });
  return { dir, store, url, client, metrics };
}


async function tmpFiles(dir: string): Promise<string[]> {
  return fs.readdir(path.join(dir, 'tmp'));
}

async function until(check: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}


t.test('put/get round trip of multi-block shards, head and pool', async (t) => {
  const { client, url } = await startNode(t);
  const data = randomBytes(3500);
  const put = await client.putShard('obj1.v1.s0.i0', 1000, chunks(frame(data, 1000)));
  t.equal(put.dataLength, 3500);
  t.equal(put.blockSize, 1000);
  t.equal(put.storedLength, HEADER_BYTES + 3500 + 4 * 4);
  t.same(put.blockCrcs, [0, 1, 2, 3].map((i) => blockCrc(data.subarray(i * 1000, i * 1000 + 1000))));
  t.ok((await client.readShard('obj1.v1.s0.i0')).equals(data), 'whole shard reads back');

  const big = randomBytes(3 * 1024 * 1024 + 123);
  await client.putShard('big', 256 * 1024, chunks(frame(big, 256 * 1024), 65536));
  t.ok((await client.readShard('big')).equals(big), 'multi-batch shard reads back');
  let streamed = 0;
  for await (const c of await client.streamShard('big', { start: 100, end: 2_000_000 })) streamed += c.length;
  t.equal(streamed, 2_000_000 - 100 + 1);

  const info = await client.headShard('obj1.v1.s0.i0');
  t.match(info, { id: 'obj1.v1.s0.i0', blockSize: 1000, dataLength: 3500, storedLength: put.storedLength });
  t.ok(info && !Number.isNaN(Date.parse(info.mtime)));
  t.equal(await client.headShard('nope'), null);

  // Exactly one full block, and an empty shard, are valid shards too.
  await client.putShard('one', 8, chunks(frame(Buffer.from('12345678'), 8)));
  t.equal((await client.readShard('one')).toString(), '12345678');
  const empty = await client.putShard('empty', 8, chunks(Buffer.alloc(0)));
  t.equal(empty.dataLength, 0);
  t.equal((await client.readShard('empty')).length, 0);

  // Replacing a shard (repair rewrites) is allowed.
  await client.putShard('one', 4, chunks(frame(Buffer.from('abcdefgh'), 4)));
  t.equal((await client.readShard('one')).toString(), 'abcdefgh');

  const pool = new StorageNodePool({ secret: TEST_SECRET });
  t.equal(pool.get(url), pool.get(url + '/'), 'one client per node');
  t.equal((await pool.get(url).headShard('one'))?.blockSize, 4);
  await pool.close();
});

t.test('shard files: direct and buffered writes store the same bytes at every alignment and stage boundary', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  const direct = await probeDirectIo(dir);
  t.comment(`direct writes in ${os.tmpdir()}: ${direct ? 'yes' : 'no (buffered only)'}`);
  const modes: IoMode[] = direct ? ['direct', 'buffered'] : ['buffered'];
  const body = HEADER_BYTES;
  const sizes = [0, 1, DIRECT_ALIGN - body - 1, DIRECT_ALIGN - body, DIRECT_ALIGN - body + 1, STAGE_BYTES - body - 1, STAGE_BYTES - body, STAGE_BYTES - body + 1, 2 * STAGE_BYTES + 4097, 3 * STAGE_BYTES - body];
  for (const mode of modes) {
    for (const [n, size] of sizes.entries()) {
      const data = randomBytes(size);
      const header = randomBytes(HEADER_BYTES);
      const file = path.join(dir, `${mode}-${n}`);
      const shard = await createShardFile(file, mode, HEADER_BYTES);
      t.equal(shard.mode, mode);
      // Chunks of odd sizes, and the caller reusing nothing: each append's bytes must be taken as they are.
      for (let at = 0, step = 1; at < size; at += step, step = (step * 7 + 3) % 200_000 || 1) await shard.append(data.subarray(at, at + step));
      await shard.finish(header);
      await shard.close();
      await shard.close();
      const back = await fs.readFile(file);
      t.ok(back.length === HEADER_BYTES + size && back.subarray(0, HEADER_BYTES).equals(header) && back.subarray(HEADER_BYTES).equals(data), `${mode}, ${size} bytes: header and body read back exactly`);
    }
  }
  await t.rejects(createShardFile(path.join(dir, 'direct-0'), modes[0]!, HEADER_BYTES), { code: 'EEXIST' }, 'an existing file is never overwritten');
});

t.test('a store opened without direct writes writes through the page cache, with the same results', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  const store = await ShardStore.open({ dir, nodeId: 'node-b', log, directWrites: false });
  t.equal(store.writeMode, 'buffered');
  const data = randomBytes(2 * 1024 * 1024 + 5);
  const put = await store.put('buffered-shard', 65536, chunks(frame(data, 65536), 10_000));
  t.equal(put.dataLength, data.length);
  t.equal(store.largeReadMode, (await probeDirectIo(dir)) ? 'direct' : 'buffered', 'reads are a separate choice');
  const reader = await store.openRead('buffered-shard');
  const got: Buffer[] = [];
  for await (const c of reader) got.push(Buffer.from(c.data));
  t.ok(Buffer.concat(got).equals(data), 'reads back');
  const auto = await ShardStore.open({ dir: await tempDir(t, 'cairn-sn-'), nodeId: 'node-c', log });
  t.equal(auto.writeMode, (await probeDirectIo(dir)) ? 'direct' : 'buffered', 'by default the probe decides');
});

t.test('shard file reads: direct and buffered give the same bytes at every alignment, length and end of file', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  const direct = await probeDirectIo(dir);
  const modes: IoMode[] = direct ? ['direct', 'buffered'] : ['buffered'];
  const file = path.join(dir, 'content');
  const content = randomBytes(3 * READ_BUFFER_BYTES + 123);
  await fs.writeFile(file, content);
  const A = DIRECT_ALIGN;
  const cases: [number, number][] = [
    [0, 0], [0, 1], [0, 32], [5, A], [A - 1, 2], [A, A], [A + 1, A - 2], [100, STAGE_BYTES],
    [A - 1, READ_BUFFER_BYTES - 2 * A + 2], [7, READ_BUFFER_BYTES], [3, 2 * READ_BUFFER_BYTES + 5],
    [content.length - 10, 10], [content.length - 10, 100], [content.length, 5], [content.length + A, 5],
    [content.length - content.length % A, A],
  ];
  for (const mode of modes) {
    const reader = await openShardFileForRead(file, mode);
    t.equal(reader.mode, mode);
    for (const [position, length] of cases) {
      const got = await reader.read(position, length);
      t.ok(got.bytes.equals(content.subarray(position, position + length)), `${mode}: ${length} bytes at ${position}`);
      got.release();
    }
    await reader.close();
    await reader.close();
    await t.rejects(reader.read(0, 1), `${mode}: no read after close`);
  }
});

t.test('a shared read goes back once every holder has released it, each holder counting once', async (t) => {
  let released = 0;
  const [a, b, c] = shareRelease({ bytes: Buffer.alloc(1), release: () => released++ }, 3);
  a!();
  a!();
  b!();
  t.equal(released, 0, 'two of three holders, one of them twice');
  c!();
  c!();
  t.equal(released, 1, 'the last holder releases the read, once');
});

t.test('pooled read buffers are reused only after release, and a double release does not hand one out twice', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  if (!(await probeDirectIo(dir))) return void t.pass('no O_DIRECT here: reads are never pooled');
  const file = path.join(dir, 'content');
  const content = randomBytes(4 * STAGE_BYTES);
  await fs.writeFile(file, content);
  const reader = await openShardFileForRead(file, 'direct');
  t.teardown(() => reader.close());
  const first = await reader.read(0, STAGE_BYTES);
  const kept = await reader.read(STAGE_BYTES, STAGE_BYTES);
  first.release();
  first.release();
  const second = await reader.read(2 * STAGE_BYTES, STAGE_BYTES);
  const third = await reader.read(3 * STAGE_BYTES, STAGE_BYTES);
  t.equal(second.bytes.buffer, first.bytes.buffer, 'a released buffer serves the next read');
  t.not(third.bytes.buffer, first.bytes.buffer, 'released twice, still handed out once');
  t.not(second.bytes.buffer, kept.bytes.buffer);
  t.ok(kept.bytes.equals(content.subarray(STAGE_BYTES, 2 * STAGE_BYTES)), 'bytes still held are untouched by later reads');
  t.ok(second.bytes.equals(content.subarray(2 * STAGE_BYTES, 3 * STAGE_BYTES)));
  t.ok(third.bytes.equals(content.subarray(3 * STAGE_BYTES)));
  for (const r of [kept, second, third]) r.release();
});

t.test('large shards read directly: whole, ranged and held chunks stay exact; small shards and opt-out stay buffered', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  const store = await ShardStore.open({ dir, nodeId: 'node-d', log });
  const blockSize = 65536 + 3;
  const data = randomBytes(5 * 1024 * 1024 + 17);
  await store.put('large', blockSize, chunks(frame(data, blockSize), 77_777));
  const small = randomBytes(DIRECT_READ_MIN_BYTES / 4);
  await store.put('small', 4096, chunks(frame(small, 4096)));
  t.comment(`large reads: ${store.largeReadMode}`);
  // Every chunk is held until the end: no pooled buffer may be overwritten while it is unreleased.
  const held: { data: Buffer; copy: Buffer; release(): void }[] = [];
  for await (const c of await store.openRead('large')) held.push({ ...c, copy: Buffer.from(c.data) });
  t.ok(Buffer.concat(held.map((c) => c.data)).equals(data), 'whole shard, every chunk held');
  t.ok(held.every((c) => c.data.equals(c.copy)), 'held chunks unchanged after the read finished');
  for (const c of held) c.release();
  const ranges: [number, number][] = [[0, 0], [blockSize - 1, blockSize], [4095, 4096 * 300 + 5], [1024 * 1024 - 1, 3 * 1024 * 1024], [data.length - 1, data.length - 1]];
  for (const [start, end] of ranges) {
    const got: Buffer[] = [];
    for await (const c of await store.openRead('large', { start, end })) {
      got.push(Buffer.from(c.data));
      c.release();
    }
    t.ok(Buffer.concat(got).equals(data.subarray(start, end + 1)), `bytes ${start}-${end}`);
  }
  const got: Buffer[] = [];
  for await (const c of await store.openRead('small')) got.push(Buffer.from(c.data));
  t.ok(Buffer.concat(got).equals(small), 'small shard');
  t.same((await store.verify('large')).corruptBlocks, [], 'verify reads the same way');
  const off = await ShardStore.open({ dir: await tempDir(t, 'cairn-sn-'), nodeId: 'node-e', log, directReads: false });
  t.equal(off.largeReadMode, 'buffered', 'directReads: false');
  t.equal(off.writeMode, store.writeMode, 'writes are decided on their own');
});

t.test('ranged reads across block boundaries', async (t) => {
  const { client, url } = await startNode(t);
  const data = randomBytes(3500);
  await client.putShard('r', 1000, chunks(frame(data, 1000)));
  const cases: [number, number][] = [[0, 0], [999, 1000], [998, 2001], [1000, 1999], [3000, 3499], [3499, 3499], [0, 3499], [17, 3333]];
  for (const [start, end] of cases) {
    t.ok((await client.readShard('r', { start, end })).equals(data.subarray(start, end + 1)), `bytes ${start}-${end}`);
  }
  t.ok((await client.readShard('r', { start: 3400, end: 9999 })).equals(data.subarray(3400)), 'end is clamped');
  await t.rejects(client.readShard('r', { start: 3500, end: 3600 }), { code: 'InvalidRange', status: 416 });
  await t.rejects(client.readShard('r', { start: 10, end: 5 }), { code: 'InvalidRange' });

  const suffix = await rawRequest(`${url}/shards/r`, { headers: { range: 'bytes=-10' } });
  t.equal(suffix.statusCode, 206);
  t.equal(suffix.headers['content-range'], 'bytes 3490-3499/3500');
  t.equal(suffix.headers['x-cairn-data-length'], '3500');
  t.equal(suffix.headers['content-length'], '10');
  t.ok(Buffer.from(await suffix.body.arrayBuffer()).equals(data.subarray(3490)));
  const open = await rawRequest(`${url}/shards/r`, { headers: { range: 'bytes=3000-' } });
  t.equal(open.statusCode, 206);
  t.ok(Buffer.from(await open.body.arrayBuffer()).equals(data.subarray(3000)));
  const multi = await rawRequest(`${url}/shards/r`, { headers: { range: 'bytes=0-1,5-6' } });
  t.equal(multi.statusCode, 416);
  t.match(await multi.body.json(), { code: 'InvalidRange' });
  const full = await rawRequest(`${url}/shards/r`);
  t.equal(full.statusCode, 200);
  t.equal(full.headers['x-cairn-block-size'], '1000');
  await full.body.dump();
});

t.test('a bad CRC or a torn final frame in an upload is refused and nothing is stored', async (t) => {
  const { client, dir, store } = await startNode(t);
  const framed = frame(randomBytes(3500), 1000);
  framed[2 * 1004 + 10] ^= 1;
  await t.rejects(client.putShard('bad', 1000, chunks(framed)), { code: 'BadFrame', status: 400, details: { block: 2 } });
  t.equal(await client.headShard('bad'), null);
  t.same(await tmpFiles(dir), []);

  const torn = Buffer.concat([frame(randomBytes(1000), 1000), Buffer.from([1, 2, 3])]);
  await t.rejects(client.putShard('torn', 1000, chunks(torn)), { code: 'BadFrame', details: { block: 1 } });

  // A bad first frame of a larger upload still gets its error reply, not a reset.
  const large = frame(randomBytes(4 * 1024 * 1024), 64 * 1024);
  large[5] ^= 1;
  await t.rejects(client.putShard('bad-large', 64 * 1024, chunks(large, 65536)), { code: 'BadFrame' });
  t.equal(store.shardCount, 0);
  t.same(await tmpFiles(dir), []);
  await t.rejects(client.putShard('x', 0, chunks(Buffer.alloc(0))), { code: 'InvalidArgument' });
  await t.rejects(client.putShard('x', 64 * 1024 * 1024, chunks(Buffer.alloc(0))), { code: 'InvalidArgument' });
});

t.test('whole small shards written at once go in batches, each stored and answered as if alone', async (t) => {
  const { url, metrics } = await startNode(t);
  // One write out at a time: everything written meanwhile waits and goes together.
  const client = new StorageNodeClient(url, { secret: TEST_SECRET, timeoutMs: 5000, batchInFlight: 1 });
  t.teardown(() => client.close());
  const datas = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 97));
  const good = datas.map((data, i) => client.putWholeShard(`batched-${i}`, 1024, frame(data, 1024)));
  const bent = frame(randomBytes(3000), 1024);
  bent[1028 + 5] ^= 1;
  const bad = client.putWholeShard('batched-bad', 1024, bent);
  const wrongSize = client.putWholeShard('batched-size', 0, frame(randomBytes(10), 1024));
  const answers = await Promise.all(good);
  await t.rejects(bad, { code: 'BadFrame', status: 400, details: { block: 1 } }, 'a bad frame fails its own item, with the code it gets alone');
  await t.rejects(wrongSize, { code: 'InvalidArgument', status: 400 });
  answers.forEach((a, i) => t.match(a, { id: `batched-${i}`, blockSize: 1024, dataLength: datas[i]!.length }));
  for (const [i, data] of datas.entries()) t.ok((await client.readShard(`batched-${i}`)).equals(data), `shard ${i} reads back`);
  t.equal(await client.headShard('batched-bad'), null, 'nothing stored for the bad item');
  const { requests, items } = client.wholePutStats;
  t.equal(items, 42);
  t.ok(requests <= 4, `42 shards went in ${requests} requests`);
  t.match(metrics.render(), new RegExp(`cairn_storage_put_batches_total ${requests - 1}\\b`), 'the node counts the batches (all but the first, lone, write)');

  // A shard too large to batch goes alone; an invalid id fails before anything is sent.
  const large = randomBytes(300 * 1024);
  await client.putWholeShard('whole-large', 64 * 1024, frame(large, 64 * 1024));
  t.ok((await client.readShard('whole-large')).equals(large));
  t.equal(client.wholePutStats.items, 42, 'not through the batcher');
  await t.rejects(client.putWholeShard('../x', 1024, frame(randomBytes(10), 1024)), { code: 'InvalidShardId' });
});

t.test('small reads asked for at once go in batches, each verified and answered as if alone', async (t) => {
  const { url, store, metrics } = await startNode(t);
  const client = new StorageNodeClient(url, { secret: TEST_SECRET, timeoutMs: 5000, batchInFlight: 1 });
  t.teardown(() => client.close());
  const datas = Array.from({ length: 30 }, (_, i) => randomBytes(2000 + i * 131));
  for (const [i, data] of datas.entries()) await client.putShard(`r-${i}`, 1024, chunks(frame(data, 1024)));
  await client.putShard('r-rot', 1024, chunks(frame(randomBytes(3000), 1024)));
  await flipStoredByte(store, 'r-rot', HEADER_BYTES + 1028 + 3);
  const ranges = datas.map((d, i) => ({ start: i % 3 === 0 ? 0 : 100 + i, end: i % 3 === 1 ? d.length + 500 : d.length - 1 - i }));
  const reads = datas.map((_, i) => client.readShardChunks(`r-${i}`, ranges[i]));
  const missing = client.readShardChunks('r-none', { start: 0, end: 99 });
  const rotten = client.readShardChunks('r-rot', { start: 0, end: 2999 });
  const beyond = client.readShardChunks('r-0', { start: 50_000, end: 50_100 });
  const answers = await Promise.all(reads);
  answers.forEach((chunks, i) => {
    const { start, end } = ranges[i]!;
    t.ok(Buffer.concat(chunks).equals(datas[i]!.subarray(start, end + 1)), `read ${i}: bytes ${start}-${end}, clamped to the shard as HTTP ranges are`);
  });
  await t.rejects(missing, { code: 'NoSuchShard', status: 404 });
  await t.rejects(rotten, { code: 'CorruptBlock', status: 409 });
  await t.rejects(beyond, { code: 'InvalidRange', status: 416 });
  const { requests, items } = client.smallReadStats;
  t.equal(items, 33);
  t.ok(requests <= 4, `33 reads went in ${requests} requests`);
  t.match(metrics.render(), new RegExp(`cairn_storage_read_batches_total ${requests - 1}\\b`));
  t.match(metrics.render(), /cairn_storage_corrupt_blocks_total 1\b/, 'a corrupt block found by a batched read is counted');

  // A read given up while it waits is never sent; a large range goes alone, as a stream.
  const slow = client.readShardChunks('r-1', { start: 0, end: 10 });
  const given = new AbortController();
  const dropped = client.readShardChunks('r-2', { start: 0, end: 10 }, given.signal);
  given.abort(new Error('timed out'));
  await t.rejects(dropped, { message: 'timed out' });
  t.ok(Buffer.concat(await slow).equals(datas[1]!.subarray(0, 11)));
  t.equal(client.smallReadStats.items, 34, 'the withdrawn read was not sent');
  const large = randomBytes(200 * 1024);
  await client.putShard('r-large', 64 * 1024, chunks(frame(large, 64 * 1024), 65536));
  t.ok((await client.readShard('r-large', { start: 0, end: large.length - 1 })).equals(large));
  t.equal(client.smallReadStats.items, 34, 'not through the batcher');

  const tooMuch = await rawRequest(`${url}/batch/reads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reads: Array.from({ length: 8 }, () => ({ id: 'r-1', start: 0, end: 128 * 1024 })) }) });
  t.equal(tooMuch.statusCode, 400);
  t.match(await tooMuch.body.json(), { code: 'InvalidArgument' });
  for (const bad of [{}, { reads: [] }, { reads: [{ id: 'r-1', start: 5, end: 4 }] }, { reads: [{ id: 'r-1' }] }]) {
    const res = await rawRequest(`${url}/batch/reads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bad) });
    t.equal(res.statusCode, 400, JSON.stringify(bad));
    await res.body.dump();
  }
});

t.test('read batch replies: encode and decode round trip; a reply that does not add up is refused', async (t) => {
  const error = { status: 404, code: 'NoSuchShard', message: 'no shard x' };
  const parts = encodeReadResults([{ ok: [Buffer.from('ab'), Buffer.from('cde')] }, { error }, { ok: [] }]);
  const reply = Buffer.concat(parts);
  const back = decodeReadResults(reply, 3);
  t.same(back.map((r) => ('ok' in r ? r.ok.toString() : r.error.code)), ['abcde', 'NoSuchShard', '']);
  t.throws(() => decodeReadResults(reply, 2), ShardBatchError, 'an answer count that does not match');
  t.throws(() => decodeReadResults(reply.subarray(0, reply.length - 1), 3), ShardBatchError, 'a cut reply');
  t.throws(() => decodeReadResults(Buffer.concat([reply, Buffer.from('x')]), 3), ShardBatchError, 'bytes past the last answer');
});

t.test('a malformed shard batch is refused whole: InvalidArgument, nothing stored', async (t) => {
  const { url, store } = await startNode(t);
  const one = { id: 'm1', blockSize: 1024, framed: frame(randomBytes(100), 1024) };
  const body = encodeShardBatch([one, { ...one, id: 'm2' }]);
  const cases: [string, Buffer][] = [
    ['empty body', Buffer.alloc(0)],
    ['manifest longer than the body', body.subarray(0, 20)],
    ['a shard cut short', body.subarray(0, body.length - 1)],
    ['bytes past the last shard', Buffer.concat([body, Buffer.from([0])])],
    ['manifest not JSON', Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from('{x]')])],
    ['no shards', encodeRawManifest({ shards: [] })],
    ['a shard without a length', encodeRawManifest({ shards: [{ id: 'm3', blockSize: 1024 }] })],
    ['too many shards', encodeRawManifest({ shards: Array.from({ length: MAX_SHARD_BATCH + 1 }, (_, i) => ({ id: `z${i}`, blockSize: 1024, length: 0 })) })],
  ];
  for (const [what, bad] of cases) {
    const res = await rawRequest(`${url}/batch/shards`, { method: 'POST', body: bad });
    t.equal(res.statusCode, 400, what);
    t.match(await res.body.json(), { code: 'InvalidArgument' }, what);
  }
  t.equal(store.shardCount, 0);
  const unsigned = await rawRequest(`${url}/batch/shards`, { method: 'POST', body, secret: null });
  t.equal(unsigned.statusCode, 401, 'an unsigned batch is refused');
  await unsigned.body.dump();
  t.equal(store.shardCount, 0);
});

t.test('a shard batch body travels unsigned, but its manifest is signed: a changed id or length is refused, nothing stored', async (t) => {
  const { url, store } = await startNode(t);
  const one = { id: 'u1', blockSize: 1024, framed: frame(randomBytes(100), 1024) };
  const body = encodeShardBatch([one, { ...one, id: 'u2' }]);
  const manifestSha = sha256Hex(shardBatchManifestHead(body));
  const post = (bytes: Buffer, headers: Record<string, string>) =>
    rawRequest(`${url}/batch/shards`, { method: 'POST', body: bytes, streamed: true, headers: { 'content-type': 'application/octet-stream', ...headers } });

  const noDigest = await post(body, {});
  t.equal(noDigest.statusCode, 401);
  t.match(await noDigest.body.json(), { code: 'ClusterAuthMissing' });
  const forged = encodeShardBatch([one, { ...one, id: 'victim' }]);
  t.equal(forged.length, body.length + 4, 'same frames, another id');
  const swapped = await post(forged, { [BATCH_MANIFEST_SHA256_HEADER]: manifestSha });
  t.equal(swapped.statusCode, 403, 'a manifest naming other ids than the signed one');
  t.match(await swapped.body.json(), { code: 'ClusterBodyMismatch' });
  t.equal(store.shardCount, 0);

  const ok = await post(body, { [BATCH_MANIFEST_SHA256_HEADER]: manifestSha });
  t.equal(ok.statusCode, 200);
  t.same(((await ok.body.json()) as { results: unknown[] }).results.map((r) => 'ok' in (r as object)), [true, true]);
  t.equal(store.shardCount, 2);
  // A frame damaged on the way is caught by its CRC, as in a streamed shard: that shard is refused, the other stored.
  const damaged = encodeShardBatch([{ ...one, id: 'u3' }, { ...one, id: 'u4', framed: Buffer.from(one.framed) }]);
  damaged[damaged.length - 10]! ^= 1;
  const res = await post(damaged, { [BATCH_MANIFEST_SHA256_HEADER]: sha256Hex(shardBatchManifestHead(damaged)) });
  const { results } = (await res.body.json()) as { results: ({ ok: unknown } | { error: { code: string } })[] };
  t.ok('ok' in results[0]!);
  t.match(results[1], { error: { code: 'BadFrame' } });
  t.equal(store.shardCount, 3);
});

function encodeRawManifest(manifest: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(manifest));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(json.length);
  return Buffer.concat([prefix, json]);
}

t.test('shard batch bodies: encode and decode round trip; the shards are views of the body', async (t) => {
  const shards = [0, 1, 5000].map((n, i) => ({ id: `rt-${i}`, blockSize: 4096, framed: randomBytes(n) }));
  const body = encodeShardBatch(shards);
  const back = decodeShardBatch(body);
  t.same(back.map((s) => [s.id, s.blockSize, s.framed.length]), shards.map((s) => [s.id, s.blockSize, s.framed.length]));
  back.forEach((s, i) => t.ok(s.framed.equals(shards[i]!.framed)));
  t.equal(back[2]!.framed.buffer, body.buffer, 'no copy');
  t.throws(() => decodeShardBatch(body.subarray(0, 3)), ShardBatchError);
});

t.test('a node rebuilds a shard from k others on other nodes: the same bytes, progress, a failed source named, pacing', async (t) => {
  const layout = { k: 4, m: 2, blockSize: 4096 };
  const segmentSize = 3 * 4 * 4096 + 1000; // four stripes, the last one short
  const data = randomBytes(segmentSize);
  const framed: Buffer[][] = Array.from({ length: 6 }, () => []);
  for await (const stripe of encodeStripes(chunks(data), layout)) for (let i = 0; i < 6; i++) framed[i]!.push(...shardFrame(stripe, i));
  const holders = [await startNode(t, { nodeId: 'h1' }), await startNode(t, { nodeId: 'h2' })];
  const holderOf = (i: number): Node => holders[i % 2]!;
  for (let i = 0; i < 6; i++) await holderOf(i).client.putShard(`s${i}`, layout.blockSize, chunks(Buffer.concat(framed[i]!)));
  const target = await startNode(t, { nodeId: 'target' });
  const sourcesFor = (indices: number[]) => indices.map((i) => ({ index: i, url: holderOf(i).url, shardId: `s${i}` }));

  const progress: number[] = [];
  const stored = await target.client.rebuildShard('r0', { ...layout, segmentSize, index: 0, sources: sourcesFor([1, 2, 4, 5]) }, undefined, (bytes) => progress.push(bytes));
  const original = await holderOf(0).client.readShard('s0');
  t.match(stored, { id: 'r0', dataLength: original.length });
  t.ok((await target.client.readShard('r0')).equals(original), 'the rebuilt data shard is the one written, from two data and two parity shards');
  t.same(progress, [...progress].sort((a, b) => a - b), 'progress only grows');
  t.match(target.metrics.render(), new RegExp(`cairn_storage_rebuild_source_bytes_total\\{source="remote"\\} ${4 * original.length}\\b`), 'k shards read from other nodes');
  t.equal(progress.at(-1), original.length, 'the last progress line counts every byte');
  const parity = await target.client.rebuildShard('r5', { ...layout, segmentSize, index: 5, sources: sourcesFor([0, 1, 2, 3]) });
  t.ok((await target.client.readShard('r5')).equals(await holderOf(5).client.readShard('s5')), 'a parity shard too');
  t.equal(parity.dataLength, original.length);

  const gone = sourcesFor([1, 2, 4]).concat({ index: 5, url: holderOf(5).url, shardId: 'not-there' });
  await t.rejects(target.client.rebuildShard('r1', { ...layout, segmentSize, index: 0, sources: gone }), {
    code: 'SourceFailed',
    details: { sourceIndex: 5, sourceCode: 'NoSuchShard' },
  }, 'a missing source is named, for the caller to retry without it');
  t.equal(await target.client.headShard('r1'), null, 'nothing is stored');
  await t.rejects(target.client.rebuildShard('r2', { ...layout, segmentSize, index: 0, sources: sourcesFor([1, 2, 4]) }), { code: 'InvalidArgument', status: 400 }, 'k sources are needed');
  await t.rejects(target.client.rebuildShard('r2', { ...layout, segmentSize, index: 1, sources: sourcesFor([1, 2, 4, 5]) }), { code: 'InvalidArgument' }, 'the wanted shard is not a source');
  const elsewhere = sourcesFor([1, 2, 4]).concat({ index: 5, url: 'file:///etc/passwd', shardId: 's5' });
  await t.rejects(target.client.rebuildShard('r2', { ...layout, segmentSize, index: 0, sources: elsewhere }), { code: 'InvalidArgument' }, 'sources are nodes reached over http(s)');

  // Paced: k blocks read and one written per stripe, at 100 kB/s after a burst of four blocks.
  const started = performance.now();
  await target.client.rebuildShard('r3', { ...layout, segmentSize, index: 3, sources: sourcesFor([0, 1, 2, 5]), bytesPerSecond: 100_000 });
  const floorMs = ((original.length * (layout.k + 1) - 4 * layout.blockSize) / 100_000) * 1000;
  t.ok(performance.now() - started >= floorMs * 0.9, `paced: ${(performance.now() - started).toFixed(0)} ms, at least ${floorMs.toFixed(0)}`);
  t.ok((await target.client.readShard('r3')).equals(await holderOf(3).client.readShard('s3')));
});

t.test('a rebuild reads sources on disks of its own process from their stores, CRC-checked, not over HTTP', async (t) => {
  const layout = { k: 4, m: 2, blockSize: 4096 };
  const segmentSize = 3 * 4 * 4096 + 1000;
  const data = randomBytes(segmentSize);
  const framed: Buffer[][] = Array.from({ length: 6 }, () => []);
  for await (const stripe of encodeStripes(chunks(data), layout)) for (let i = 0; i < 6; i++) framed[i]!.push(...shardFrame(stripe, i));
  // A disk of this process that no server serves: reaching it over HTTP would be refused.
  const neighbour = await ShardStore.open({ dir: await tempDir(t, 'cairn-sn-'), nodeId: 'disk-2', log, packMaxBytes: 0 });
  t.teardown(() => neighbour.close());
  const neighbourUrl = 'http://127.0.0.1:9'; // the discard port: nothing listens there
  for (let i = 0; i < 6; i++) await neighbour.put(`s${i}`, layout.blockSize, chunks(Buffer.concat(framed[i]!)));
  const target = await startNode(t, { nodeId: 'disk-1', localStores: (url) => (nodeUrlKey(url) === nodeUrlKey(neighbourUrl) ? neighbour : undefined) });
  const sources = (indices: number[], id = (i: number) => `s${i}`) => indices.map((i) => ({ index: i, url: `${neighbourUrl}/`, shardId: id(i) }));

  await target.client.rebuildShard('r0', { ...layout, segmentSize, index: 0, sources: sources([1, 2, 4, 5]) });
  const original = Buffer.concat(await readAll(neighbour, 's0'));
  t.ok((await target.client.readShard('r0')).equals(original), 'rebuilt from the other disk of the process');
  t.match(target.metrics.render(), new RegExp(`cairn_storage_rebuild_source_bytes_total\\{source="local"\\} ${4 * original.length}\\b`), 'k shards read from the local store');
  t.notMatch(target.metrics.render(), /source="remote"/, 'none over HTTP');
  await t.rejects(target.client.rebuildShard('r1', { ...layout, segmentSize, index: 0, sources: sources([1, 2, 4, 5], (i) => (i === 4 ? 'gone' : `s${i}`)) }), {
    code: 'SourceFailed',
    details: { sourceIndex: 4, sourceCode: 'NoSuchShard' },
  }, 'a missing local source is named with its store\'s code');
  // Rot in the last block of source 2: the store's read checks every block's CRC, as its GET would.
  await flipStoredByte(neighbour, 's2', HEADER_BYTES + 3 * (layout.blockSize + CRC_BYTES) + 5);
  await t.rejects(target.client.rebuildShard('r2', { ...layout, segmentSize, index: 0, sources: sources([1, 2, 4, 5]) }), {
    code: 'SourceFailed',
    details: { sourceIndex: 2, sourceCode: 'CorruptBlock' },
  }, 'a corrupt local source is named as corrupt');
  t.equal(await target.client.headShard('r2'), null, 'nothing is stored from it');

  // A local disk that hangs mid-read fails its source after the idle limit instead of holding the rebuild (and its caller, fed keepalives) forever.
  let hungClosed!: () => void;
  const closedInBackground = new Promise<void>((resolve) => (hungClosed = resolve));
  const hangingAfterFirstChunk = {
    openRead: async (id: string) => {
      const real = await neighbour.openRead(id);
      const chunks = real[Symbol.asyncIterator]();
      let served = 0;
      return Object.assign(Object.create(real) as ShardReader, {
        [Symbol.asyncIterator]: () => ({ next: () => (served++ === 0 ? chunks.next() : new Promise<never>(() => undefined)) }),
        close: () => real.close().finally(hungClosed),
      });
    },
  } as unknown as ShardStore;
  const hungUrl = 'http://127.0.0.1:7';
  const started = performance.now();
  const stop = new AbortController();
  const pool = new StorageNodePool({ secret: TEST_SECRET });
  t.teardown(() => pool.close());
  await t.rejects(
    rebuildShard(target.store, 'r4', { ...layout, segmentSize, index: 0, sources: [...sources([1, 3, 4]), { index: 5, url: hungUrl, shardId: 's5' }] }, {
      peers: pool,
      localStores: (url) => (nodeUrlKey(url) === nodeUrlKey(hungUrl) ? hangingAfterFirstChunk : nodeUrlKey(url) === nodeUrlKey(neighbourUrl) ? neighbour : undefined),
      localIdleMs: 300,
      signal: stop.signal,
      onProgress: () => undefined,
    }),
    { name: 'ShardSourceError', shardIndex: 5, cause: { code: 'Unavailable' } },
    'the hung source is named, Unavailable',
  );
  t.ok(performance.now() - started < 3000, `given up after ${(performance.now() - started).toFixed(0)} ms`);
  await closedInBackground;
  t.pass('the hung reader is closed in the background');
  t.equal(await target.store.stat('r4'), null, 'nothing is stored');
});

async function readAll(store: ShardStore, id: string): Promise<Buffer[]> {
  const reader = await store.openRead(id);
  const out: Buffer[] = [];
  try {
    for await (const chunk of reader) {
      out.push(Buffer.from(chunk.data));
      chunk.release();
    }
  } finally {
    await reader.close();
  }
  return out;
}

t.test('corruption on disk is detected by reads and by verify', async (t) => {
  const { client, store, url } = await startNode(t);
  const data = randomBytes(4000);
  await client.putShard('c', 1000, chunks(frame(data, 1000)));
  await flipStoredByte(store, 'c', HEADER_BYTES + 2 * 1004 + 10);

  await t.rejects(client.readShard('c'), { name: 'StorageNodeError', code: 'CorruptBlock', status: 409, details: { block: 2 } });
  await t.rejects(client.readShard('c', { start: 1990, end: 2010 }), { code: 'CorruptBlock', details: { block: 2 } });
  t.ok((await client.readShard('c', { start: 0, end: 1999 })).equals(data.subarray(0, 2000)), 'healthy blocks still read');
  t.ok((await client.readShard('c', { start: 3000, end: 3999 })).equals(data.subarray(3000)));
  const verified = await client.verifyShard('c');
  t.match(verified, { id: 'c', blocks: 4, corruptBlocks: [2] });
  t.equal(Buffer.from(verified.blockCrcs!, 'base64').length, 4 * 4, 'the stored CRC of every block is returned for the integrity chain');
  t.equal(Buffer.from(verified.blockCrcs!, 'base64').readUInt32LE(0), blockCrc(data.subarray(0, 1000)), 'block 0 CRC as stored');

  // A CRC byte counts as the block's corruption too; several blocks are all reported.
  await flipStoredByte(store, 'c', HEADER_BYTES + 1004 + 1001);
  t.same((await client.verifyShard('c')).corruptBlocks, [1, 2]);

  // A damaged header spoils the whole shard.
  await client.putShard('h', 1000, chunks(frame(data, 1000)));
  await flipStoredByte(store, 'h', 13);
  await t.rejects(client.readShard('h'), { code: 'CorruptBlock', details: { block: -1 } });
  t.match(await client.verifyShard('h'), { corruptBlocks: [-1], headerCorrupt: true });
  await t.rejects(client.headShard('h'), { code: 'CorruptBlock' });
  t.match((await client.listShards()).shards.find((s) => s.id === 'h'), { blockSize: 0, dataLength: 0 });

  const metrics = await (await request(`${url}/metrics`)).body.text();
  t.match(metrics, /cairn_storage_corrupt_blocks_total \d+/);
  t.match(metrics, /cairn_storage_bytes_written_total \d+/);
});

t.test('reading ahead: a bad batch read early surfaces in turn, and a reader left early closes its file', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  const store = await ShardStore.open({ dir, nodeId: 'node-ahead', log });
  const MiB = 1024 * 1024;
  const data = randomBytes(12 * MiB);
  await store.put('long', MiB, chunks(frame(data, MiB), 256 * 1024));
  await flipStoredByte(store, 'long', HEADER_BYTES + 10 * (MiB + 4) + 7);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  // A slow consumer: block 10's read fails while nobody waits for it, and must not count as unhandled.
  const got: Buffer[] = [];
  const slow = (async () => {
    for await (const c of await store.openRead('long')) {
      got.push(Buffer.from(c.data));
      c.release();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  await t.rejects(slow, { code: 'CorruptBlock', details: { block: 10 } }, 'the bad block fails the read when its turn comes');
  t.ok(Buffer.concat(got).equals(data.subarray(0, 10 * MiB)), 'every block before it was delivered');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(unhandled, [], 'no unhandled rejection from the read ahead');

  const fds = async (): Promise<number> => (await fs.readdir('/proc/self/fd')).length;
  // The failed reader above (and files of earlier tests) close once their reads settle: count only
  // once the number has held for 200 ms, which it may take a while to do on a loaded machine.
  const settledFds = async (): Promise<number> => {
    let last = await fds();
    for (let steady = 0, tries = 0; steady < 8 && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      const now = await fds();
      steady = now === last ? steady + 1 : 0;
      last = now;
    }
    return last;
  };
  const before = await settledFds();
  for (let i = 0; i < 5; i++) {
    for await (const c of await store.openRead('long', { start: 0, end: 9 * MiB })) {
      c.release();
      break; // left after one chunk, with reads still ahead
    }
  }
  t.equal(await fds(), before, 'every reader left early closed its file');
});

t.test('corruption past the pre-verified bytes cuts the stream instead of passing bad data; within them it is a clean 409', async (t) => {
  const { client, store, url } = await startNode(t);
  const MiB = 1024 * 1024;
  const verifiedBlocks = PREVERIFIED_READ_BYTES / MiB;
  t.equal(verifiedBlocks, 2, 'one gateway read window of 1 MiB blocks');
  const data = randomBytes(12 * MiB);
  await client.putShard('long', MiB, chunks(frame(data, MiB), 256 * 1024));
  await flipStoredByte(store, 'long', HEADER_BYTES + 10 * (MiB + 4) + 7);
  await t.rejects(client.readShard('long'), { code: 'Unavailable', details: { cut: true } });
  t.ok((await client.readShard('long', { start: 0, end: 10 * MiB - 1 })).equals(data.subarray(0, 10 * MiB)), 'every block before the bad one streams');
  await t.rejects(client.readShard('long', { start: 9 * MiB, end: 11 * MiB }), { code: 'CorruptBlock', details: { block: 10 } });
  t.same((await client.verifyShard('long')).corruptBlocks, [10]);

  // The last pre-verified block: a whole-shard read is refused before any byte is sent.
  await client.putShard('early', MiB, chunks(frame(data, MiB), 256 * 1024));
  await flipStoredByte(store, 'early', HEADER_BYTES + (verifiedBlocks - 1) * (MiB + 4) + 7);
  await t.rejects(client.readShard('early'), { code: 'CorruptBlock', status: 409, details: { block: verifiedBlocks - 1 } });
  // The first block past them: the answer has started, so the response is cut.
  await client.putShard('late', MiB, chunks(frame(data, MiB), 256 * 1024));
  await flipStoredByte(store, 'late', HEADER_BYTES + verifiedBlocks * (MiB + 4) + 7);
  await t.rejects(client.readShard('late'), { code: 'Unavailable', details: { cut: true } });

  // A kept file renamed over from outside: read afresh, and counted.
  const moved = randomBytes(2 * MiB);
  await client.putShard('moved', MiB, chunks(frame(data.subarray(0, 2 * MiB), MiB), 256 * 1024));
  await client.putShard('mover', MiB, chunks(frame(moved, MiB), 256 * 1024));
  t.ok((await client.readShard('moved', { start: 0, end: 99 })).equals(data.subarray(0, 100)));
  await fs.rename(store.shardPath('mover'), store.shardPath('moved'));
  t.ok((await client.readShard('moved', { start: 0, end: 99 })).equals(moved.subarray(0, 100)), 'the file renamed over it is read');

  const metrics = await (await request(`${url}/metrics`)).body.text();
  t.match(metrics, /cairn_storage_shard_file_reuses_total [1-9]/, 'the reads of "long" after the first found its file open');
  t.match(metrics, /cairn_storage_open_shard_files [1-9]/);
  t.match(metrics, /cairn_storage_shard_files_changed_total 1\n/, 'the kept file of "moved" found changed from outside, once');
});

/** A shard's data bytes [start, end], read through the store. */
async function readRange(store: ShardStore, id: string, start: number, end: number): Promise<Buffer> {
  const got: Buffer[] = [];
  for await (const c of await store.openRead(id, { start, end })) {
    got.push(Buffer.from(c.data));
    c.release();
  }
  return Buffer.concat(got);
}

t.test('a read keeps its shard file open for the next; a rewrite, a delete or a change from outside is never served from it', async (t) => {
  const dir = await tempDir(t, 'cairn-kept-');
  // packMaxBytes 0: every shard is a file.
  const store = await ShardStore.open({ dir, nodeId: 'node-kept', log, packMaxBytes: 0 });
  t.teardown(() => store.close());
  const put = (id: string, data: Buffer) => store.put(id, 1000, chunks(frame(data, 1000)));
  const a = randomBytes(5000);
  await put('k', a);
  t.ok((await readRange(store, 'k', 100, 2999)).equals(a.subarray(100, 3000)));
  t.ok((await readRange(store, 'k', 4000, 4999)).equals(a.subarray(4000)));
  t.match(store.openFileStats, { kept: 1, reused: 1, stale: 0 }, 'the second read found the file open');
  t.equal(store.openFileCount, 1);

  const b = randomBytes(5000);
  await put('k', b);
  t.ok((await readRange(store, 'k', 0, 4999)).equals(b), 'a rewrite is read from its new file');
  t.match(store.openFileStats, { kept: 2, reused: 1 }, 'the old file was dropped by the rewrite, not found stale');

  // Renamed over from outside the store: the kept file has no name any more.
  const c = randomBytes(5000);
  await put('other', c);
  await fs.rename(store.shardPath('other'), store.shardPath('k'));
  t.ok((await readRange(store, 'k', 0, 4999)).equals(c), 'a file renamed over the shard is read, not the kept one');
  t.equal(store.openFileStats.stale, 1);

  // Removed from outside: gone, although a file was kept open.
  await readRange(store, 'k', 0, 9);
  await fs.rm(store.shardPath('k'));
  await t.rejects(store.openRead('k'), { code: 'NoSuchShard' }, 'a shard whose file was removed is not read from the kept one');

  // Damage in place is seen by reads (every frame is checked as read) and by verify, which opens afresh.
  await put('d', a);
  t.ok((await readRange(store, 'd', 0, 999)).equals(a.subarray(0, 1000)));
  await flipStoredByte(store, 'd', HEADER_BYTES + 2 * 1004 + 10);
  await t.rejects(readRange(store, 'd', 2000, 2999), { code: 'CorruptBlock', details: { block: 2 } });
  await flipStoredByte(store, 'd', 13);
  t.match(await store.verify('d'), { corruptBlocks: [-1], headerCorrupt: true }, 'a header damaged after a read kept the file is found by verify');

  const kept = store.openFileCount;
  t.ok(await store.delete('d'));
  t.equal(store.openFileCount, kept - 1, 'a delete drops the kept file');
  await t.rejects(store.openRead('d'), { code: 'NoSuchShard' });
});

t.test('kept shard files are bounded: least recently used closed first, idle ones closed, one in use closed when its reader is done', { skip: process.platform !== 'linux' && 'counts /proc/self/fd' }, async (t) => {
  const openFds = async (): Promise<number> => (await fs.readdir('/proc/self/fd')).length;
  const dir = await tempDir(t, 'cairn-kept-');
  // An idle time well above what the reads below take on a loaded machine, so that only the wait for it closes files.
  const store = await ShardStore.open({ dir, nodeId: 'node-kept', log, packMaxBytes: 0, openFiles: { max: 3, idleMs: 1000 } });
  let closed = false;
  t.teardown(() => (closed ? undefined : store.close()));
  const data = Array.from({ length: 5 }, () => randomBytes(3000));
  for (const [i, d] of data.entries()) await store.put(`s${i}`, 1000, chunks(frame(d, 1000)));
  const before = await openFds();

  // A reader of s0 holds its kept file while four other shards are read: s0 is pushed out of the
  // three kept, but stays open, and readable, until its reader is done.
  const holding = await store.openRead('s0', { start: 0, end: 2999 });
  for (let i = 1; i < 5; i++) t.ok((await readRange(store, `s${i}`, 0, 2999)).equals(data[i]!));
  t.equal(store.openFileCount, 3, 'three files kept');
  t.equal(await openFds(), before + 4, 'the three kept and the one still being read');
  const got: Buffer[] = [];
  for await (const c of holding) got.push(Buffer.from(c.data));
  t.ok(Buffer.concat(got).equals(data[0]!), 'the pushed-out file still read whole');
  await until(async () => (await openFds()) === before + 3);
  t.pass('and closed once its reader was done');

  await until(() => store.openFileCount === 0, 10_000);
  await until(async () => (await openFds()) === before);
  t.pass('files unused for the idle time are closed');
  t.ok((await readRange(store, 's2', 0, 2999)).equals(data[2]!), 'and opened again when read again');
  t.equal(await openFds(), before + 1);
  await store.close();
  closed = true;
  t.equal(store.openFileCount, 0);
  t.ok((await openFds()) < before, 'close leaves no kept file open (nor the fan directories the puts opened)');
});

t.test('invalid shard ids are rejected everywhere', async (t) => {
  const { client, url, store, dir } = await startNode(t);
  const bad = ['..', '.', 'a/b', '%2e%2e', '../x', 'x'.repeat(201), '', '.hidden', 'a\0b', 'a b', '-x', 'é'];
  for (const id of bad) {
    await t.rejects(client.putShard(id, 8, chunks(Buffer.alloc(0))), { code: 'InvalidShardId' }, `client: ${JSON.stringify(id)}`);
    await t.rejects(store.put(id, 8, chunks(Buffer.alloc(0))), { code: 'InvalidShardId' }, `store: ${JSON.stringify(id)}`);
    await t.rejects(store.openRead(id), { code: 'InvalidShardId' });
    await t.rejects(store.delete(id), { code: 'InvalidShardId' });
  }
  t.ok(await client.putShard('x'.repeat(200), 8, chunks(Buffer.alloc(0))), '200 chars is fine');
  const raw = ['a%2Fb', '%252e%252e', '..%2Fx', 'a%00b', 'x'.repeat(201), '.hidden'];
  for (const p of raw) {
    const res = await rawRequest(`${url}/shards/${p}`, { method: 'PUT', headers: { 'x-cairn-block-size': '8' }, body: '' });
    t.equal(res.statusCode, 400, `raw PUT ${p}`);
    t.match(await res.body.json(), { code: 'InvalidShardId' });
  }
  // Dot segments are normalised away before routing: they never reach a shard handler.
  for (const p of ['%2e%2e', '%2e', '..']) {
    const dots = await rawRequest(`${url}/shards/${p}`, { method: 'PUT', headers: { 'x-cairn-block-size': '8' }, body: '' });
    t.equal(dots.statusCode, 404, `raw PUT ${p}`);
    await dots.body.dump();
  }
  t.equal(store.shardCount, 1);
  t.same((await fs.readdir(dir)).sort(), ['node-id', 'packs', 'shards', 'tmp']);
});

t.test('delete is idempotent; list paginates in id order', async (t) => {
  const { client } = await startNode(t);
  await client.putShard('d', 8, chunks(frame(Buffer.from('abcdefghij'), 8)));
  await client.deleteShard('d');
  await client.deleteShard('d');
  await client.deleteShard('never-existed');
  t.equal(await client.headShard('d'), null);
  await t.rejects(client.readShard('d'), { code: 'NoSuchShard', status: 404 });
  await t.rejects(client.verifyShard('d'), { code: 'NoSuchShard' });

  const ids = Array.from({ length: 25 }, (_, i) => `s${String(i).padStart(2, '0')}`).reverse();
  for (const id of ids) await client.putShard(id, 8, chunks(frame(Buffer.from(id), 8)));
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = await client.listShards(after, 10);
    pages++;
    seen.push(...page.shards.map((s) => s.id));
    t.ok(page.shards.every((s) => s.dataLength === 3 && s.blockSize === 8));
    after = page.next;
  } while (after);
  t.equal(pages, 3);
  t.same(seen, [...ids].sort());
  t.same((await client.listShards('s24')).shards, []);
  t.same((await client.listShards('s1', 3)).shards.map((s) => s.id), ['s10', 's11', 's12']);
  await t.rejects(client.listShards(undefined, 0), { code: 'InvalidArgument' });
});

t.test('file shards keep one open handle per fan directory for their fsyncs, and close gives every one back', { skip: process.platform !== 'linux' && 'counts /proc/self/fd' }, async (t) => {
  const openFds = async () => (await fs.readdir('/proc/self/fd')).length;
  const dir = await tempDir(t, 'cairn-fans-');
  const before = await openFds();
  // packMaxBytes 0: every shard is a file, renamed into its fan directory and that directory fsynced.
  const store = await ShardStore.open({ dir, nodeId: 'node-f', log, packMaxBytes: 0 });
  const opened = await openFds();
  const ids = Array.from({ length: 12 }, (_, i) => `fan-${i}`);
  const put = (id: string) => store.put(id, 8, chunks(frame(Buffer.from(id), 8)));
  for (const id of ids) await put(id);
  const fans = new Set(ids.map((id) => path.dirname(path.relative(dir, store.shardPath(id)))));
  t.equal(await openFds(), opened + fans.size, `one handle for each of the ${fans.size} fan directories written to`);
  for (const id of ids) t.ok(await store.delete(id), `${id} deleted`);
  for (const id of ids) await put(id);
  t.equal(await openFds(), opened + fans.size, 'deletes and rewrites reuse them');
  for (const id of ids) t.equal((await store.stat(id))?.dataLength, id.length, `${id} stored again`);
  await store.close();
  t.equal(await openFds(), before, 'close leaves no descriptor open');
});

t.test('node id persists; used bytes are tracked and rebuilt on restart', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  await t.rejects(ShardStore.open({ dir }), NodeIdError, 'first start needs an id');
  const a = await ShardStore.open({ dir, nodeId: 'node-7' });
  t.equal(a.nodeId, 'node-7');
  t.equal((await ShardStore.open({ dir })).nodeId, 'node-7', 'kept without --node-id');
  await t.rejects(ShardStore.open({ dir, nodeId: 'node-8' }), { name: 'NodeIdError', message: /belongs to node "node-7"/ });
  await t.rejects(ShardStore.open({ dir: await tempDir(t, 'cairn-sn-'), nodeId: '../evil' }), NodeIdError);

  const { client, store } = await startNode(t, { dir, nodeId: 'node-7' });
  const p1 = await client.putShard('u1', 100, chunks(frame(randomBytes(1000), 100)));
  const p2 = await client.putShard('u2', 100, chunks(frame(randomBytes(250), 100)));
  t.equal(store.usedBytes, p1.storedLength + p2.storedLength);
  const p1b = await client.putShard('u1', 100, chunks(frame(randomBytes(10), 100)));
  t.equal(store.usedBytes, p1b.storedLength + p2.storedLength, 'replace adjusts');
  await client.deleteShard('u2');
  t.equal(store.usedBytes, p1b.storedLength);
  await client.putShard('u3', 100, chunks(frame(randomBytes(500), 100)));
  const health = await client.health();
  t.match(health, { status: 'ok', nodeId: 'node-7', shardCount: 2, usedBytes: store.usedBytes });
  t.ok(Number(health.capacityBytes) > 0 && Number(health.freeBytes) > 0);

  // A crashed upload's leftovers are wiped, and the walk recounts the same bytes.
  await fs.writeFile(path.join(dir, 'tmp', 'leftover.part'), 'junk');
  const again = await ShardStore.open({ dir });
  t.equal(again.usedBytes, store.usedBytes);
  t.equal(again.shardCount, 2);
  t.same(await tmpFiles(dir), []);
});

t.test('an upload the client abandons leaves no shard and no temp file', async (t) => {
  // Packing off: every upload streams into a temp file, which must go.
  const { client, dir, url } = await startNode(t, { packMaxBytes: 0 });
  const ac = new AbortController();
  const framed = frame(randomBytes(8192), 1024);
  async function* stalled(): AsyncGenerator<Buffer> {
    yield framed.subarray(0, 3000);
    await new Promise((r) => setTimeout(r, 10_000).unref());
  }
  const put = client.putShard('abandoned', 1024, stalled(), ac.signal);
  await until(async () => (await tmpFiles(dir)).length === 1);
  ac.abort();
  await t.rejects(put);
  await until(async () => (await tmpFiles(dir)).length === 0);
  t.equal(await client.headShard('abandoned'), null);

  // A connection dropped exactly at a frame boundary must not pass for a shorter complete shard.
  const { port } = new URL(url);
  const sock = net.connect(Number(port), '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const twoFrames = framed.subarray(0, 2 * 1028);
  const signed = signedHeaders(`${url}/shards/cut`, { method: 'PUT', headers: { 'x-cairn-block-size': '1024' }, streamed: true });
  const head = Object.entries(signed).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  sock.write(`PUT /shards/cut HTTP/1.1\r\n${head}transfer-encoding: chunked\r\n\r\n`);
  sock.write(`${twoFrames.length.toString(16)}\r\n`);
  sock.write(twoFrames);
  sock.write('\r\n');
  await until(async () => (await tmpFiles(dir)).length === 1);
  sock.destroy();
  await until(async () => (await tmpFiles(dir)).length === 0);
  t.equal(await client.headShard('cut'), null);
});

t.test('limits: busy, too large, unavailable node', async (t) => {
  const { client } = await startNode(t, { limits: { maxConcurrentWrites: 1, maxQueuedWrites: 0, maxShardBytes: 10_000 } });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  async function* slow(): AsyncGenerator<Buffer> {
    yield frame(Buffer.alloc(100), 100);
    await gate;
  }
  const first = client.putShard('slow', 100, slow());
  await new Promise((r) => setTimeout(r, 100));
  await t.rejects(client.putShard('second', 100, chunks(frame(Buffer.alloc(100), 100))), { code: 'Busy', status: 503 });
  release();
  t.equal((await first).dataLength, 100);
  await t.rejects(client.putShard('huge', 1000, chunks(frame(Buffer.alloc(20_000), 1000))), { code: 'ShardTooLarge', status: 413 });

  const dead = new StorageNodeClient('http://127.0.0.1:9', { secret: TEST_SECRET, timeoutMs: 1000 });
  const err = await dead.headShard('x').catch((e: unknown) => e);
  t.ok(err instanceof StorageNodeError);
  t.match(err, { code: 'Unavailable', status: 503 });
  await dead.close();
});

async function fakeNamespace(t: Tap): Promise<{ url: string; beats: { path: string; body: HeartbeatRequest }[] }> {
  const beats: { path: string; body: HeartbeatRequest }[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      beats.push({ path: req.url ?? '', body: JSON.parse(text) as HeartbeatRequest });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  const url = await listen(server, '127.0.0.1', 0);
  t.teardown(() => close(server));
  return { url, beats };
}

t.test('heartbeats reach the namespace; failures do not throw', async (t) => {
  const ns = await fakeNamespace(t);
  const { store, url } = await startNode(t, { nodeId: 'hb-1' });
  const hb = new Heartbeater({
    namespaceUrl: ns.url,
    nodeId: store.nodeId,
    secret: TEST_SECRET,
    intervalMs: 50,
    log,
    report: async () => ({ url, ...(await store.usage()), zone: 'z1' }),
  });
  hb.start();
  await until(() => ns.beats.length >= 3);
  await hb.stop();
  t.equal(ns.beats[0].path, '/nodes/hb-1/heartbeat');
  t.match(ns.beats[0].body, { url, usedBytes: 0, zone: 'z1' });
  t.ok(ns.beats[0].body.capacityBytes > 0 && ns.beats[0].body.freeBytes > 0);

  const down = new Heartbeater({ namespaceUrl: 'http://127.0.0.1:9', nodeId: 'x', secret: TEST_SECRET, log, report: async () => ({ url, capacityBytes: 1, usedBytes: 0, freeBytes: 1 }) });
  t.equal(await down.beat(), false);
  t.equal(down.stats.failed, 1);
  await down.stop();
});


t.test('main.ts runs as a process: ready line, /health, heartbeats, clean SIGTERM', async (t) => {
  const dir = await tempDir(t, 'cairn-sn-');
  const ns = await fakeNamespace(t);
  const node = spawnNode(['--node-id', 'node-proc', '--data-dir', dir, '--port', '0', '--namespace', ns.url, '--heartbeat-interval', '100ms', '--zone', 'z9', '--direct-reads', 'off']);
  const ready = await node.ready;
  t.match(ready, { service: 'storage-node', nodeId: 'node-proc' });
  const client = new StorageNodeClient(String(ready.url), { secret: TEST_SECRET });
  t.match(await client.health(), { status: 'ok', nodeId: 'node-proc', shardCount: 0, largeShardReads: 'buffered', openFilesMax: 64 }, 'files kept open between reads: 64 per disk by default');
  await until(() => ns.beats.length > 0, 5000);
  t.match(ns.beats[0], { path: '/nodes/node-proc/heartbeat', body: { url: ready.url, zone: 'z9' } });
  await client.close();
  node.child.kill('SIGTERM');
  t.equal(await node.exit, 0, 'exits 0 on SIGTERM');

  const wrong = spawnNode(['--node-id', 'node-other', '--data-dir', dir]);
  await t.rejects(wrong.ready);
  t.equal(await wrong.exit, 1);
  t.match(wrong.stderr(), /belongs to node .*node-proc.*refusing to start/);
});

t.test('one process serves several disks, each a node of its own: own port, store, heartbeats', async (t) => {
  const dirs = [await tempDir(t, 'cairn-sn-a-'), await tempDir(t, 'cairn-sn-b-'), await tempDir(t, 'cairn-sn-c-')];
  const ns = await fakeNamespace(t);
  const disks = dirs.map((d, i) => `disk-${i + 1}=${d}`).join(',');
  const host = spawnNode(['--disks', disks, '--port', '0', '--namespace', ns.url, '--heartbeat-interval', '100ms', '--direct-reads', 'off']);
  const ready = await host.ready;
  const nodes = ready.nodes as { nodeId: string; url: string }[];
  t.same(nodes.map((n) => n.nodeId), ['disk-1', 'disk-2', 'disk-3']);
  t.equal(new Set(nodes.map((n) => n.url)).size, 3, 'a port per disk');
  t.equal(ready.url, nodes[0]!.url);
  const clients = nodes.map((n) => new StorageNodeClient(n.url, { secret: TEST_SECRET }));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  // A shard written to one disk's node lands in that disk's dir only.
  const data = randomBytes(3 * 4096);
  await clients[1]!.putShard('s-on-disk-2', 4096, chunks(frame(data, 4096)));
  for (const [i, c] of clients.entries()) t.match(await c.health(), { status: 'ok', nodeId: `disk-${i + 1}`, shardCount: i === 1 ? 1 : 0 });
  t.equal(await fs.readFile(path.join(dirs[1]!, 'node-id'), 'utf8').then((s) => s.trim()), 'disk-2');
  await until(() => ['disk-1', 'disk-2', 'disk-3'].every((id) => ns.beats.some((b) => b.path === `/nodes/${id}/heartbeat` && b.body.url === nodes.find((n) => n.nodeId === id)!.url)), 5000);
  host.child.kill('SIGTERM');
  t.equal(await host.exit, 0, 'every disk stops cleanly on SIGTERM');

  // The same disks served alone afterwards keep their ids and shards.
  const alone = spawnNode(['--data-dir', dirs[1]!, '--port', '0', '--direct-reads', 'off']);
  const aloneReady = await alone.ready;
  const aloneClient = new StorageNodeClient(String(aloneReady.url), { secret: TEST_SECRET });
  t.match(await aloneClient.health(), { nodeId: 'disk-2', shardCount: 1 });
  await aloneClient.close();
  alone.child.kill('SIGTERM');
  await alone.exit;

  const mixed = spawnNode(['--disks', disks, '--node-id', 'x']);
  await t.rejects(mixed.ready);
  t.match(mixed.stderr(), /do not also give --node-id or --data-dir/);
  const twice = spawnNode(['--disks', `a=${dirs[0]},b=${dirs[0]}`]);
  await t.rejects(twice.ready);
  t.match(twice.stderr(), /names data dir .* twice/);
});

t.test('parseDiskList and diskPorts', async (t) => {
  t.same(parseDiskList(' n1=/d/1 , n2=/d/2,'), [{ nodeId: 'n1', dataDir: '/d/1' }, { nodeId: 'n2', dataDir: '/d/2' }]);
  t.same(parseDiskList('n1=/d/a=b'), [{ nodeId: 'n1', dataDir: '/d/a=b' }], 'only the first = splits');
  t.throws(() => parseDiskList(''), /empty/);
  t.throws(() => parseDiskList('/d/1'), /not <node-id>=<data-dir>/);
  t.throws(() => parseDiskList('n1='), /not <node-id>=<data-dir>/);
  t.throws(() => parseDiskList('=/d'), /not <node-id>=<data-dir>/);
  t.throws(() => parseDiskList('n1=/a,n1=/b'), /node id "n1" twice/);
  t.same(diskPorts(0, 3), [0, 0, 0]);
  t.same(diskPorts(9100, 3), [9100, 9101, 9102]);
  t.throws(() => diskPorts(65535, 2), /no room/);
});

t.test('chunksOf: chunks come as pushed (never joined), errors after the data, early exit destroys quietly', async (t) => {
  // Ten chunks buffered before anyone reads: a Readable's own iterator would hand them out joined.
  const src = new Readable({ read() {} });
  for (let i = 0; i < 10; i++) src.push(Buffer.alloc(100, i));
  src.push(null);
  const got: Buffer[] = [];
  for await (const c of chunksOf(src)) got.push(c);
  t.same(got.map((c) => c.length), Array(10).fill(100), 'ten chunks of 100 bytes, unjoined');
  t.same(got.map((c) => c[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'in order');

  const failing = new Readable({ read() {} });
  failing.push(Buffer.from('abc'));
  setImmediate(() => failing.destroy(new Error('socket reset')));
  const seen: string[] = [];
  await t.rejects(
    (async () => {
      for await (const c of chunksOf(failing)) seen.push(c.toString());
    })(),
    /socket reset/,
  );
  t.same(seen, ['abc'], 'what arrived comes first, then the error');

  const cut = new Readable({ read() {} });
  cut.push(Buffer.from('x'));
  setImmediate(() => cut.destroy());
  await t.rejects(
    (async () => {
      for await (const _ of chunksOf(cut)) void _;
    })(),
    { code: 'ERR_STREAM_PREMATURE_CLOSE' },
    'a close before the end is an error',
  );

  // Breaking out destroys the source; a source that answers destroy() with 'error' (as undici's
  // bodies do) must not take the process down.
  const endless = new Readable({
    read() {
      this.push(Buffer.alloc(10));
    },
    destroy(_err, cb) {
      cb(new Error('aborted by the consumer'));
    },
  });
  let n = 0;
  for await (const _ of chunksOf(endless)) if (++n === 3) break;
  await new Promise((r) => setImmediate(r));
  t.ok(endless.destroyed, 'source destroyed on early exit');

  // Back-pressure: a consumer that does not read lets at most a bounded number of chunks pile up.
  let produced = 0;
  const fast = new Readable({
    highWaterMark: 1,
    read() {
      if (produced++ < 1000) this.push(Buffer.alloc(1));
      else this.push(null);
    },
  });
  const it = chunksOf(fast)[Symbol.asyncIterator]();
  await it.next();
  await new Promise((r) => setTimeout(r, 50));
  t.ok(produced < 100, `paused the source (${produced} chunks produced while the consumer slept)`);
  let rest = 1;
  while (!(await it.next()).done) rest++;
  t.equal(rest, 1000, 'every chunk delivered once the consumer reads on');
});
