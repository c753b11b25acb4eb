// Small shards packed into append-only logs (storage-node/pack-log.ts), through the store: bytes
// exact, restarts, overwrites both ways, deletes, a torn tail, compaction and group commit.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { chunks, frame } from './helpers/shards.js';
import { createLogger, type Logger } from '../common/log.js';
import { HEADER_BYTES, ShardStore, type StoreOptions } from '../storage-node/store.js';
import { tempDir } from './helpers/temp-dir.js';

const log = createLogger('test', 'error');
const KiB = 1024;

/** The part of a tap test these helpers need. */
interface Tap {
  teardown(fn: () => unknown): void;
}

/** Opens a store that the test closes at its end (a reopen closes the one before first). */
async function openStore(t: Tap, dir: string, opts: Partial<StoreOptions> = {}): Promise<ShardStore> {
  const store = await ShardStore.open({ dir, nodeId: 'node-p', log, ...opts });
  t.teardown(() => store.close());
  return store;
}

async function read(store: ShardStore, id: string): Promise<Buffer> {
  const got: Buffer[] = [];
  for await (const c of await store.openRead(id)) got.push(Buffer.from(c.data));
  return Buffer.concat(got);
}

async function put(store: ShardStore, id: string, data: Buffer, blockSize = 4 * KiB): Promise<void> {
  await store.put(id, blockSize, chunks(frame(data, blockSize), 3000));
}

async function logFiles(dir: string): Promise<string[]> {
  return (await fs.readdir(path.join(dir, 'packs'))).filter((name) => name.endsWith('.log')).sort();
}

async function shardFiles(dir: string): Promise<number> {
  const entries = await fs.readdir(path.join(dir, 'shards'), { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).length;
}

function capture(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const quiet = createLogger('test', 'error');
  return { log: { ...quiet, warn: (msg: string) => void warnings.push(msg) } as Logger, warnings };
}

t.test('small shards are packed, larger ones spill to files; bytes exact, across a restart', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  const store = await openStore(t, dir);
  const small = new Map<string, Buffer>();
  for (const size of [1, 4 * KiB, 16 * KiB, 100 * KiB]) small.set(`s${size}.0.0`, randomBytes(size));
  // Sent without a length: held in memory until it proves too long, then streamed to a file.
  const large = randomBytes(300 * KiB);
  for (const [id, data] of small) await put(store, id, data);
  await put(store, 'large.0.0', large);

  for (const [id, data] of small) {
    t.ok((await read(store, id)).equals(data), `${id} reads back`);
    t.equal(store.locate(id)?.packed, true, `${id} is packed`);
    t.match(await store.stat(id), { dataLength: data.length, blockSize: 4 * KiB });
  }
  t.equal(store.locate('large.0.0')?.packed, false, 'a shard past packMaxBytes is a file');
  t.ok((await read(store, 'large.0.0')).equals(large));
  t.equal(await shardFiles(dir), 1, 'one shard file, for the large shard');
  t.equal(store.packedCount, small.size);
  const listed = (await store.list()).shards;
  t.same(listed.map((s) => s.id).sort(), [...small.keys(), 'large.0.0'].sort(), 'listing shows both kinds');
  const used = store.usedBytes;
  const stats = await Promise.all(listed.map((s) => store.stat(s.id)));

  // A ranged read inside a packed shard touches only its own record.
  const mid = small.get(`s${100 * KiB}.0.0`)!;
  const part: Buffer[] = [];
  for await (const c of await store.openRead(`s${100 * KiB}.0.0`, { start: 5000, end: 9000 })) part.push(Buffer.from(c.data));
  t.ok(Buffer.concat(part).equals(mid.subarray(5000, 9001)), 'ranged read');

  await store.close();
  const again = await openStore(t, dir);
  for (const [id, data] of small) t.ok((await read(again, id)).equals(data), `${id} after a restart`);
  t.equal(again.usedBytes, used, 'used bytes are the same after a restart');
  t.same(await Promise.all(listed.map((s) => again.stat(s.id))), stats, 'stat (length, mtime) survives a restart');
  t.equal((await again.verify(`s${16 * KiB}.0.0`)).corruptBlocks.length, 0, 'verify reads packed shards');
});

t.test('a declared length past packMaxBytes goes straight to a file; packMaxBytes 0 packs nothing', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  const store = await openStore(t, dir, { packMaxBytes: 8 * KiB });
  const framed = frame(randomBytes(10 * KiB), 4 * KiB);
  await store.put('declared.0.0', 4 * KiB, chunks(framed), framed.length);
  t.equal(store.locate('declared.0.0')?.packed, false);
  await put(store, 'fits.0.0', randomBytes(7 * KiB));
  t.equal(store.locate('fits.0.0')?.packed, true);

  const off = await openStore(t, await tempDir(t, 'cairn-pack-'), { packMaxBytes: 0 });
  await put(off, 'tiny.0.0', randomBytes(10));
  t.equal(off.locate('tiny.0.0')?.packed, false);
  await t.rejects(ShardStore.open({ dir: await tempDir(t, 'cairn-pack-'), nodeId: 'n', packMaxBytes: 64 * 1024 * KiB }), RangeError);
});

