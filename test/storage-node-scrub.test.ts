// Storage node scrubbing, quota and unwritable disks: real servers in-process on loopback over temp
// dirs, driven through StorageNodeClient, plus one real process whose data dir turns read-only.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { chunks, flipStoredByte, frame } from './helpers/shards.js';
import t from 'tap';
import { request } from 'undici';
import { rawRequest, TEST_SECRET } from './helpers/internal.js';
import { close, listen } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import { StorageNodeClient, StorageNodeError } from '../storage-node/client.js';
import { createStorageNodeServer } from '../storage-node/server.js';
import { parseByteSize } from '../storage-node/size.js';
import { HEADER_BYTES, ShardStore, type StoreLimits } from '../storage-node/store.js';
import { spawnNode } from './helpers/storage-node-process.js';
import { tempDir } from './helpers/temp-dir.js';

const log = createLogger('test', 'error');

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

async function startNode(t: Tap, opts: { scrubRate?: number; limits?: Partial<StoreLimits>; timeoutMs?: number } = {}): Promise<Node> {
  const dir = await tempDir(t, 'cairn-scrub-');
  const store = await ShardStore.open({ dir, nodeId: 'node-s', limits: opts.limits, log });
  const metrics = new Registry('storage-node');
  const server = createStorageNodeServer(store, { log, metrics, secret: TEST_SECRET, scrubRate: opts.scrubRate });
  const url = await listen(server, '127.0.0.1', 0);
  const client = new StorageNodeClient(url, { secret: TEST_SECRET, timeoutMs: opts.timeoutMs ?? 10_000 });
  t.teardown(async () => {
    await client.close();
    await close(server);
    await store.close();
  });
  return { dir, store, url, client, metrics };
}


async function put(client: StorageNodeClient, id: string, dataBytes: number, blockSize = 1000): Promise<void> {
  await client.putShard(id, blockSize, chunks(frame(randomBytes(dataBytes), blockSize), 64 * 1024));
}


async function failure(promise: Promise<unknown>): Promise<StorageNodeError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof StorageNodeError) return err;
    throw err;
  }
  throw new Error('expected a StorageNodeError, but the call succeeded');
}

/** Walks the whole node with `scrub`, returning every shard checked in order and the calls made. */
async function walk(client: StorageNodeClient, limit: number, maxBytes?: number): Promise<{ calls: number; bytes: number; corrupt: string[] }> {
  let after: string | undefined;
  let calls = 0;
  let bytes = 0;
  const corrupt: string[] = [];
  do {
    const page = await client.scrub({ after, limit, maxBytes });
    calls++;
    bytes += page.bytes;
    corrupt.push(...page.corrupt.map((c) => c.id));
    if (page.next !== undefined && after !== undefined) t.ok(page.next > after, 'the cursor only moves forward');
    after = page.next;
  } while (after !== undefined && calls < 1000);
  return { calls, bytes, corrupt };
}

t.test('parseByteSize reads sizes and rates', async (t) => {
  t.equal(parseByteSize('200MB'), 200_000_000);
  t.equal(parseByteSize('50MB/s'), 50_000_000);
  t.equal(parseByteSize('1.5 GiB'), 1.5 * 2 ** 30);
  t.equal(parseByteSize('4096'), 4096);
  t.equal(parseByteSize('8mb'), 8_000_000);
  for (const bad of ['', '0', '-1MB', 'fast', '10 furlongs', '1e9']) t.throws(() => parseByteSize(bad), `refuses ${JSON.stringify(bad)}`);
});

