// The writer's memory per upload: nothing is placed or opened before a stripe of data exists, and a
// process-wide budget bounds the bytes held in stripes that are still filling, without deadlock.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { MemoryBudget } from '../gateway/data/memory-budget.js';
import { writeObjectData, type WriteOptions, type WriterDeps } from '../gateway/data/writer.js';
import { StripeCodec } from '../erasure/codec.js';

const layout = { k: 4, m: 2, blockSize: 1024 };
const STRIPE = layout.k * layout.blockSize;
const opts: WriteOptions = { layout, segmentSize: 8 * STRIPE, versionId: 'v1', writeQuorum: 4, stallTimeoutMs: 5000 };

/** A namespace and storage nodes in memory, counting placements and shard uploads. */
function fakeCluster(budget: MemoryBudget) {
  const stats = { placed: 0, opened: 0, listed: 0, buffersTaken: 0, stored: new Map<string, number>() };
  const nodes = Array.from({ length: 6 }, (_, i) => ({ id: `n${i}`, url: `http://n${i}` }));
  const deps = {
    namespace: { listNodes: async () => (stats.listed++, nodes) },
    directory: { place: async (count: number) => (stats.placed++, nodes.slice(0, count)) },
    nodes: {
      get: () => ({
        putShard: async (id: string, _blockSize: number, body: AsyncIterable<Uint8Array>) => {
          stats.opened++;
          let bytes = 0;
          for await (const chunk of body) bytes += chunk.length;
          stats.stored.set(id, bytes);
          return { id };
        },
        deleteShard: async () => undefined,
      }),
    },
    codec: new StripeCodec(layout),
    log: { warn: () => undefined },
    uploadBudget: budget,
    stripeBuffers: { take: (size: number) => (stats.buffersTaken++, Buffer.allocUnsafe(size)), release: () => undefined },
  } as unknown as WriterDeps;
  return { deps, stats };
}

