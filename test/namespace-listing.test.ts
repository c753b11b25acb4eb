// The listing fast paths: the engine's batch cursor (nextBatch with seek), the field scan that
// reads size/etag/lastModified without parsing whole records, and listings whose pages cross the
// cursor's batch boundaries (flat read-ahead, delimiter roll-ups).
import path from 'node:path';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { LevelEngine, type KvCursor, type KvEngine } from '../namespace/engine.js';
import { listedFields, scanFields } from '../namespace/list-fields.js';
import { ListReadAhead, ObjectWriteCounter } from '../namespace/list-read-ahead.js';
import { GroupCommitEngine } from '../namespace/group-commit.js';
import { bucketObjectsPrefix, objectKey } from '../namespace/keys.js';
import { NamespaceStore } from '../namespace/store.js';
import type { ListObjectsQuery, ListObjectsResponse, ObjectRecord } from '../namespace/types.js';
import { tempDir } from './helpers/temp-dir.js';

async function openEngine(tt: Test): Promise<KvEngine> {
  const engine = await LevelEngine.open(path.join(await tempDir(tt, 'cairn-list-'), 'db'));
  tt.teardown(() => engine.close());
  return engine;
}

const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(4, '0')}`);

// ---- engine ----

t.test('nextBatch reads in order, mixes with next() and seek() across batch boundaries', async (t) => {
  const engine = await openEngine(t);
  await engine.batch(
    Array.from({ length: 300 }, (_, i) => ({ type: 'put' as const, space: 'objects' as const, key: key(i), value: Buffer.from(String(i)) })),
    { sync: false },
  );
  const cursor = engine.cursor('objects', { gte: key(10), lt: key(290) });
  const names = (batch: [Buffer, Buffer][]): string[] => batch.map(([k]) => k.toString());
  try {
    t.same(names(await cursor.nextBatch(3)), ['k0010', 'k0011', 'k0012']);
    t.equal((await cursor.next())?.[0].toString(), 'k0013', 'next() continues after a batch');
    t.equal((await cursor.next())?.[0].toString(), 'k0014', 'a second next() fills the engine cache');
    t.same(names(await cursor.nextBatch(2)), ['k0015', 'k0016'], 'a batch after next() continues where it stopped');
    cursor.seek(key(100));
    t.same(names(await cursor.nextBatch(2)), ['k0100', 'k0101'], 'seek drops what was read ahead');
    cursor.seek(key(50));
    t.same(names(await cursor.nextBatch(1)), ['k0050'], 'seeking backwards works too');
    cursor.seek(key(280));
    const rest: string[] = [];
    for (let batch = await cursor.nextBatch(4); batch.length > 0; batch = await cursor.nextBatch(4)) {
      t.ok(batch.length <= 4);
      rest.push(...names(batch));
    }
    t.same(rest, Array.from({ length: 10 }, (_, i) => `k0${280 + i}`), 'the range end bounds the batches; empty means done');
  } finally {
    await cursor.close();
  }
});

t.test('nextTextBatch: values as text, seeks before and after the first read', async (t) => {
  const engine = await openEngine(t);
  await engine.batch(
    Array.from({ length: 50 }, (_, i) => ({ type: 'put' as const, space: 'objects' as const, key: key(i), value: Buffer.from(JSON.stringify({ i, s: 'ü😀' })) })),
    { sync: false },
  );
  const cursor = engine.cursor('objects', { gt: key(3) });
  try {
    cursor.seek(key(20)); // before the first read: applied when the iterator opens
    const first = await cursor.nextTextBatch(2);
    t.same(first.map(([k, v]) => [k.toString(), v]), [
      ['k0020', '{"i":20,"s":"ü😀"}'],
      ['k0021', '{"i":21,"s":"ü😀"}'],
    ]);
    t.ok(Buffer.isBuffer(first[0]![0]), 'keys stay bytes');
    cursor.seek(key(48));
    t.same((await cursor.nextTextBatch(10)).map(([k]) => k.toString()), ['k0048', 'k0049']);
    t.same(await cursor.nextTextBatch(10), [], 'then the end');
    await t.rejects(cursor.nextBatch(1), /reads values as text/, 'one cursor, one value form');
  } finally {
    await cursor.close();
  }
  const unread = engine.cursor('objects', {});
  await unread.close(); // closing a cursor that never read is fine
});

t.test('nextBatch may return fewer entries than asked without being at the end', async (t) => {
  const engine = await openEngine(t);
  // 64 KiB values: the engine bounds a batch's bytes, so 200 of them cannot come in one read.
  const big = Buffer.alloc(64 * 1024, 7);
  await engine.batch(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, space: 'objects' as const, key: key(i), value: big })), { sync: false });
  const cursor = engine.cursor('objects', {});
  let total = 0;
  let short = false;
  try {
    for (let batch = await cursor.nextBatch(200); batch.length > 0; batch = await cursor.nextBatch(200)) {
      if (batch.length < 200 && total + batch.length < 200) short = true;
      total += batch.length;
    }
  } finally {
    await cursor.close();
  }
  t.equal(total, 200);
  t.ok(short, 'a batch was cut by its byte bound');
});

// ---- field scan ----

function baseRecord(over: Partial<ObjectRecord> = {}): ObjectRecord {
  return {
    bucket: 'b',
    key: 'k',
    versionId: 'v1',
    size: 15,
    etag: '"0123456789abcdef0123456789abcdef"',
    lastModified: '2024-05-06T07:08:09.123Z',
    contentType: 'text/plain',
    userMetadata: {},
    headers: {},
    checksums: {},
    layout: { k: 2, m: 1, blockSize: 8 },
    segments: [{ size: 15, placements: [{ nodeId: 'n1', shardId: 's1' }, { nodeId: null, shardId: 's2' }] }],
    ...over,
  };
}

const expected = (r: ObjectRecord) => ({ size: r.size, etag: r.etag, lastModified: r.lastModified });
const encode = (value: unknown): string => JSON.stringify(value);

t.test('listedFields reads the three fields, and gives up rather than misread', async (t) => {
  const plain = baseRecord();
  t.same(scanFields(JSON.stringify(plain)), expected(plain), 'the scan itself handles an ordinary record');
  // Names that only look like the wanted ones, nested or escaped, must not be taken.
  const decoy = baseRecord({ userMetadata: { size: '99', etag: 'nope', lastModified: 'x' }, headers: { 'x"size': '1' } });
  const { userMetadata, headers, segments, ...rest } = decoy;
  const moved = { userMetadata, headers, segments, ...rest };
  t.same(listedFields(encode(moved)), expected(decoy), 'nested decoys before the fields are skipped');
  const reordered = { segments: plain.segments, lastModified: plain.lastModified, inline: { crc32c: 1, data: 'x'.repeat(5000) }, etag: plain.etag, size: plain.size };
  t.same(listedFields(encode(reordered)), expected(plain), 'any field order');
  const longKey = baseRecord({ key: 'ü'.repeat(400) });
  t.same(listedFields(encode(longKey)), expected(longKey), 'fields after a long non-ASCII key');
  const escaped = baseRecord({ etag: 'a\\"b\u2028\u0001', lastModified: 'Thu, 01 Jan 2015 00:00:00 GMT' });
  t.same(listedFields(encode(escaped)), expected(escaped), 'escapes are decoded');
  const pretty = JSON.stringify(plain, null, 2);
  t.equal(scanFields(pretty), undefined, 'non-compact JSON: the scan gives up');
  t.same(listedFields(pretty), expected(plain), '... and the record is parsed instead');
  t.equal(scanFields('{"size":1,"etag":"x"}'), undefined, 'a missing field: gives up');
  t.equal(scanFields('{"size":1.5,"etag":"x","lastModified":"y"}'), undefined, 'a fractional size: gives up');
  t.equal(scanFields('{"size":1,"etag":"x","lastModi'), undefined, 'a cut record: gives up');
  t.equal(scanFields('[1]'), undefined);
});

t.test('listedFields agrees with JSON.parse on arbitrary records', async (t) => {
  const text = fc.string({ unit: fc.constantFrom('a', '"', '\\', '{', '}', '[', ']', ',', ':', 'size', 'etag', 'ü', '😀', '\u0001', ' ', '\n') });
  const map = fc.dictionary(text, text, { maxKeys: 4 });
  const rec = fc.record({
    key: fc.string({ minLength: 1, maxLength: 700 }),
    size: fc.nat(),
    etag: text,
    lastModified: text,
    userMetadata: map,
    headers: map,
    segments: fc.array(fc.record({ size: fc.nat(), placements: fc.array(fc.record({ nodeId: fc.option(text), shardId: text }), { maxLength: 3 }) }), { maxLength: 3 }),
  });
  fc.assert(
    fc.property(rec, fc.boolean(), (over, shuffle) => {
      const r = baseRecord(over);
      const value = shuffle ? Object.fromEntries(Object.entries(r).reverse()) : r;
      const got = listedFields(encode(value));
      if (got.size !== r.size || got.etag !== r.etag || got.lastModified !== r.lastModified) throw new Error(`differs for ${JSON.stringify(value)}`);
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 random records');
});

// ---- listings across batch boundaries ----

async function openStore(tt: Test, opts: Parameters<typeof NamespaceStore.open>[1] = {}): Promise<NamespaceStore> {
  const store = await NamespaceStore.open(await tempDir(tt, 'cairn-list-'), { sync: false, ...opts });
  tt.teardown(() => store.close());
  return store;
}

async function fill(store: NamespaceStore, bucket: string, keys: string[]): Promise<void> {
  await store.createBucket(bucket, 'o');
  for (let i = 0; i < keys.length; i += 200) {
    await Promise.all(
      keys.slice(i, i + 200).map((k, j) =>
        store.commitObject({ record: baseRecord({ bucket, key: k, versionId: `v${i + j}`, size: 0, etag: `"e${i + j}"`, segments: [] }) }),
      ),
    );
  }
}

/** Every key and prefix of a listing in listing order, page by page; checks each page's size and entries. */
async function listAll(tt: Test, store: NamespaceStore, bucket: string, q: ListObjectsQuery): Promise<string[]> {
  const seen: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page: ListObjectsResponse = await store.listObjects(bucket, { ...q, continuation: token });
    const items = page.entries.length + page.commonPrefixes.length;
    if (page.isTruncated && items !== q.maxKeys) tt.fail(`a truncated page of ${items} items, maxKeys ${q.maxKeys}`);
    for (const e of page.entries) if (e.etag !== `"e${Number(e.etag.slice(2, -1))}"` || e.size !== 0) tt.fail(`bad entry ${JSON.stringify(e)}`);
    // Within a page keys and prefixes interleave in key order; across pages, order is checked as is.
    seen.push(...[...page.entries.map((e) => e.key), ...page.commonPrefixes].sort(byteOrder));
    token = page.nextContinuation;
    if (++pages > 10_000) throw new Error('listing does not end');
  } while (token);
  return seen;
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

t.test('flat listings: pages that end on, before and after the read-ahead batch boundaries', async (t) => {
  const store = await openStore(t);
  const keys = Array.from({ length: 2100 }, (_, i) => `f/${String(i).padStart(5, '0')}`);
  await fill(store, 'flat', keys);
  for (const maxKeys of [1, 127, 128, 129, 383, 384, 385, 1000]) {
    t.same(await listAll(t, store, 'flat', { maxKeys }), keys, `maxKeys ${maxKeys}`);
  }
  const steps = store.stats.listSteps;
  const page = await store.listObjects('flat', { maxKeys: 1000 });
  t.equal(page.entries.length, 1000);
  t.ok(page.isTruncated);
  t.equal(store.stats.listSteps - steps, 1001, 'a page reads exactly its entries plus one');
  const tail = await store.listObjects('flat', { startAfter: keys[2098], maxKeys: 1000 });
  t.same(tail.entries.map((e) => e.key), [keys[2099]]);
  t.notOk(tail.isTruncated, 'the last page is not truncated');
});

t.test('delimiter listings: roll-ups that seek from inside a batch', async (t) => {
  const store = await openStore(t);
  const keys: string[] = [];
  // Runs of plain keys (batches grow) between directories (a roll-up seeks and drops the batch).
  for (let d = 0; d < 30; d++) {
    for (let f = 0; f < d * 7; f++) keys.push(`${String(d).padStart(2, '0')}-file${String(f).padStart(3, '0')}`);
    for (let f = 0; f < 50; f++) keys.push(`${String(d).padStart(2, '0')}-dir/${String(f).padStart(3, '0')}`);
  }
  await fill(store, 'tree', keys);
  const reference = [...new Set(keys.map((k) => (k.includes('/') ? k.slice(0, k.indexOf('/') + 1) : k)))].sort();
  for (const maxKeys of [1, 2, 3, 7, 64, 1000]) {
    t.same(await listAll(t, store, 'tree', { delimiter: '/', maxKeys }), reference, `maxKeys ${maxKeys}`);
  }
  const steps = store.stats.listSteps;
  await listAll(t, store, 'tree', { delimiter: '/', maxKeys: 1000 });
  const read = store.stats.listSteps - steps;
  t.ok(read < 2 * reference.length + 60, `read ${read} entries for ${reference.length} items (not the ${keys.length} keys)`);
  t.same(await listAll(t, store, 'tree', { delimiter: '/', prefix: '05-dir/', maxKeys: 10 }), keys.filter((k) => k.startsWith('05-dir/')));
});

// ---- read-ahead ----

const commit = (store: NamespaceStore, bucket: string, key: string, n: number) =>
  store.commitObject({ record: baseRecord({ bucket, key, versionId: `w${n}`, size: 0, etag: `"e${n}"`, segments: [] }) });

t.test('read-ahead: paging is served from pages read ahead, and they are the same pages', async (t) => {
  const store = await openStore(t);
  const off = await openStore(t, { listReadAhead: { maxPages: 16, maxRunning: 0, ttlMs: 5000, now: Date.now } });
  const keys = Array.from({ length: 3500 }, (_, i) => `p/${String(i).padStart(5, '0')}`);
  await fill(store, 'pages', keys);
  await fill(off, 'pages', keys);
  for (const q of [{ maxKeys: 1000 }, { maxKeys: 7, prefix: 'p/000' }, { maxKeys: 3, delimiter: '0', prefix: 'p/01' }]) {
    t.same(await listAll(t, store, 'pages', q), await listAll(t, off, 'pages', q), `same listing with and without read-ahead: ${JSON.stringify(q)}`);
  }
  const { hits, started } = store.listReadAhead.stats;
  t.ok(hits > 150, `${hits} pages came from read-ahead`);
  t.equal(started, hits, 'and nothing was read ahead in vain');
  t.equal(off.listReadAhead.stats.started, 0, 'maxRunning 0 turns it off');
  const steps = store.stats.listSteps;
  await listAll(t, store, 'pages', { maxKeys: 1000 });
  t.equal(store.listReadAhead.stats.hits - hits, 3, 'of 4 pages, the 3 after the first came from read-ahead');
  t.equal(store.stats.listSteps - steps, 3 * 1001 + 500, 'entries read ahead are counted once, when their page is served');

  // A v1 client pages by marker (NextMarker, or the last key), not by token: its pages are read ahead too.
  const byMarker = async (s: NamespaceStore, q: ListObjectsQuery): Promise<{ items: string[]; pages: number }> => {
    const items: string[] = [];
    let pages = 0;
    for (let marker: string | undefined; ; ) {
      const page = await s.listObjects('pages', { ...q, startAfter: marker });
      pages++;
      items.push(...[...page.entries.map((e) => e.key), ...page.commonPrefixes].sort(byteOrder));
      if (!page.isTruncated) return { items, pages };
      marker = page.lastReturned;
    }
  };
  for (const q of [{ maxKeys: 1000 }, { maxKeys: 7, prefix: 'p/0', delimiter: '9' }]) {
    const before = store.listReadAhead.stats.hits;
    const got = await byMarker(store, q);
    t.same(got.items, (await byMarker(off, q)).items, `v1 paging with and without read-ahead: ${JSON.stringify(q)}`);
    t.equal(store.listReadAhead.stats.hits - before, got.pages - 1, `v1 paging: ${got.pages - 1} pages after the first came from read-ahead`);
  }
});

t.test('read-ahead: a write between two pages is never missed', async (t) => {
  const store = await openStore(t);
  await fill(store, 'w', ['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
  const first = await store.listObjects('w', { maxKeys: 2 });
  t.same(first.entries.map((e) => e.key), ['a0', 'a1']);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the next page is read ahead by now
  t.equal(store.listReadAhead.held, 1);
  await commit(store, 'w', 'a1x', 100);
  const second = await store.listObjects('w', { maxKeys: 2, continuation: first.nextContinuation });
  t.same(second.entries.map((e) => e.key), ['a1x', 'a2'], 'a key put after the read-ahead is listed');
  t.equal(store.listReadAhead.stats.stale, 1, 'the page read ahead was dropped');
  await new Promise((resolve) => setTimeout(resolve, 50));
  await store.deleteObject('w', 'a3');
  const third = await store.listObjects('w', { maxKeys: 2, continuation: second.nextContinuation });
  t.same(third.entries.map((e) => e.key), ['a4', 'a5'], 'a key deleted after the read-ahead is not listed');
  t.equal(store.listReadAhead.stats.hits, 0);

  // A write racing the read-ahead (committed while its scan is still running) is not missed either.
  const racing = await store.listObjects('w', { maxKeys: 2 });
  await commit(store, 'w', 'a2x', 101);
  const after = await store.listObjects('w', { maxKeys: 2, continuation: racing.nextContinuation });
  t.same(after.entries.map((e) => e.key), ['a1x', 'a2']);
  const rest = await listAll(t, store, 'w', { maxKeys: 2, startAfter: 'a2' });
  t.same(rest, ['a2x', 'a4', 'a5'], 'the racing key is there');
  // A write to another bucket leaves pages read ahead alone.
  await fill(store, 'other', ['x']);
  const { hits, stale } = store.listReadAhead.stats;
  const p1 = await store.listObjects('w', { maxKeys: 2 });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await commit(store, 'other', 'y', 102);
  await store.listObjects('w', { maxKeys: 2, continuation: p1.nextContinuation });
  t.equal(store.listReadAhead.stats.hits, hits + 1, 'served after a write to another bucket');
  t.equal(store.listReadAhead.stats.stale, stale);
});

t.test('read-ahead: bounded pages, running reads and age; a failed read is a miss', async (t) => {
  let now = 0;
  const ahead = new ListReadAhead<string>({ maxPages: 2, maxRunning: 2, ttlMs: 1000, now: () => now });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  ahead.start('a', 0, async () => {
    await gate;
    return 'page a';
  });
  ahead.start('b', 0, async () => 'page b');
  ahead.start('c', 0, async () => 'page c');
  t.equal(ahead.stats.started, 2, 'no more than maxRunning reads at once');
  release();
  t.equal(await ahead.take('a', 0), 'page a');
  await new Promise((resolve) => setImmediate(resolve));
  ahead.start('c', 0, async () => 'page c');
  ahead.start('d', 0, async () => 'page d');
  t.equal(ahead.held, 2, 'no more than maxPages held');
  t.equal(ahead.take('b', 0), undefined, 'the oldest page went first');
  t.equal(ahead.take('c', 1), undefined, 'a page older than the last write is not served');
  now = 1001;
  t.equal(ahead.take('d', 0), undefined, 'a page nobody asked for in time is not served');
  await new Promise((resolve) => setImmediate(resolve));
  ahead.start('e', 0, async () => {
    throw new Error('engine failed');
  });
  const failed = ahead.take('e', 0);
  t.ok(failed, 'a read that failed is still taken ...');
  t.equal(await failed, undefined, '... and yields nothing, so the caller reads afresh');
  t.same(ahead.stats, { started: 5, hits: 2, stale: 3, skipped: 0 });
  ahead.start('f', 0, () => new Promise((resolve) => setTimeout(() => resolve('page f'), 30)));
  await ahead.close();
  t.equal(ahead.held, 0, 'close drops every page after its read settles');
});

t.test('ObjectWriteCounter counts applied batches per bucket of the objects space, failed ones too', async (t) => {
  const engine = new ObjectWriteCounter(await openEngine(t));
  const put = (bucket: string, key: string) => ({ type: 'put' as const, space: 'objects' as const, key: objectKey(bucket, key), value: Buffer.from('{}') });
  await engine.batch([put('b1', 'x'), put('b1', 'y')], { sync: false });
  await engine.batch([put('b2', 'x'), { type: 'put', space: 'inline', key: objectKey('b3', 'x'), value: Buffer.from('1') }], { sync: false });
  await engine.batch([{ type: 'del', space: 'objects', key: objectKey('b1', 'x') }], { sync: false });
  t.equal(engine.writes('b1'), 2, 'one count per batch, not per op');
  t.equal(engine.writes('b2'), 1);
  t.equal(engine.writes('b3'), 0, 'other key spaces do not count');
  t.equal(engine.writes('b'), 0, 'a bucket whose name prefixes another is its own');
  t.ok(bucketObjectsPrefix('b1').equals(objectKey('b1', '')));
  const failing = new ObjectWriteCounter({ batch: () => Promise.reject(new Error('disk full')) } as unknown as KvEngine);
  await t.rejects(failing.batch([put('b1', 'x')], { sync: false }), /disk full/);
  t.equal(failing.writes('b1'), 1, 'a failed batch may have applied in part on some engine: counted');
});

t.test('read-ahead: a bucket written while a page is read is not read ahead', async (t) => {
  const inner = await LevelEngine.open(path.join(await tempDir(t, 'cairn-list-'), 'db'));
  // Runs `during` inside the next listing scan, before its first read: a write that lands mid-page.
  let during: (() => Promise<unknown>) | undefined;
  const hooked: KvEngine = {
    get: (space, key) => inner.get(space, key),
    getMany: (space, keys) => inner.getMany(space, keys),
    batch: (ops, opts) => inner.batch(ops, opts),
    close: () => inner.close(),
    cursor: (space, range): KvCursor => {
      const cursor = inner.cursor(space, range);
      const hook = during;
      during = undefined;
      return {
        next: () => cursor.next(),
        nextBatch: (max) => cursor.nextBatch(max),
        nextTextBatch: async (max) => {
          await hook?.();
          return cursor.nextTextBatch(max);
        },
        seek: (target) => cursor.seek(target),
        close: () => cursor.close(),
      };
    },
  };
  const store = new NamespaceStore(new GroupCommitEngine(hooked), { sync: false });
  t.teardown(() => store.close());
  await fill(store, 'busy', ['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
  await fill(store, 'calm', ['c']);
  during = () => commit(store, 'busy', 'a9', 200);
  await store.listObjects('busy', { maxKeys: 2 });
  t.same(store.listReadAhead.stats, { started: 0, hits: 0, stale: 0, skipped: 1 }, 'written during the page: not read ahead');
  during = () => commit(store, 'calm', 'd', 201);
  const page = await store.listObjects('busy', { maxKeys: 2 });
  t.equal(store.listReadAhead.stats.started, 1, 'a write to another bucket does not stop it');
  const next = await store.listObjects('busy', { maxKeys: 2, continuation: page.nextContinuation });
  t.same(next.entries.map((e) => e.key), ['a2', 'a3']);
  t.equal(store.listReadAhead.stats.hits, 1);
});