t.test('scrub finds flipped bytes, rotten headers and truncated shards', async (t) => {
  const { client, store, url } = await startNode(t);
  // d is long enough to be a shard file (the others are packed), so it can be cut short.
  for (const id of ['a.0.0', 'b.0.0', 'c.0.0', 'e.0.0']) await put(client, id, 3500);
  await put(client, 'd.0.0', 200_000);
  t.same(['a.0.0', 'b.0.0', 'c.0.0', 'd.0.0', 'e.0.0'].map((id) => store.locate(id)?.packed), [true, true, true, false, true]);
  await flipStoredByte(store, 'b.0.0', HEADER_BYTES + 1004 + 10);
  await flipStoredByte(store, 'c.0.0', 13);
  const d = store.shardPath('d.0.0');
  await fs.truncate(d, (await fs.stat(d)).size - 10);
  await flipStoredByte(store, 'e.0.0', HEADER_BYTES + 3 * 1004 + 500 + 2);

  const result = await client.scrub({});
  t.equal(result.checked, 5);
  t.equal(result.next, undefined, 'the walk reached the end');
  t.same(result.corrupt, [
    { id: 'b.0.0', blocks: [1] },
    { id: 'c.0.0', blocks: [-1], header: true },
    { id: 'd.0.0', blocks: [199] },
    { id: 'e.0.0', blocks: [3] },
  ]);
  t.ok(result.bytes >= 4 * (3500 + 16) - 10, 'every frame of the readable shards was read');

  const metrics = await (await request(`${url}/metrics`)).body.text();
  t.match(metrics, /cairn_storage_scrub_corrupt_shards_total 4/);
  t.match(metrics, new RegExp(`cairn_storage_scrubbed_bytes_total ${result.bytes}`));

  // Nothing was changed or deleted: a scrub only reads.
  t.equal((await client.listShards()).shards.length, 5);
  t.same((await client.scrub({ after: 'c.0.0' })).corrupt.map((c) => c.id), ['d.0.0', 'e.0.0'], 'after is exclusive');
  t.same(await client.scrub({ after: 'z' }), { checked: 0, bytes: 0, corrupt: [] }, 'past the last shard');
});

t.test('the scrub rate paces reads without blocking the event loop', async (t) => {
  const slow = await startNode(t, { scrubRate: 8_000_000 });
  const fast = await startNode(t, { scrubRate: 10_000_000_000 });
  for (const node of [slow, fast]) for (let i = 0; i < 4; i++) await put(node.client, `big.${i}`, 1_000_000, 256 * 1024);

  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const started = performance.now();
  const paced = await walk(slow.client, 100, 1_000_000);
  const pacedMs = performance.now() - started;
  clearInterval(timer);
  t.equal(paced.bytes, 4 * (1_000_000 + 4 * 4), '4 MB checked');
  t.ok(paced.calls >= 4, 'maxBytes split the walk');
  t.ok(pacedMs >= 400, `4 MB at 8 MB/s took ${pacedMs.toFixed(0)} ms (>= 400), across calls`);
  t.ok(ticks >= pacedMs / 10 / 3, `the event loop kept running (${ticks} ticks)`);

  const again = performance.now();
  t.equal((await walk(fast.client, 100)).bytes, paced.bytes);
  const fastMs = performance.now() - again;
  t.ok(fastMs < pacedMs / 2, `unpaced: ${fastMs.toFixed(0)} ms`);
});

t.test('cursor walks cover every shard exactly once', async (t) => {
  const { client, store } = await startNode(t);
  const ids = Array.from({ length: 37 }, (_, i) => `v${String(i * 7919 % 1000).padStart(3, '0')}.${i % 3}.${i % 5}`);
  for (const id of ids) await put(client, id, 100 + (id.length * 37) % 900, 256);
  const sorted = [...ids].sort();
  await flipStoredByte(store, sorted[20], HEADER_BYTES + 5);

  for (const [limit, maxBytes] of [[5, undefined], [10_000, 1], [1, undefined], [36, undefined], [37, undefined]] as const) {
    const seen: string[] = [];
    let after: string | undefined;
    let calls = 0;
    do {
      const page = await client.scrub({ after, limit, maxBytes });
      const listed = store.ids(after, limit);
      seen.push(...listed.ids.slice(0, page.checked));
      after = page.next;
      calls++;
    } while (after !== undefined && calls < 100);
    t.same(seen, sorted, `limit ${limit}, maxBytes ${maxBytes}: every shard once, in order (${calls} calls)`);
  }
  const all = await walk(client, 4);
  t.same(all.corrupt, [sorted[20]], 'the corrupt shard is reported once per walk');

  // Shards deleted between calls (GC) are simply not there; nothing fails.
  const first = await client.scrub({ limit: 10 });
  for (const id of sorted.slice(10, 15)) await client.deleteShard(id);
  const rest = await walk(client, 10);
  t.equal(first.checked + (await client.scrub({ after: first.next, limit: 1000 })).checked, 32);
  t.ok(rest.calls >= 1);
});

