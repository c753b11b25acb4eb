// Group commit in the namespace: concurrent batches share one engine write (and fsync), in
// submission order, all-or-nothing; and on a real LevelDB store, many concurrent commits land with
// far fewer writes than commits, every one readable after a reopen.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GroupCommitEngine } from '../namespace/group-commit.js';
import { LevelEngine, type KvCursor, type KvEngine, type KvOp, type PreparingEngine, type Space } from '../namespace/engine.js';

/** An engine whose writes take a while and are recorded, so batches can pile up behind one. */
class SlowEngine implements KvEngine {
  readonly writes: { ops: KvOp[]; sync: boolean }[] = [];
  failNext = false;
  async batch(ops: KvOp[], opts: { sync: boolean }): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk on fire');
    }
    this.writes.push({ ops, sync: opts.sync });
  }
  get(): Promise<Buffer | undefined> {
    return Promise.resolve(undefined);
  }
  getMany(_space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    return Promise.resolve(keys.map(() => undefined));
  }
  cursor(): KvCursor {
    throw new Error('not used');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const op = (n: number): KvOp => ({ type: 'put', space: 'objects', key: Buffer.from(`k${n}`), value: Buffer.from(String(n)) });

t.test('batches queued behind a write go out together, in order', async (t) => {
  const inner = new SlowEngine();
  const engine = new GroupCommitEngine(inner);
  const done: number[] = [];
  await Promise.all(Array.from({ length: 10 }, (_, i) => engine.batch([op(i)], { sync: i === 5 }).then(() => done.push(i))));
  t.equal(inner.writes.length, 2, 'the first alone, then the nine that queued behind it');
  t.same(inner.writes.flatMap((w) => w.ops.map((o) => o.key.toString())), Array.from({ length: 10 }, (_, i) => `k${i}`), 'submission order');
  t.same(inner.writes.map((w) => w.sync), [false, true], 'a merged write is synced when any member asked');
  t.equal(done.length, 10, 'every caller is answered');
  t.match(engine.stats, { batches: 10, writes: 2 });
  t.ok(engine.stats.writeSeconds > 0, 'the time in writes is counted');
  t.ok(engine.stats.waitSeconds >= engine.stats.writeSeconds * 9, `every batch waited at least for the write that carried it (${engine.stats.waitSeconds.toFixed(3)} s in all)`);
  t.equal(engine.stats.prepareSeconds, 0, 'a plain engine has no first phase');
});

t.test('a failed write fails every batch in it, and only those', async (t) => {
  const inner = new SlowEngine();
  const engine = new GroupCommitEngine(inner);
  const first = engine.batch([op(0)], { sync: true });
  inner.failNext = false;
  const queued = [engine.batch([op(1)], { sync: true }), engine.batch([op(2)], { sync: true })];
  await first;
  inner.failNext = true; // the merged write of 1 and 2 fails
  const outcomes = await Promise.allSettled(queued);
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected']);
  await engine.batch([op(3)], { sync: true });
  t.same(inner.writes.flatMap((w) => w.ops.map((o) => o.key.toString())), ['k0', 'k3'], 'nothing of the failed group applied');
});

t.test('maxOps bounds a merged write; an oversized batch still goes whole', async (t) => {
  const inner = new SlowEngine();
  const engine = new GroupCommitEngine(inner, 3);
  await Promise.all([engine.batch([op(0)], { sync: true }), engine.batch([op(1), op(2)], { sync: true }), engine.batch([op(3), op(4)], { sync: true }), engine.batch([op(5), op(6), op(7), op(8)], { sync: true })]);
  t.same(inner.writes.map((w) => w.ops.length), [1, 2, 2, 4]);
});

t.test('on LevelDB: 200 concurrent synced commits, fewer writes, all durable', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-group-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const engine = new GroupCommitEngine(await LevelEngine.open(path.join(dir, 'meta')));
  await Promise.all(Array.from({ length: 200 }, (_, i) => engine.batch([op(i)], { sync: true })));
  t.ok(engine.stats.writes < 200, `${engine.stats.writes} writes for 200 commits`);
  await engine.close();
  const reopened = await LevelEngine.open(path.join(dir, 'meta'));
  const values = await reopened.getMany('objects', Array.from({ length: 200 }, (_, i) => Buffer.from(`k${i}`)));
  t.ok(values.every((v, i) => v?.toString() === String(i)), 'every commit read back after reopening');
  await reopened.close();
});

/** A two-phase engine: its first phase and its writes each take a while, and are logged with their times. */
class PreparingSlowEngine extends SlowEngine implements PreparingEngine<{ ops: KvOp[]; sync: boolean }> {
  readonly log: string[] = [];
  failPrepare = false;
  async prepareBatch(ops: KvOp[], opts: { sync: boolean }): Promise<{ ops: KvOp[]; sync: boolean }> {
    const names = ops.map((o) => o.key.toString()).join(',');
    this.log.push(`prepare ${names}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
    if (this.failPrepare) {
      this.failPrepare = false;
      throw new Error('value log full');
    }
    this.log.push(`prepared ${names}`);
    return { ops, sync: opts.sync };
  }
  async writePrepared(p: { ops: KvOp[]; sync: boolean }): Promise<void> {
    const names = p.ops.map((o) => o.key.toString()).join(',');
    this.log.push(`write ${names}`);
    await this.batch(p.ops, { sync: p.sync });
    this.log.push(`written ${names}`);
  }
}

t.test("with a two-phase engine, the next group's first phase runs during the current write; writes stay in order", async (t) => {
  const inner = new PreparingSlowEngine();
  const engine = new GroupCommitEngine(inner);
  const first = engine.batch([op(0)], { sync: true });
  await new Promise((resolve) => setTimeout(resolve, 15)); // k0 prepared, its write under way
  const later = [engine.batch([op(1)], { sync: true }), engine.batch([op(2)], { sync: false })];
  await Promise.all([first, ...later]);
  t.same(inner.log, ['prepare k0', 'prepared k0', 'write k0', 'prepare k1,k2', 'prepared k1,k2', 'written k0', 'write k1,k2', 'written k1,k2'], "k1,k2's first phase overlaps k0's write; their write waits for k0's");
  t.same(inner.writes.map((w) => w.ops.map((o) => o.key.toString()).join(',')), ['k0', 'k1,k2'], 'submission order');
  t.ok(engine.stats.prepareSeconds >= 0.018, `both first phases timed (${engine.stats.prepareSeconds.toFixed(3)} s; 10 ms each)`);
  t.ok(engine.stats.waitSeconds >= engine.stats.prepareSeconds + engine.stats.writeSeconds, 'what the batches waited covers both phases');
});

t.test('with a two-phase engine, a failed first phase fails its group only', async (t) => {
  const inner = new PreparingSlowEngine();
  const engine = new GroupCommitEngine(inner);
  inner.failPrepare = true;
  const failed = engine.batch([op(0)], { sync: true });
  await t.rejects(failed, /value log full/, 'its batch is told');
  await engine.batch([op(1)], { sync: true });
  t.same(inner.writes.flatMap((w) => w.ops.map((o) => o.key.toString())), ['k1'], 'nothing of the failed group was written; the next goes through');
});
