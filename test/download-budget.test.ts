// The download budget: a GET holds the window it sends and the ones it reads ahead, every byte of
// them reserved first, and gives each back once the consumer asks for the next. A reader that stops
// consuming holds at most three windows; the window a reader needs next waits for the bytes (and
// gets SlowDown if the wait is too long), while one read ahead is fetched only if they are free; an
// abandoned read gives everything back, even windows still being fetched.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32c } from '@node-rs/crc32';
import { readObjectWindows, type ReaderDeps } from '../gateway/data/reader.js';
import { DEFAULT_DOWNLOAD_BUDGET_BYTES, DEFAULT_UPLOAD_BUDGET_BYTES, MemoryBudget } from '../gateway/data/memory-budget.js';
import { loadGatewayConfig } from '../gateway/config.js';
import type { ObjectRecord } from '../namespace/types.js';
import type { Layout } from '../erasure/layout.js';

const layout: Layout = { k: 4, m: 2, blockSize: 64 * 1024 };
/** The reader fetches 2 MiB of each shard per window: 8 MiB of object bytes with k = 4. */
const WINDOW = 8 << 20;

/** An object of `windows` full windows in segments of `windowsPerSegment`, its data shards served from memory. */
function fixture(windows: number, budget: MemoryBudget, fetchDelayMs = 0, windowsPerSegment = windows) {
  const body = randomBytes(windows * WINDOW);
  const stripeBytes = layout.k * layout.blockSize;
  const segmentBytes = windowsPerSegment * WINDOW;
  const shards = new Map<string, Buffer>();
  const segments = [];
  for (let seg = 0; seg * segmentBytes < body.length; seg++) {
    const bytes = body.subarray(seg * segmentBytes, (seg + 1) * segmentBytes);
    for (let i = 0; i < layout.k; i++) {
      const shard = Buffer.alloc(bytes.length / layout.k);
      for (let s = 0; s * stripeBytes < bytes.length; s++) bytes.copy(shard, s * layout.blockSize, s * stripeBytes + i * layout.blockSize, s * stripeBytes + (i + 1) * layout.blockSize);
      shards.set(`s${seg}.${i}`, shard);
    }
    segments.push({ size: bytes.length, crc32c: crc32c(bytes) >>> 0, placements: Array.from({ length: layout.k + layout.m }, (_, i) => ({ nodeId: 'n', shardId: `s${seg}.${i}` })) });
  }
  const record = { bucket: 'b', key: 'k', size: body.length, layout, segments } as unknown as ObjectRecord;
  let fetches = 0;
  const deps = {
    nodes: {
      get: () => ({
        // As the storage client does: an aborted signal ends the fetch at once.
        readShardChunks: async (id: string, range: { start: number; end: number }, signal?: AbortSignal) => {
          fetches++;
          if (fetchDelayMs) await sleep(fetchDelayMs, undefined, { signal });
          return [Buffer.from(shards.get(id)!.subarray(range.start, range.end + 1))];
        },
      }),
    },
    directory: { lookup: async () => ({ id: 'n', url: 'http://n', state: 'up' }), isRefused: () => false },
    codec: undefined,
    log: { warn: () => undefined },
    readTimeoutMs: 5000,
    downloadBudget: budget,
  } as unknown as ReaderDeps;
  return { body, record, deps, fetches: () => fetches };
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

t.test('a reader that stops consuming holds one window and two read ahead, no more', async (t) => {
  const budget = new MemoryBudget(1 << 30, 30_000, 'download');
  const { record, deps } = fixture(6, budget);
  const windows = readObjectWindows(record, 0, record.size - 1, deps);
  const first = await windows.next();
  t.equal((first.value as Buffer[] | undefined)?.reduce((n: number, p: Buffer) => n + p.length, 0), WINDOW, 'a window is 8 MiB');
  await settle();
  t.equal(budget.reserved, 3 * WINDOW, 'the window handed out and two read ahead');
  await windows.next();
  await settle();
  t.equal(budget.reserved, 3 * WINDOW, 'asking for the next gives the first back, and one more is read ahead');
  await windows.return(undefined);
  await settle();
  t.equal(budget.reserved, 0, 'an abandoned read gives everything back');
});

t.test('a reader whose client goes away stops its shard fetches at once: memory back, no failure reported', async (t) => {
  const budget = new MemoryBudget(1 << 30, 30_000, 'download');
  const { record, deps } = fixture(4, budget, 4000); // fetches that take 4 s (the read timeout is 5 s)
  const failures: unknown[] = [];
  const client = new AbortController();
  const windows = readObjectWindows(record, 0, record.size - 1, { ...deps, signal: client.signal, onShardFailure: (f) => failures.push(f) });
  const first = windows.next();
  first.catch(() => undefined);
  await settle();
  const held = budget.reserved;
  t.ok(held >= WINDOW, `the windows asked for hold their memory while their shards are fetched (${held / WINDOW})`);
  const started = Date.now();
  client.abort(new Error('the client went away'));
  await t.rejects(first, /the client went away/, "the window fails with the client's reason");
  t.ok(Date.now() - started < 1000, `at once (${Date.now() - started} ms), not when its fetches would have ended`);
  await settle();
  t.equal(budget.reserved, 0, 'their memory is back, a window read ahead too');
  t.same(failures, [], 'no shard is reported as failed: parity is not read, repair is not told');
});

t.test('a reader left unconsumed lets its read-ahead go, then reads window by window and still gets every byte', async (t) => {
  const budget = new MemoryBudget(1 << 30, 30_000, 'download');
  const { body, record, deps, fetches } = fixture(6, budget);
  const windows = readObjectWindows(record, 0, record.size - 1, { ...deps, readAheadIdleMs: 100 });
  const got: Buffer[] = [];
  const take = (pieces: Buffer[]) => got.push(...pieces.map((p) => Buffer.from(p)));
  take((await windows.next()).value as Buffer[]);
  await settle();
  t.equal(budget.reserved, 3 * WINDOW, 'the window handed out and two read ahead');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(budget.reserved, WINDOW, 'left alone past the idle time: only the window handed out');
  let peak = 0;
  for (let step = await windows.next(); !step.done; step = await windows.next()) {
    peak = Math.max(peak, budget.reserved);
    take(step.value);
  }
  t.ok(Buffer.concat(got).equals(body), 'every byte, in order');
  t.equal(peak, WINDOW, 'from then on one window at a time');
  t.equal(budget.reserved, 0, 'all given back');
  t.equal(fetches(), (6 + 2) * layout.k, 'the two windows let go were fetched once more, nothing else');
});

t.test('a window read ahead never waits for memory: the next reader\'s first window does, and is served once the stalled reader lets its read-ahead go', async (t) => {
  const budget = new MemoryBudget(2 * WINDOW, 30_000, 'download');
  const a = fixture(6, budget);
  const aWindows = readObjectWindows(a.record, 0, a.record.size - 1, { ...a.deps, readAheadIdleMs: 200 });
  await aWindows.next(); // holds windows 1 and 2; no room for a third
  t.equal(budget.waiting, 0, 'the stalled reader queues nothing for its read-ahead');
  const b = fixture(1, budget);
  const bFirst = readObjectWindows(b.record, 0, b.record.size - 1, b.deps).next();
  await settle();
  t.equal(budget.waiting, 1, "the next reader's first window waits");
  t.notOk((await bFirst).done, 'once the stalled reader lets its read-ahead go, the next reader is served');
  t.equal(a.fetches(), 2 * layout.k, "and the stalled reader's third window was never fetched");
  await aWindows.return(undefined);
  await settle();
  t.equal(budget.reserved, WINDOW, "only the next reader's window is held");
});

t.test('read-ahead resumes when memory is free, and an abandoned reader gives it all back', async (t) => {
  const budget = new MemoryBudget(2 * WINDOW, 30_000, 'download');
  const a = fixture(6, budget);
  const windows = readObjectWindows(a.record, 0, a.record.size - 1, a.deps);
  await windows.next(); // holds windows 1 and 2
  await settle();
  t.same({ waiting: budget.waiting, fetches: a.fetches() }, { waiting: 0, fetches: 2 * layout.k }, 'window 3 neither waits nor is fetched');
  await windows.next(); // gives window 1 back: window 3 fits now
  await settle();
  t.same({ reserved: budget.reserved, fetches: a.fetches() }, { reserved: 2 * WINDOW, fetches: 3 * layout.k }, 'window 3 is read ahead in the memory freed');
  await windows.return(undefined);
  await settle();
  t.same({ waiting: budget.waiting, reserved: budget.reserved }, { waiting: 0, reserved: 0 }, 'nothing waits, nothing is held');
});

t.test('read-ahead crosses segment boundaries, and every byte comes in order', async (t) => {
  const budget = new MemoryBudget(1 << 30, 30_000, 'download');
  const a = fixture(4, budget, 0, 2);
  t.equal(a.record.segments.length, 2);
  const windows = readObjectWindows(a.record, 0, a.record.size - 1, a.deps);
  const got: Buffer[] = [];
  const first = await windows.next();
  await settle();
  t.equal(a.fetches(), 3 * layout.k, "the second segment's first window is read ahead while the first is sent");
  got.push(...(first.value as Buffer[]));
  for await (const window of windows) got.push(...window);
  t.ok(Buffer.concat(got).equals(a.body), 'every byte, in order');
  t.equal(a.fetches(), 4 * layout.k, 'each window fetched once');
  t.equal(budget.reserved, 0, 'all given back');
});

t.test('readers share the budget: never over it, each one gets every byte in order', async (t) => {
  const budget = new MemoryBudget(4 * WINDOW, 30_000, 'download');
  let peak = 0;
  const readers = Array.from({ length: 4 }, async () => {
    const { body, record, deps } = fixture(5, budget, 5);
    const got: Buffer[] = [];
    for await (const window of readObjectWindows(record, 0, record.size - 1, deps)) {
      peak = Math.max(peak, budget.reserved);
      got.push(...window.map((piece) => Buffer.from(piece)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    return Buffer.concat(got).equals(body);
  });
  t.same(await Promise.all(readers), [true, true, true, true], 'every reader got its object');
  t.ok(peak <= 4 * WINDOW, `peak ${peak / WINDOW} windows reserved of a budget of 4`);
  t.equal(budget.reserved, 0, 'all given back');
});

t.test('a reader waiting for bytes held by one that stopped gets SlowDown after the wait limit', async (t) => {
  const budget = new MemoryBudget(3 * WINDOW, 200, 'download');
  const stuck = fixture(6, budget);
  const stuckWindows = readObjectWindows(stuck.record, 0, stuck.record.size - 1, stuck.deps);
  await stuckWindows.next(); // and never asks for more
  await settle();
  const waiting = fixture(2, budget);
  const started = Date.now();
  await t.rejects(readObjectWindows(waiting.record, 0, waiting.record.size - 1, waiting.deps).next(), { code: 'SlowDown', message: /download memory busy/ });
  t.ok(Date.now() - started >= 150, 'after waiting about the limit');
  t.equal(waiting.fetches(), 0, 'nothing was fetched for it');
  await stuckWindows.return(undefined);
  await settle();
  t.equal(budget.reserved, 0);
});

t.test('a reader whose client goes away leaves the queue at once: it fetches nothing, and the next one is served', async (t) => {
  const budget = new MemoryBudget(3 * WINDOW, 30_000, 'download');
  const stuck = fixture(6, budget);
  const stuckWindows = readObjectWindows(stuck.record, 0, stuck.record.size - 1, stuck.deps);
  await stuckWindows.next(); // holds three windows: the whole budget
  await settle();
  const gone = new AbortController();
  const leaver = fixture(2, budget);
  const leaving = readObjectWindows(leaver.record, 0, leaver.record.size - 1, { ...leaver.deps, signal: gone.signal }).next();
  leaving.catch(() => undefined);
  const next = fixture(1, budget);
  const waiting = readObjectWindows(next.record, 0, next.record.size - 1, next.deps).next();
  await settle();
  t.equal(budget.waiting, 2, 'the first window of the leaving reader and of the next wait (no read-ahead queues)');
  gone.abort();
  await t.rejects(leaving, { code: 'RequestTimeout' }, 'the leaving reader fails at once');
  t.equal(budget.waiting, 1, 'and is out of the queue');
  await stuckWindows.return(undefined);
  t.notOk((await waiting).done, 'the next reader is served once the bytes are back');
  t.equal(leaver.fetches(), 0, 'nothing was ever fetched for the one that left');
});

t.test('the budgets are gateway options: bytes, positive, 32 MiB and 64 MiB by default', async (t) => {
  const base = ['--namespace', 'http://127.0.0.1:1'];
  t.same(pick(loadGatewayConfig(base)), { uploadBudgetBytes: DEFAULT_UPLOAD_BUDGET_BYTES, downloadBudgetBytes: DEFAULT_DOWNLOAD_BUDGET_BYTES });
  t.same(pick(loadGatewayConfig([...base, '--download-budget', String(1 << 30), '--upload-budget', String(1 << 28)])), { uploadBudgetBytes: 1 << 28, downloadBudgetBytes: 1 << 30 });
  t.throws(() => loadGatewayConfig([...base, '--download-budget', '0']), /must be positive/);
  t.throws(() => loadGatewayConfig([...base, '--upload-budget', '1.5']), /non-negative integer/);
});

function pick(c: { uploadBudgetBytes: number; downloadBudgetBytes: number }) {
  return { uploadBudgetBytes: c.uploadBudgetBytes, downloadBudgetBytes: c.downloadBudgetBytes };
}