t.test('one scrub at a time; a caller that gives up frees the scrubber', async (t) => {
  const node = await startNode(t, { scrubRate: 1_000_000 });
  for (let i = 0; i < 3; i++) await put(node.client, `s.${i}`, 1_000_000, 256 * 1024);
  const first = node.client.scrub({});
  await new Promise((r) => setTimeout(r, 100));
  const busy = await failure(node.client.scrub({}));
  t.equal(busy.code, 'Busy');
  t.equal(busy.status, 503);
  t.equal((await first).checked, 3, 'the running scrub finishes');

  // A whole walk takes 3 s at 1 MB/s; the caller gives up after about one (undici's timers are coarse).
  const impatient = new StorageNodeClient(node.url, { secret: TEST_SECRET, timeoutMs: 300 });
  t.teardown(() => impatient.close());
  const started = Date.now();
  const cut = await failure(impatient.scrub({}));
  t.equal(cut.code, 'Unavailable', 'the caller timed out');
  const gaveUp = Date.now() - started;
  let next: Awaited<ReturnType<StorageNodeClient['scrub']>> | undefined;
  while (!next && Date.now() - started < 2500) {
    next = await node.client.scrub({ limit: 1, maxBytes: 1 }).catch((err: unknown) => {
      if (!(err instanceof StorageNodeError && err.code === 'Busy')) throw err;
      return new Promise<undefined>((r) => setTimeout(() => r(undefined), 20));
    });
  }
  t.equal(next?.checked, 1, `the abandoned scrub stopped (caller gave up after ${gaveUp} ms); a new one ran after ${Date.now() - started} ms`);

  for (const bad of [{ limit: 0 }, { limit: 10_001 }, { maxBytes: -1 }, { after: '../x' }, { limit: 'many' }]) {
    const err = await failure(node.client.scrub(bad as never));
    t.equal(`${err.status} ${err.code}`, '400 InvalidArgument', `refuses ${JSON.stringify(bad)}`);
  }
  const res = await rawRequest(`${node.url}/scrub`, { method: 'POST', body: '{nope' });
  t.equal(res.statusCode, 400);
  await res.body.dump();
});

t.test('quota: a PUT that would exceed it is refused with InsufficientStorage and stores nothing', async (t) => {
  const { client, store, dir } = await startNode(t, { limits: { quotaBytes: 3000 } });
  const usage = await store.usage();
  t.equal(usage.capacityBytes, 3000, 'capacity is the quota');
  t.equal(usage.freeBytes, 3000);
  await put(client, 'q.0', 1000);
  await put(client, 'q.1', 1000);
  t.equal(store.usedBytes, 2 * (HEADER_BYTES + 1004));

  const streamed = await failure(put(client, 'q.2', 1000));
  t.equal(`${streamed.status} ${streamed.code}`, '507 InsufficientStorage', 'chunked upload refused mid-stream');
  t.equal(await client.headShard('q.2'), null, 'nothing stored');
  t.same(await fs.readdir(path.join(dir, 'tmp')), [], 'no temp file left');
  t.equal((await store.usage()).freeBytes, 3000 - 2 * (HEADER_BYTES + 1004), 'free reflects the quota');

  const body = frame(randomBytes(1500), 1000);
  const res = await rawRequest(`${client.baseUrl}/shards/q.3`, { method: 'PUT', body, headers: { 'x-cairn-block-size': '1000', 'content-length': String(body.length) } });
  t.equal(res.statusCode, 507, 'a declared length over the quota is refused up front');
  t.match(await res.body.json(), { code: 'InsufficientStorage' });
  await put(client, 'q.4', 500);
  t.ok(store.usedBytes <= 3000, 'a shard that fits is still taken');

  // Concurrent uploads cannot overrun the quota together.
  const race = await startNode(t, { limits: { quotaBytes: 2000 } });
  const results = await Promise.allSettled([0, 1, 2].map((i) => put(race.client, `r.${i}`, 1000)));
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one of three 1 KB shards fits in 2 KB');
  t.ok(race.store.usedBytes <= 2000);
  t.equal((await race.store.usage()).freeBytes, 2000 - race.store.usedBytes, 'reservations were all handed back');
});