t.test('overwrites and deletes, packed and file copies, survive restarts', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  let store = await openStore(t, dir);
  const [a1, a2, big, b1] = [randomBytes(2000), randomBytes(3000), randomBytes(200 * KiB), randomBytes(500)];
  await put(store, 'a.0.0', a1);
  await put(store, 'a.0.0', a2);
  t.ok((await read(store, 'a.0.0')).equals(a2), 'the newer packed copy wins');
  t.equal(store.shardCount, 1);
  t.equal(store.usedBytes, HEADER_BYTES + a2.length + 4);

  // packed -> file -> packed
  await put(store, 'b.0.0', b1);
  await put(store, 'b.0.0', big);
  t.equal(store.locate('b.0.0')?.packed, false, 'a file replaces the packed copy');
  t.ok((await read(store, 'b.0.0')).equals(big));
  await store.close();
  store = await openStore(t, dir);
  t.ok((await read(store, 'b.0.0')).equals(big), 'the file copy after a restart');
  t.equal(store.packedCount, 1, 'only a.0.0 is packed');
  await put(store, 'b.0.0', b1);
  t.equal(store.locate('b.0.0')?.packed, true);
  t.equal(await shardFiles(dir), 0, 'the file copy was removed');

  t.equal(await store.delete('a.0.0'), true);
  t.equal(await store.delete('a.0.0'), false, 'a second delete finds nothing');
  t.equal(await store.stat('a.0.0'), null);
  await t.rejects(store.openRead('a.0.0'), { code: 'NoSuchShard' });
  await store.close();
  store = await openStore(t, dir);
  t.equal(await store.stat('a.0.0'), null, 'a delete survives a restart');
  t.ok((await read(store, 'b.0.0')).equals(b1));
  t.equal(store.shardCount, 1);
});

t.test('a torn tail is cut off at open; records before it and writes after it are kept', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  let store = await openStore(t, dir);
  const data = Array.from({ length: 5 }, () => randomBytes(3000));
  for (const [i, d] of data.entries()) await put(store, `t${i}.0.0`, d);
  await store.close();
  const [logName] = await logFiles(dir);
  const logPath = path.join(dir, 'packs', logName!);
  const size = (await fs.stat(logPath)).size;
  // A crash in the middle of the last record's write.
  await fs.truncate(logPath, size - 1000);

  const seen = capture();
  store = await openStore(t, dir, { log: seen.log });
  t.same(seen.warnings, ['shard log has unreadable bytes; records after them are ignored']);
  for (let i = 0; i < 4; i++) t.ok((await read(store, `t${i}.0.0`)).equals(data[i]!), `t${i} survived`);
  t.equal(await store.stat('t4.0.0'), null, 'the torn record is not a shard');
  await put(store, 't5.0.0', data[0]!);
  await store.close();
  store = await openStore(t, dir);
  t.ok((await read(store, 't5.0.0')).equals(data[0]!), 'a write after the torn tail survives the next restart');
  t.equal(store.shardCount, 5);
});

t.test('a sealed log mostly dead is compacted: live shards moved, the file removed', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  let store = await openStore(t, dir);
  const data = new Map(Array.from({ length: 40 }, (_, i) => [`c${String(i).padStart(2, '0')}.0.0`, randomBytes(1000 + i * 100)] as const));
  for (const [id, d] of data) await put(store, id, d);
  await store.close();
  // Reopened: the first log is sealed and a new one is active.
  store = await openStore(t, dir);
  const [first] = await logFiles(dir);
  const kept = [...data.keys()].filter((_, i) => i % 4 === 0);
  for (const id of data.keys()) if (!kept.includes(id)) await store.delete(id);
  for (let i = 0; i < 100 && (await logFiles(dir)).includes(first!); i++) await new Promise((r) => setTimeout(r, 20));
  t.notOk((await logFiles(dir)).includes(first!), 'the sealed log was compacted away');
  for (const id of kept) t.ok((await read(store, id)).equals(data.get(id)!), `${id} moved intact`);
  t.equal(store.shardCount, kept.length);
  await store.close();
  store = await openStore(t, dir);
  t.equal(store.shardCount, kept.length, 'after a restart the moved shards are found once each');
  for (const id of kept) t.ok((await read(store, id)).equals(data.get(id)!));
});

