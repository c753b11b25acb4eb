// The value log under the namespace's `inline` space: small objects' bytes go to segment files and
// LevelDB keeps pointers and per-segment live counts. What is put reads back, byte for byte, through
// deletes, compactions, concurrent writes, reopening and damage; nothing deleted comes back.
import t from 'tap';
import type { Test } from 'tap';
import { mkdtemp, readdir, rm, writeFile, appendFile, open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LevelEngine, scanRange, type KvOp } from '../namespace/engine.js';
import { ValueLogEngine } from '../namespace/value-log-engine.js';
import { decodePointer, entryBytes, ValueIntegrityError } from '../namespace/value-log.js';

/** Small segments, so that a few hundred values span many of them. */
const ROLL_BYTES = 16 * 1024;

interface Opened {
  dir: string;
  level: LevelEngine;
  engine: ValueLogEngine;
}

async function openAt(dir: string, compactCheckMs?: number): Promise<Opened> {
  const level = await LevelEngine.open(path.join(dir, 'meta'));
  const engine = await ValueLogEngine.open(level, path.join(dir, 'values'), { rollBytes: ROLL_BYTES, compactCheckMs });
  return { dir, level, engine };
}

/** A fresh engine in a temp dir; closed and removed at the end of the test, whatever happens. */
async function fresh(t: Test, compactCheckMs?: number): Promise<Opened & { reopen(): Promise<Opened> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-vlog-'));
  let current = await openAt(dir, compactCheckMs);
  t.teardown(async () => {
    await current.engine.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return {
    ...current,
    async reopen() {
      await current.engine.close();
      current = await openAt(dir);
      return current;
    },
  };
}

const key = (s: string): Buffer => Buffer.from(`bucket\0${s}\0v1`);
const put = (k: string, value: Buffer): KvOp => ({ type: 'put', space: 'inline', key: key(k), value });
const del = (k: string): KvOp => ({ type: 'del', space: 'inline', key: key(k) });

/** Values of many sizes, an empty one among them. */
function values(n: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) out.set(`obj-${String(i).padStart(4, '0')}`, randomBytes([0, 1, 100, 1000, 4096][i % 5]!));
  return out;
}

async function writeAll(engine: ValueLogEngine, model: Map<string, Buffer>): Promise<void> {
  const entries = [...model];
  for (let i = 0; i < entries.length; i += 10) await engine.batch(entries.slice(i, i + 10).map(([k, v]) => put(k, v)), { sync: true });
}

async function expectModel(t: Test, engine: ValueLogEngine, model: Map<string, Buffer>, gone: Iterable<string>, what: string): Promise<void> {
  let same = 0;
  for (const [k, v] of model) if ((await engine.get('inline', key(k)))?.equals(v)) same++;
  t.equal(same, model.size, `${what}: every value reads back byte for byte (${model.size})`);
  let back = 0;
  for (const k of gone) if ((await engine.get('inline', key(k))) !== undefined) back++;
  t.equal(back, 0, `${what}: no deleted value comes back`);
  const live = [...model].reduce((n, [k, v]) => n + entryBytes({ keyLength: key(k).length, valueLength: v.length }), 0);
  t.equal(engine.usage().liveBytes, live, `${what}: the live count is exactly the bytes of the entries still pointed to`);
}

t.test('values go to the log and LevelDB keeps pointers; other spaces pass through', async (t) => {
  const { engine, level } = await fresh(t);
  const model = values(100);
  await writeAll(engine, model);
  await engine.batch([put('with-record', Buffer.from('abc')), { type: 'put', space: 'objects', key: Buffer.from('rec'), value: Buffer.from('{}') }], { sync: false });
  model.set('with-record', Buffer.from('abc'));

  await expectModel(t, engine, model, [], 'after writing');
  const many = await engine.getMany('inline', [key('obj-0003'), key('missing'), key('with-record')]);
  t.same(many, [model.get('obj-0003'), undefined, Buffer.from('abc')], 'multi-key reads, a missing key as undefined');
  t.equal((await engine.get('objects', Buffer.from('rec')))?.toString(), '{}', 'another space is written and read as before');
  t.same(await scanRange(level, 'inline', {}), [], 'no value bytes are written to LevelDB');
  const pointers = await scanRange(level, 'values', {});
  t.equal(pointers.length, model.size, 'one pointer per value');
  t.ok(pointers.every(([, p]) => p.length < 32), 'a pointer is a few bytes, whatever the value size');
  t.ok(engine.usage().segments > 5, `the values span several segments (${engine.usage().segments})`);
  t.throws(() => engine.cursor('inline', {}), /read by key/, 'the inline space is not scanned');
});

t.test('deletes, overwrites and compaction keep every live value and free the dead space', async (t) => {
  const { engine, dir } = await fresh(t);
  const model = values(200);
  await writeAll(engine, model);
  const before = engine.usage();
  const gone: string[] = [];
  const keys = [...model.keys()];
  // Most of them go; some are rewritten, one put and deleted in the same batch, one deleted and put.
  for (let i = 0; i < keys.length; i += 8) {
    const ops = keys.slice(i, i + 8).flatMap((k, j) => (j < 6 ? [del(k)] : []));
    await engine.batch(ops, { sync: true });
    for (const op of ops) {
      gone.push(op.key.toString().split('\0')[1]!);
      model.delete(op.key.toString().split('\0')[1]!);
    }
  }
  const rewritten = randomBytes(3000);
  await engine.batch([put('obj-0007', rewritten), put('brief', randomBytes(10)), del('brief'), del('obj-0006'), put('obj-0006', Buffer.from('again'))], { sync: true });
  model.set('obj-0007', rewritten).set('obj-0006', Buffer.from('again'));
  gone.splice(gone.indexOf('obj-0006'), 1);
  gone.push('brief');
  await engine.compact();

  await expectModel(t, engine, model, gone, 'after compaction');
  const after = engine.usage();
  t.ok(after.bytes < before.bytes / 2, `the segments shrank (${before.bytes} → ${after.bytes} bytes)`);
  t.ok(engine.stats.segmentsRemoved > 0 && engine.stats.moved > 0, `segments were removed (${engine.stats.segmentsRemoved}) and live values moved (${engine.stats.moved})`);
  t.equal((await readdir(path.join(dir, 'values'))).length, after.segments, 'a removed segment is gone from the disk');

  // Everything goes: only the active segment is left.
  await engine.batch([...model.keys()].map(del), { sync: true });
  await engine.compact();
  await expectModel(t, engine, new Map(), [...model.keys()], 'after deleting everything');
  t.ok(engine.usage().segments <= 2, `at most the active segment and the one the last moves went to are left (${engine.usage().segments})`);
});

t.test('writes racing a compaction: nothing is lost and nothing deleted comes back', async (t) => {
  const { engine } = await fresh(t);
  const model = values(300);
  await writeAll(engine, model);
  const keys = [...model.keys()];
  const gone = new Set<string>();
  // Two thirds deleted: most segments become due.
  await engine.batch(keys.filter((_, i) => i % 3 !== 0).map(del), { sync: true });
  for (const [i, k] of keys.entries()) if (i % 3 !== 0) (model.delete(k), gone.add(k));

  const compaction = engine.compact();
  // Meanwhile: overwrite some survivors, delete others, bring some deleted keys back.
  const racing = (async () => {
    for (let i = 0; i < keys.length; i += 3) {
      const k = keys[i]!;
      if (i % 2 === 0) {
        const v = randomBytes(50 + i);
        await engine.batch([put(k, v)], { sync: true });
        model.set(k, v);
      } else {
        await engine.batch([del(k)], { sync: true });
        model.delete(k);
        gone.add(k);
      }
      const back = keys[i + 1]!;
      const v = Buffer.from(`back ${i}`);
      await engine.batch([put(back, v)], { sync: false });
      model.set(back, v);
      gone.delete(back);
    }
  })();
  await Promise.all([compaction, racing]);
  await engine.compact();
  await expectModel(t, engine, model, gone, 'after the race');
});

t.test('reopening keeps values and counts, removes orphan segments, survives a torn tail', async (t) => {
  const opened = await fresh(t);
  const model = values(60);
  await writeAll(opened.engine, model);
  const live = opened.engine.usage().liveBytes;
  const valuesDir = path.join(opened.dir, 'values');
  const segments = (await readdir(valuesDir)).sort();
  // A crash mid-append: half an entry after the last one of the newest segment.
  await appendFile(path.join(valuesDir, segments[segments.length - 1]!), Buffer.from('CVL1 torn'));
  // A segment created just before a crash, with no pointer committed into it.
  await opened.engine.close();
  await writeFile(path.join(valuesDir, '00000999.vlog'), randomBytes(100));

  const { engine } = await opened.reopen();
  t.notOk((await readdir(valuesDir)).includes('00000999.vlog'), 'a segment nothing points into is removed at open');
  t.equal(engine.usage().liveBytes, live, 'the live counts are read back');
  await expectModel(t, engine, model, [], 'after reopening');
  // The torn tail's segment is compacted like any other.
  const keys = [...model.keys()];
  await engine.batch(keys.slice(0, 50).map(del), { sync: true });
  for (const k of keys.slice(0, 50)) model.delete(k);
  await engine.compact();
  await expectModel(t, engine, model, keys.slice(0, 50), 'after compacting past a torn tail');
});

t.test('damaged bytes are refused, reported by compaction, and left where they are', async (t) => {
  const { engine, level } = await fresh(t);
  const model = values(40);
  await writeAll(engine, model);
  const victim = 'obj-0003'; // 1000 bytes
  const pointer = decodePointer((await level.get('values', key(victim)))!);
  const where = engine.values.locate(pointer)!;
  const fh = await open(where.file, 'r+');
  await fh.write(Buffer.from([0xff ^ model.get(victim)![10]!]), 0, 1, where.offset + 10);
  await fh.close();

  await t.rejects(engine.get('inline', key(victim)), ValueIntegrityError, 'a value that fails its CRC32C is refused, not served');
  // Its neighbours go, so that its segment is due for compaction.
  const neighbours = [...model.keys()].filter((k) => k !== victim);
  await engine.batch(neighbours.map(del), { sync: true });
  await engine.compact();
  t.equal(engine.stats.damaged, 1, 'the compaction counts the damaged value');
  t.ok(engine.values.locate(pointer), "the damaged value's segment is kept");
  await t.rejects(engine.get('inline', key(victim)), ValueIntegrityError, 'and the value is still refused, never given a fresh checksum');
});

t.test('values written before the value log (raw in LevelDB) are read and deleted through it', async (t) => {
  const { engine, level } = await fresh(t);
  await level.batch([{ type: 'put', space: 'inline', key: key('old'), value: Buffer.from('legacy bytes') }], { sync: true });
  t.equal((await engine.get('inline', key('old')))?.toString(), 'legacy bytes', 'read from LevelDB when no pointer exists');
  await engine.batch([del('old')], { sync: true });
  t.equal(await level.get('inline', key('old')), undefined, 'deleted from LevelDB');
  t.equal(await engine.get('inline', key('old')), undefined, 'and gone');
});

t.test('a segment holding values placed but not yet pointed to is not compacted away', async (t) => {
  const { engine } = await fresh(t);
  await engine.batch([put('a', randomBytes(3000)), put('b', randomBytes(3000))], { sync: true });
  // Placed in the active segment; its pointer is written only later (group commit's first phase).
  const late = await engine.prepareBatch([put('late', Buffer.from('late bytes'))], { sync: true });
  await engine.batch([put('big', randomBytes(ROLL_BYTES))], { sync: true }); // fills the segment
  await engine.batch([put('next', Buffer.from('x'))], { sync: true }); // rolls: the segment is sealed
  // Everything pointed to in it goes, so it is due, with 'late' still unwritten.
  await engine.batch([del('a'), del('b'), del('big')], { sync: true });
  await engine.compact();
  await engine.writePrepared(late);
  t.equal((await engine.get('inline', key('late')))?.toString(), 'late bytes', 'the late value reads back');
  await engine.compact();
  await expectModel(t, engine, new Map([['late', Buffer.from('late bytes')], ['next', Buffer.from('x')]]), ['a', 'b', 'big'], 'after the late write and a compaction');
});

t.test('a segment whose values died while it was active is compacted once sealed, with no later delete', async (t) => {
  const { engine } = await fresh(t, 20);
  await engine.batch([put('a', randomBytes(10_000)), put('b', randomBytes(7_000))], { sync: true }); // past the roll size
  await engine.batch([del('a')], { sync: true }); // still the active segment: not due
  const c = randomBytes(10);
  await engine.batch([put('c', c)], { sync: true }); // seals it, under half live, and frees nothing
  const sealed = engine.usage().segments;
  const deadline = Date.now() + 5_000;
  while (engine.stats.segmentsRemoved === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(engine.stats.segmentsRemoved, 1, `the periodic check compacted it (${sealed} segments before)`);
  t.equal((await engine.get('inline', key('c')))?.length, 10, 'the later value is still there');
  t.equal((await engine.get('inline', key('b')))?.length, 7_000, 'the live value was moved, not lost');
});