async function chmodTree(dir: string, mode: number): Promise<void> {
  await fs.chmod(dir, mode);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) if (entry.isDirectory()) await fs.chmod(path.join(dir, entry.name), mode);
}

t.test('a read-only data dir and the flags: clean errors, the process stays up', async (t) => {
  const dir = await tempDir(t, 'cairn-scrub-');
  // Root ignores permissions, so as root the node runs as nobody to make read-only mean something.
  const uid = process.getuid?.() === 0 ? 65534 : undefined;
  if (uid !== undefined) await fs.chown(dir, uid, uid);
  // Packing off: a pack log already open stays writable whatever the directory's mode says.
  const node = spawnNode(['--node-id', 'node-ro', '--data-dir', dir, '--max-bytes', '200KB', '--scrub-rate', '8MB/s', '--pack-max', '0', '--open-files', '0'], uid);
  const ready = await node.ready;
  const client = new StorageNodeClient(String(ready.url), { secret: TEST_SECRET, timeoutMs: 5000 });
  t.teardown(() => client.close());
  t.match(await client.health(), { capacityBytes: 200_000, packMaxBytes: 0, openFilesMax: 0 }, '--max-bytes caps the reported capacity; --pack-max 0 turns packing off; --open-files 0 keeps no file open');

  await put(client, 'keep.0', 1000);
  const over = await failure(put(client, 'huge.0', 300_000, 64 * 1024));
  t.equal(`${over.status} ${over.code}`, '507 InsufficientStorage', 'over the quota');

  t.teardown(() => chmodTree(path.join(dir, 'shards'), 0o755).catch(() => undefined));
  await chmodTree(path.join(dir, 'shards'), 0o555);
  const ro = await failure(put(client, 'new.0', 1000));
  t.equal(`${ro.status} ${ro.code}`, '507 InsufficientStorage', 'read-only shards dir');
  t.match(ro.message, /not writable/);
  t.match(await client.health(), { freeBytes: 0 }, 'an unwritable node reports no free space, steering placement away');
  t.same(await fs.readdir(path.join(dir, 'tmp')), [], 'the temp file was removed');
  t.equal((await client.readShard('keep.0')).length, 1000, 'reads still work');
  t.equal((await client.readShard('keep.0')).length, 1000, 'and again, each opening the file');
  t.equal((await client.scrub({})).checked, 1, 'scrubbing still works');
  const del = await failure(client.deleteShard('keep.0'));
  t.equal(del.status, 500, 'a delete that cannot happen is a clean 500');

  t.teardown(() => fs.chmod(path.join(dir, 'tmp'), 0o755).catch(() => undefined));
  await fs.chmod(path.join(dir, 'tmp'), 0o555);
  const noTmp = await failure(put(client, 'new.1', 1000));
  t.equal(`${noTmp.status} ${noTmp.code}`, '507 InsufficientStorage', 'read-only temp dir');
  t.match(await client.health(), { status: 'ok', shardCount: 1 }, 'the process is alive and consistent');

  node.child.kill('SIGTERM');
  t.equal(await node.exit, 0, 'and stops cleanly');
});