t.test('concurrent small writes share their syncs', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  const store = await openStore(t, dir);
  const data = Array.from({ length: 64 }, () => randomBytes(16 * KiB));
  await Promise.all(data.map((d, i) => put(store, `g${i}.0.0`, d)));
  for (const [i, d] of data.entries()) t.ok((await read(store, `g${i}.0.0`)).equals(d));
  const { appends, batches } = store.packStats;
  t.equal(appends, 64);
  t.ok(batches < 64, `64 appends went out in ${batches} batches`);
});

t.test('listing and stat of packed shards read their headers, not their bytes', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  const store = await openStore(t, dir);
  for (let i = 0; i < 40; i++) await put(store, `h${i}.0.0`, randomBytes(100 * KiB));
  const readBytes = async (): Promise<number> => Number(/rchar: (\d+)/.exec(await fs.readFile('/proc/self/io', 'utf8'))![1]);
  const before = await readBytes();
  const listed = (await store.list()).shards;
  const read = (await readBytes()) - before;
  t.equal(listed.length, 40);
  t.ok(listed.every((s) => s.dataLength === 100 * KiB), 'sizes come from the headers');
  t.ok(read < 40 * 4 * KiB, `listing 40 shards of 100 KiB read ${read} bytes`);
});

t.test('deletes racing a compaction of their log all succeed', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  let store = await openStore(t, dir);
  const ids = Array.from({ length: 200 }, (_, i) => `r${String(i).padStart(3, '0')}.0.0`);
  const data = new Map(ids.map((id) => [id, randomBytes(2000)] as const));
  for (const id of ids) await put(store, id, data.get(id)!);
  await store.close();
  store = await openStore(t, dir);
  const [first] = await logFiles(dir);
  // All at once: the compaction starts once half are dead, while the other deletes are in flight.
  const doomed = ids.filter((_, i) => i % 10 !== 0);
  const results = await Promise.allSettled(doomed.map((id) => store.delete(id)));
  t.same(results.filter((r) => r.status === 'rejected'), [], 'no delete failed');
  for (let i = 0; i < 100 && (await logFiles(dir)).includes(first!); i++) await new Promise((r) => setTimeout(r, 20));
  t.notOk((await logFiles(dir)).includes(first!), 'the log was compacted');
  for (const id of ids) {
    if (doomed.includes(id)) t.equal(await store.stat(id), null);
    else t.ok((await read(store, id)).equals(data.get(id)!), `${id} kept`);
  }
});

t.test('an open reads the logs\' indexes and dead lists, not the logs; a damaged index falls back to a scan', async (t) => {
  const dir = await tempDir(t, 'cairn-pack-');
  let store = await openStore(t, dir);
  const data = new Map(Array.from({ length: 100 }, (_, i) => [`x${String(i).padStart(3, '0')}.0.0`, randomBytes(16 * KiB)] as const));
  for (const [id, d] of data) await put(store, id, d);
  await store.delete('x000.0.0');
  await store.close();
  const readBytes = async (): Promise<number> => Number(/rchar: (\d+)/.exec(await fs.readFile('/proc/self/io', 'utf8'))![1]);

  let before = await readBytes();
  store = await openStore(t, dir);
  const indexedRead = (await readBytes()) - before;
  t.ok(indexedRead < 100 * KiB, `opening 1.6 MiB of packed shards read ${indexedRead} bytes`);
  t.equal(store.shardCount, 99, 'the delete before the close is in the dead list');
  await store.delete('x001.0.0');
  // A crash while appending to the dead list leaves a torn entry: skipped, and the next one still lands.
  const [deadList] = (await fs.readdir(path.join(dir, 'packs'))).filter((n) => n.endsWith('.dead'));
  await fs.appendFile(path.join(dir, 'packs', deadList!), Buffer.from([1, 2, 3]));
  await store.close();

  store = await openStore(t, dir);
  t.equal(store.shardCount, 98, 'a delete from a later run is honoured');
  await store.delete('x002.0.0');
  await store.close();
  store = await openStore(t, dir);
  t.equal(await store.stat('x002.0.0'), null, 'a delete after a torn dead-list entry is honoured');
  await store.close();

  for (const name of (await fs.readdir(path.join(dir, 'packs'))).filter((n) => n.endsWith('.idx'))) {
    await fs.writeFile(path.join(dir, 'packs', name), 'not an index');
  }
  before = await readBytes();
  store = await openStore(t, dir);
  t.ok((await readBytes()) - before > 1.5 * 1024 * KiB, 'damaged indexes: the logs were scanned');
  t.equal(store.shardCount, 97);
  for (const [id, d] of data) {
    if (['x000.0.0', 'x001.0.0', 'x002.0.0'].includes(id)) t.equal(await store.stat(id), null);
    else t.ok((await read(store, id)).equals(d), `${id} intact`);
  }
  await store.close();
  before = await readBytes();
  store = await openStore(t, dir);
  t.ok((await readBytes()) - before < 100 * KiB, 'and indexed again for the next open');
});