/** A body whose chunks the test hands out one at a time. */
function controlledBody() {
  const queue: (Buffer | null)[] = [];
  let wake: (() => void) | undefined;
  let pulled = 0;
  const body = (async function* () {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const next = queue.shift()!;
      if (next === null) return;
      pulled += next.length;
      yield next;
    }
  })();
  return {
    body,
    send(chunk: Buffer | null) {
      queue.push(chunk);
      wake?.();
    },
    pulled: () => pulled,
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

t.test('MemoryBudget: grants in order, never over the limit, releases once', async (t) => {
  const budget = new MemoryBudget(100);
  const a = await budget.reserve(60);
  const order: string[] = [];
  const b = budget.reserve(60).then((r) => (order.push('b'), r));
  const c = budget.reserve(10).then((r) => (order.push('c'), r));
  await tick();
  t.same(order, [], 'a small reservation does not overtake a waiting large one');
  t.equal(budget.waiting, 2);
  a();
  a();
  const [rb, rc] = await Promise.all([b, c]);
  t.same(order, ['b', 'c']);
  t.equal(budget.reserved, 70, 'a second release of the same reservation is ignored');
  rb();
  rc();
  t.equal(budget.reserved, 0);
  const huge = await budget.reserve(500);
  t.equal(budget.reserved, 500, 'a reservation above the whole limit is granted when nothing else is held');
  huge();
  t.throws(() => new MemoryBudget(0));
});

t.test('MemoryBudget: memory released is handed on at the end of the turn, past the waiters whose clients left in it', async (t) => {
  const budget = new MemoryBudget(100);
  const held = await budget.reserve(100);
  const gone = new AbortController();
  const granted: string[] = [];
  const first = budget.reserve(100, gone.signal).then(
    (release) => (granted.push('first'), release),
    (err: Error) => err,
  );
  const second = budget.reserve(100).then((release) => (granted.push('second'), release));
  held(); // the memory comes back...
  gone.abort(); // ...and, in the same turn, the first waiter's client is seen gone
  t.match(await first, { code: 'RequestTimeout' }, 'the first waiter is refused');
  const release = await second;
  t.same(granted, ['second'], 'the memory went to the waiter still there, never to the one that left');
  t.equal(budget.reserved, 100);
  release();
  t.equal(budget.waiting, 0);
});

t.test('an upload places and opens shard streams only once its first stripe is ready', async (t) => {
  const budget = new MemoryBudget(16 * STRIPE);
  const { deps, stats } = fakeCluster(budget);
  const source = controlledBody();
  const data = randomBytes(STRIPE + 100);
  const written = writeObjectData(source.body, opts, deps);
  source.send(data.subarray(0, 10));
  await tick();
  source.send(data.subarray(10, STRIPE - 1));
  await tick();
  t.equal(stats.placed, 0, 'no placement while the first stripe fills');
  t.equal(stats.opened, 0, 'no shard upload while the first stripe fills');
  t.equal(budget.reserved, STRIPE, 'the filling stripe holds one stripe of budget');
  source.send(data.subarray(STRIPE - 1));
  source.send(null);
  const result = await written;
  t.equal(stats.placed, 1);
  t.equal(stats.opened, 6, 'k+m shard uploads once data exists');
  t.equal(result.size, data.length);
  t.equal(budget.reserved, 0, 'all budget returned');
});

t.test('the budget bounds filling stripes across uploads and cannot deadlock them', async (t) => {
  const budget = new MemoryBudget(2 * STRIPE);
  const { deps, stats } = fakeCluster(budget);
  const uploads = Array.from({ length: 5 }, () => controlledBody());
  const results = uploads.map((u) => writeObjectData(u.body, opts, deps));
  // Every upload trickles part of a stripe: only two may hold stripe buffers; the rest wait unread.
  for (let round = 0; round < 3; round++) {
    for (const u of uploads) u.send(Buffer.alloc(100, round));
    await tick();
  }
  t.equal(budget.reserved, 2 * STRIPE, 'the budget is spent');
  t.ok(budget.reserved <= budget.limit);
  const reading = uploads.filter((u) => u.pulled() > 100).length;
  t.equal(reading, 2, 'only the uploads holding budget read past their first chunk');
  t.equal(stats.opened, 0, 'no upload has opened shard streams yet');
  // Each upload finishes a stripe in turn: the holders complete theirs and hand the budget on.
  const sizes = uploads.map(() => 300);
  for (const [i, u] of uploads.entries()) {
    u.send(Buffer.alloc(STRIPE * 2));
    u.send(null);
    sizes[i] += STRIPE * 2;
  }
  const written = await Promise.all(results);
  t.same(written.map((w) => w.size), sizes, 'every upload completed');
  t.equal(budget.reserved, 0);
  t.equal(stats.placed, 5);
});

t.test('an upload that fails while waiting for budget returns what it holds', async (t) => {
  const budget = new MemoryBudget(STRIPE);
  const { deps } = fakeCluster(budget);
  const holder = controlledBody();
  const held = writeObjectData(holder.body, opts, deps);
  holder.send(Buffer.alloc(10));
  await tick();
  const failing = (async function* () {
    yield Buffer.alloc(10);
    throw new Error('client went away');
  })();
  const waiter = t.rejects(writeObjectData(failing, opts, deps), /client went away/);
  await tick();
  t.equal(budget.waiting, 1, 'the second upload waits for budget');
  holder.send(Buffer.alloc(STRIPE));
  holder.send(null);
  await held;
  await waiter;
  t.equal(budget.reserved, 0, 'nothing stays reserved');
});

t.test('a reservation that waits longer than maxWaitMs is refused with SlowDown, and leaves the queue', async (t) => {
  const budget = new MemoryBudget(100, 50);
  const held = await budget.reserve(100);
  const started = Date.now();
  await t.rejects(budget.reserve(10), { code: 'SlowDown', status: 503 });
  t.ok(Date.now() - started >= 45, 'refused after the wait bound');
  t.equal(budget.waiting, 0, 'no waiter left behind');
  held();
  const again = await budget.reserve(100);
  t.equal(budget.reserved, 100, 'the budget still works after a refusal');
  again();
});

t.test('an upload whose client goes away while it waits for budget leaves the queue at once and takes nothing', async (t) => {
  const budget = new MemoryBudget(STRIPE);
  const { deps, stats } = fakeCluster(budget);
  const holder = controlledBody();
  const held = writeObjectData(holder.body, opts, deps);
  holder.send(Buffer.alloc(STRIPE - 1)); // a full-sized stripe buffer, taken from stripeBuffers
  await tick();
  const takenByHolder = stats.buffersTaken;
  const client = new AbortController();
  const waiting = controlledBody();
  const abandoned = writeObjectData(waiting.body, { ...opts, signal: client.signal }, deps);
  waiting.send(Buffer.alloc(STRIPE - 1));
  await tick();
  t.equal(budget.waiting, 1, 'the second upload waits for budget');
  client.abort();
  await t.rejects(abandoned, { code: 'RequestTimeout' }, 'it fails while the budget is still held, not when its turn would come');
  t.equal(budget.waiting, 0, 'it left the queue');
  t.equal(budget.reserved, STRIPE, 'the holder still holds its stripe');
  await tick();
  t.equal(stats.buffersTaken, takenByHolder, 'it never took a stripe buffer');
  t.equal(stats.listed, 0, 'nothing was placed, so nothing is discarded: the namespace is not asked for its nodes');
  holder.send(Buffer.alloc(1));
  holder.send(null);
  t.equal((await held).size, STRIPE);
  t.equal(budget.reserved, 0, 'nothing stays reserved');
});
